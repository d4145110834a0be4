"""Our NMEA decoder against a running gpsd: the same bytes on a pseudo-terminal, gpsd's TPV read live
with gpspipe. `make test` installs Debian's gpsd and gpsd-clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from device_drivers.gps import NmeaDecoder
from device_drivers.simulators import open_pty_pair
from launcher.embedded import free_port, wait_for_port
from tests.helpers import wait_for


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
