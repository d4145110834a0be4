"""bench.freshness runs end to end on the real services it starts (its own Mosquitto with the shipped config, ingest,
a correlator, the API) and reports what it measured: every probe's status change reached its SSE stream."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.freshness import Level, levels
from tests.conftest import ADMIN_PG_URL


def test_a_tiny_level_times_every_probe_from_publish_to_its_sse_status(tmp_path: Path) -> None:
    out = tmp_path / "freshness.json"
    run = subprocess.run([sys.executable, "-m", "bench.freshness", "--levels", "transit:50", "--seconds", "3",
                          "--samples", "5", "--trucks", "20", "--database", ADMIN_PG_URL, "--json", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    [level] = json.loads(out.read_text())["levels"]
    assert level["level"] == "transit:50" and "| transit:50 |" in run.stdout
    assert all(x is not None for x in level["latencies"] + level["stored"]) and len(level["latencies"]) == 5
    # each status event came after its fix was stored: the probe timed the whole way, not a shortcut
    assert all(sse > stored for sse, stored in zip(level["latencies"], level["stored"], strict=True))
    assert level["reached"] > 0 and level["ingest_rows_s"] > 0 and level["applied_s"] > 0
    assert level["drained_s"] is not None and level["left"] == 0
    assert set(level["cpu"]) == {"ingest", "crm-1", "api", "mosquitto", "fleet", "bench", "postgres"}
    assert level["cpu"]["crm-1"] > 0 and level["cpu"]["ingest"] > 0


def test_levels_are_read_from_the_command_line_and_a_wrong_one_is_named() -> None:
    assert levels("idle:1000, transit:7.5") == [Level("idle", 1000.0), Level("transit", 7.5)]
    with pytest.raises(argparse.ArgumentTypeError, match="'moving:5'"):
        levels("idle:1,moving:5")
