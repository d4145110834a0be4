"""gpsd, for real: our NMEA decoder against a running gpsd fed the same bytes on a pseudo-terminal, and a
gateway reading a running gpsd as its GPS source. `make test` installs Debian's gpsd and gpsd-clients."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers.gps import NmeaDecoder
from device_drivers.gpsd import GpsdDecoder
from device_drivers.simulators import drive, open_pty_pair
from device_drivers.types import Fix
from launcher.embedded import free_port, wait_for_port
from tests.helpers import Subscriber, wait_for
from tests.journey import VEHICLE, journey
from tests.test_crm_status import CUSTOMER_SITE, WAREHOUSE


@pytest.mark.parametrize("name", ["bu353s4", "sirfstarv-nmea", "quectel-eg25-g"])
def test_live_gpsd_and_our_decoder_agree(corpora: Path, tmp_path: Path, name: str) -> None:
    assert shutil.which("gpsd") and shutil.which("gpspipe"), "gpsd and gpspipe are needed (make test installs them)"
    raw = (corpora / "nmea" / f"{name}.log").read_bytes()
    sentences = b"".join(line.rstrip(b"\r\n") + b"\r\n" for line in raw.splitlines() if not line.startswith(b"#"))
    master, device = open_pty_pair()
    port = free_port()
    gpsd = subprocess.Popen(["gpsd", "-N", "-n", "-b", "-G", "-S", str(port), device], stderr=subprocess.DEVNULL)
    out = (tmp_path / "tpv.jsonl").open("wb")
    pipe = None
    try:
        wait_for_port(port)
        pipe = subprocess.Popen(["gpspipe", "-w", f"127.0.0.1:{port}"], stdout=out)
        decoder = NmeaDecoder()
        ours = decoder.feed(sentences) + decoder.flush()

        def live_fixes() -> dict[str, dict]:
            # the file is read while gpspipe writes it: the text after the last newline may be half a line
            complete = (tmp_path / "tpv.jsonl").read_text().split("\n")[:-1]
            reports = [json.loads(line) for line in complete if '"class":"TPV"' in line]
            return {r["time"][11:23]: r for r in reports if r.get("mode", 0) >= 2 and "time" in r and "lat" in r}

        # gpsd must have seen the device before the bytes flow; then every epoch reaches it.
        wait_for(lambda: os.write(master, sentences) and len(live_fixes()) >= len(ours) - 1,
                 timeout=30, interval=1.0, what="gpsd's fixes")
    finally:
        for proc in (pipe, gpsd):
            if proc:
                proc.terminate()
                proc.wait(10)
        out.close()
        os.close(master)
    live = live_fixes()
    matched = [f for f in ours if (t := f.ts.strftime("%H:%M:%S.%f")[:12]) in live
               and abs(f.lat - live[t]["lat"]) < 1e-6 and abs(f.lon - live[t]["lon"]) < 1e-6]
    print(f"{name}: ours {len(ours)}, live gpsd {len(live)}, agree {len(matched)}")
    assert len(matched) >= len(ours) - 1  # the last epoch may still be open in gpsd when the stream ends


def test_tpv_and_sky_lines_become_fixes_and_anything_else_is_skipped() -> None:
    decoder = GpsdDecoder()
    lines = (b'{"class":"VERSION","release":"3.22"}\n{"class":"SKY","hdop":0.9,"uSat":9}\n'
             b'{"class":"TPV","mode":1,"time":"2026-11-29T08:00:00.000Z"}\n'
             b'{"class":"TPV","mode":3,"status":2,"time":"2026-11-29T08:00:01.000Z","lat":31.2304,"lon":121.4737,'
             b'"altMSL":12.5,"speed":10.0,"track":90.5}\nnot json\n')
    fixes = [f for i in range(0, len(lines), 7) for f in decoder.feed(lines[i:i + 7])]  # in pieces
    assert fixes == [Fix(ts=datetime(2026, 11, 29, 8, 0, 1, tzinfo=UTC), lat=31.2304, lon=121.4737, speed_kmh=36.0,
                         course_deg=90.5, hdop=0.9, sats=9, quality=2, alt_m=12.5)]
    assert decoder.bad_frames == {"not JSON": 1} and decoder.skipped["TPV without a fix"] == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=80), st.builds(lambda d: json.dumps(d).encode() + b"\n",
                                                             st.dictionaries(st.sampled_from(
                                                                 ["class", "mode", "time", "lat", "lon", "speed",
                                                                  "track", "hdop", "uSat", "altMSL"]),
                                                                 st.one_of(st.none(), st.integers(), st.floats(),
                                                                           st.text(max_size=30),
                                                                           st.sampled_from(["TPV", "SKY"])))))))
def test_no_bytes_break_the_gpsd_decoder(pieces: list[bytes]) -> None:
    decoder = GpsdDecoder()
    for piece in pieces:
        for fix in decoder.feed(piece):
            assert -90 <= fix.lat <= 90 and -180 <= fix.lon <= 180 and fix.ts.tzinfo is not None
            assert all(math.isfinite(v) for v in (fix.speed_kmh, fix.course_deg, fix.hdop, fix.alt_m) if v is not None)
    assert decoder.buffered <= 16_384


def test_infinities_and_nans_from_gpsd_are_no_readings() -> None:
    decoder = GpsdDecoder()  # Python's JSON reads NaN and Infinity; a sick gpsd or a forged one may send them
    fixes = decoder.feed(b'{"class":"SKY","hdop":0.9,"uSat":9}\n{"class":"SKY","hdop":NaN,"uSat":Infinity}\n'
                         b'{"class":"TPV","mode":3,"time":"2026-11-29T08:00:01Z","lat":31.2,"lon":121.4,'
                         b'"speed":Infinity}\n{"class":"TPV","mode":3,"time":"2026-11-29T08:00:02Z","lat":31.2,'
                         b'"lon":121.4,"speed":10,"status":-Infinity}\n'
                         b'{"class":"TPV","mode":3,"time":"2026-11-29T08:00:03Z","lat":31.2,"lon":121.4}\n')
    assert [(f.ts.second, f.hdop, f.sats) for f in fixes] == [(3, 0.9, 9)]  # the last good SKY stands
    assert decoder.bad_frames["bad TPV"] == 2


def test_a_gateway_reads_a_live_gpsd_and_publishes_what_the_serial_path_decodes(
        corpora: Path, tmp_path: Path, gateway_id: str, mqtt_url: str) -> None:
    """gpsd reads the receiver on a pseudo-terminal; the gateway reads gpsd over TCP, and keeps reading
    after gpsd restarts. Every fix it publishes is one our NMEA decoder finds in the same log."""
    raw = (corpora / "nmea" / "bu353s4.log").read_bytes()
    sentences = b"".join(line.rstrip(b"\r\n") + b"\r\n" for line in raw.splitlines() if not line.startswith(b"#"))
    # By time of day: this 2014 log's dates are ones gpsd corrects for the GPS week rollover, we do not.
    nmea = NmeaDecoder()
    serial = {(f.ts.strftime("%H:%M:%S.%f")[:12], round(f.lat, 6), round(f.lon, 6))
              for f in nmea.feed(sentences) + nmea.flush()}
    master, device = open_pty_pair()
    port = free_port()
    profile = tmp_path / "truck.yaml"
    profile.write_text(yaml.safe_dump({
        "gateway": {"id": gateway_id, "broker": mqtt_url, "outbox": str(tmp_path / "outbox.sqlite"),
                    "gps_filter": {"moving_period_s": 1, "stationary_period_s": 1}},
        "gps": {"source": "gpsd", "port": f"socket://127.0.0.1:{port}", "vehicle": "TRK-042"}}))
    subscriber = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/gps")

    def start_gpsd() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["gpsd", "-N", "-n", "-b", "-G", "-S", str(port), device], stderr=subprocess.DEVNULL)
        wait_for_port(port)
        return proc

    gpsd_proc = start_gpsd()
    gateway = subprocess.Popen([sys.executable, "-m", "launcher.cli", "gateway", "--config", str(profile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: os.write(master, sentences) and len(subscriber.events("gps")) >= 3, timeout=30,
                 interval=1.0, what="fixes through gpsd")
        gpsd_proc.terminate()
        gpsd_proc.wait(10)
        before = len(subscriber.events("gps"))
        gpsd_proc = start_gpsd()  # gpsd restarts: the gateway connects again by itself
        wait_for(lambda: os.write(master, sentences) and len(subscriber.events("gps")) > before, timeout=60,
                 interval=1.0, what="fixes after gpsd restarted")
    finally:
        gateway.terminate()
        gateway.wait(20)
        gpsd_proc.terminate()
        gpsd_proc.wait(10)
        os.close(master)
        subscriber.close()
    published = {(e["ts"][11:23], round(e["lat"], 6), round(e["lon"], 6)) for e in subscriber.events("gps")}
    assert published and published <= serial


def test_a_truck_read_through_gpsd_takes_a_shipment_from_loaded_to_arrived(
        tmp_path: Path, db_url: str, mqtt_url: str, gateway_id: str) -> None:
    """The smaller end-to-end scenario: gpsd reads the truck's receiver, the gateway reads gpsd, and
    ingest and the CRM link (real processes) move the shipment."""
    master, device = open_pty_pair()
    port = free_port()
    gpsd_proc = subprocess.Popen(["gpsd", "-N", "-n", "-b", "-G", "-S", str(port), device], stderr=subprocess.DEVNULL)
    source = {"gps": {"source": "gpsd", "port": f"socket://127.0.0.1:{port}", "vehicle": VEHICLE}}
    try:
        with journey(tmp_path, db_url, mqtt_url, gateway_id, "SO-GPSD", source) as trip:
            start = datetime.now(UTC) - timedelta(minutes=15)
            epochs = b"".join(drive([WAREHOUSE, CUSTOMER_SITE], 60.0, start=start, period_s=10.0))
            trip.wait_for("arrived", feed=lambda: os.write(master, epochs))
    finally:
        gpsd_proc.terminate()
        gpsd_proc.wait(10)
        os.close(master)
