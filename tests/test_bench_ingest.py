"""The ingest benchmark on the clustered broker runs end to end on a small stream and reports each line (not its
figures)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.brokers import NATS_SERVERS, NatsCluster
from tests.conftest import ADMIN_PG_URL


@pytest.mark.slow
def test_the_ingest_benchmark_on_a_nats_cluster_reports_the_floor_each_worker_count_and_the_delay(
        tmp_path: Path) -> None:
    cluster = NatsCluster(tmp_path, NATS_SERVERS["wheel"]).start()
    try:
        common = [sys.executable, "-m", "bench.ingest", "--events", "2000", "--database", ADMIN_PG_URL,
                  "--broker", cluster.url, "--mqtt", ",".join(cluster.mqtt_urls())]
        scaling = subprocess.run([*common, "--workers", "2"], capture_output=True, text=True, timeout=300)
        single = subprocess.run([*common, "--naive-events", "100", "--rate", "500", "--seconds", "2"],
                                capture_output=True, text=True, timeout=300)
    finally:
        cluster.stop()
    assert scaling.returncode == 0, scaling.stderr[-3000:]
    assert re.search(r"\(a\) COPY \+ idempotent insert\s+[\d,]+ rows/s", scaling.stdout), scaling.stdout
    for workers in (1, 2):
        assert re.search(rf"\(b\) {workers} ingest worker\(s\)\s+[\d,]+ rows/s\s+b/a = [\d.]+", scaling.stdout)
    assert single.returncode == 0, single.stderr[-3000:]
    assert re.search(r"publish → commit at 500 events/s: p50 \d+ ms, p99 \d+ ms \([1-9][\d,]* messages\)",
                     single.stdout), single.stdout
