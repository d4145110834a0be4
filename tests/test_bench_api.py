"""The API benchmark runs end to end on a small data set and reports every measurement (not its times)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ADMIN_PG_URL, MQTT_URL


@pytest.mark.slow  # a benchmark's run
def test_the_api_benchmark_completes_and_reports_each_path() -> None:
    out = subprocess.run([sys.executable, "-m", "bench.api", "--rows", "20000", "--demands", "600", "--customers", "5",
                          "--seconds", "2", "--rate", "50", "--ingest-rate", "500", "--database", ADMIN_PG_URL,
                          "--broker", MQTT_URL], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    for label in ("(a) GET /v1/shipments/{ref}", "(b) GET /healthz", "(c) shipment query via psycopg"):
        assert re.search(re.escape(label) + r".*n=\s+100\s+p50\s+[\d.]+ ms.*p99\s+[\d.]+ ms", out.stdout), out.stdout
    assert re.search(r"ratios p99: a/b [\d.]+\s+a/c [\d.]+", out.stdout)
    assert re.search(r"ingest published [1-9][\d,]* events", out.stdout), out.stderr[-3000:]  # the publisher ran
