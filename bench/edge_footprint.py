"""What an edge box carries: the installed size of a gateway's virtual environment and the memory of a
running gateway, for the edge install (`cargotrace[gateway]`) against a reference measured in the same
run: an install of an earlier commit (`--before REF`, e.g. one from before the extras existed, which
installed everything) or else the full install (`cargotrace[gateway,central]`).

Each gateway reads a Mercury reader on a pseudo-terminal and publishes a portal passage to the
broker; its resident memory is read from /proc once the broker has its observations.

    python -m bench.edge_footprint [--before REF] [--broker mqtt://127.0.0.1:1883]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import uuid
from pathlib import Path

import yaml

from common import epc
from device_drivers.rfid import mercury
from device_drivers.simulators import open_pty_pair, portal_passage
from tests.helpers import Subscriber

ROOT = Path(__file__).resolve().parent.parent


def build_venv(folder: Path, extras: str, source: Path = ROOT) -> Path:
    """A fresh virtual environment holding the project (from `source`) with the extras' dependencies only."""
    dist = folder / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)], check=True)
    (wheel,) = dist.glob("cargotrace-*.whl")
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[{extras}]" if extras else str(wheel)],
                   check=True)
    return venv


def run_gateway(command: list[str], broker: str, folder: Path) -> tuple[list[dict], int]:
    """Run a gateway (`command` + --config) on a simulated Mercury reader until the broker has one passage
    of two pallets; returns their observations and the gateway's resident memory (kB) at that moment."""
    fd, port = open_pty_pair()
    held = os.open(port, os.O_RDWR | os.O_NOCTTY)  # reading the master before the gateway opens the port: EIO
    gateway_id = f"edge-{uuid.uuid4().hex[:8]}"
    profile = folder / f"{gateway_id}.yaml"
    profile.write_text(yaml.safe_dump({
        "gateway": {"id": gateway_id, "broker": broker, "outbox": str(folder / f"{gateway_id}.sqlite")},
        "readers": [{"name": "door-1", "protocol": "thingmagic-mercury", "port": port, "region": "EU",
                     "antennas": [{"port": 1, "read_point": "wh/door-1", "side": "outer"},
                                  {"port": 2, "read_point": "wh/door-1", "side": "inner"}]}]}))
    subscriber = Subscriber(broker, f"cargotrace/v1/{gateway_id}/rfid")
    gateway = subprocess.Popen([*command, "--config", str(profile)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        heard = b""
        while mercury.start_continuous_read() not in heard:  # the port is open: it asks the reader to stream
            heard += os.read(fd, 256)
        tags = [epc.encode(epc.sgtin_uri("0614141", "812345", n), filter_=6) for n in (1, 2)]
        os.write(fd, portal_passage(tags, outer=1, inner=2, outward=True))
        events = subscriber.wait_events("rfid", len(tags), timeout=30)
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{gateway.pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
    finally:
        gateway.terminate()
        _, err = gateway.communicate(timeout=20)
        subscriber.close()
        os.close(held)
        os.close(fd)
    if gateway.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {gateway.returncode}: {err.decode()[-2000:]}")
    return events, rss


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def _packages(venv: Path) -> int:
    listed = subprocess.run([str(venv / "bin" / "pip"), "list", "--format", "json"], capture_output=True, text=True,
                            check=True).stdout
    return len(json.loads(listed))


def _checkout(ref: str, folder: Path) -> Path:
    folder.mkdir(parents=True)
    archive = folder / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "src", filter="data")
    return folder / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", metavar="REF", help="git ref of the reference install (default: the full install)")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        empty = folder / "empty"
        subprocess.run([sys.executable, "-m", "venv", str(empty)], check=True)
        runs = []
        if args.before:
            venv = build_venv(folder / "before", "", _checkout(args.before, folder / "before"))
            runs.append((f"{args.before} (everything)", venv, [str(venv / "bin" / "cargotrace"), "gateway"]))
        else:
            venv = build_venv(folder / "full", "gateway,central")
            runs.append(("cargotrace[gateway,central]", venv, [str(venv / "bin" / "cargotrace-gateway")]))
        venv = build_venv(folder / "edge", "gateway")
        runs += [("cargotrace[gateway]", venv, [str(venv / "bin" / "cargotrace-gateway")]),
                 ("  the same, `cargotrace gateway`", venv, [str(venv / "bin" / "cargotrace"), "gateway"])]
        base = _size_mb(empty)
        print(f"{'install':34} {'venv MB':>8} {'beyond pip':>11} {'packages':>9} {'gateway RSS MB':>15}")
        measured = []
        for name, venv, command in runs:
            _, rss = run_gateway(command, args.broker, folder)
            size = _size_mb(venv)
            measured.append((size - base, rss))
            print(f"{name:34} {size:8.1f} {size - base:11.1f} {_packages(venv):9} {rss / 1024:15.1f}")
        (ref_size, ref_rss), (edge_size, edge_rss) = measured[0], measured[1]
        print(f"edge / reference: installed beyond pip {edge_size / ref_size:.2f}x, RSS {edge_rss / ref_rss:.2f}x")


if __name__ == "__main__":
    main()
