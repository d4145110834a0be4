"""Database failover drills on real processes: a PostgreSQL primary with a streaming standby, ingest
connected with a multi-host URL (target_session_attrs=read-write), the primary killed with SIGKILL mid-
stream and the standby promoted with `cargotrace db promote`. With synchronous replication nothing
acknowledged is lost; without it, the drill counts what the standby never received."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from common.settings import Settings
from crm_link.correlate import unapplied
from storage.failover import hosts, state
from storage.migrate import migrate
from tests.brokers import Mosquitto
from tests.helpers import Processes, wait_for
from tests.postgres_pair import Pair
from tests.test_faults_ingest import Stream, counts
from tracking_api.app import create_app
from tracking_api.keys import create_key

MESSAGES, EVENTS = 2000, 5  # 10 000 fixes from 4 gateways


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


def cargotrace(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "CARGOTRACE_DATABASE_URL": url}, timeout=120)


def failover_mid_stream(tmp_path: Path, broker: Mosquitto, pair: Pair, settled: Callable[[int], bool]) -> int:
    """Stream 10 000 fixes through ingest, kill the primary a third of the way, promote the standby with
    the CLI, wait until `settled(sent)` holds on the new primary; returns the fixes the broker acknowledged."""
    migrate(pair.primary.url)
    procs = Processes({**os.environ, "CARGOTRACE_DATABASE_URL": pair.url, "CARGOTRACE_MQTT_URL": broker.url,
                       "CARGOTRACE_INGEST_CLIENT_ID": f"ingest-{tmp_path.name}"[-64:]}, tmp_path)
    procs.start("ingest", "ingest")
    procs.start("crm", "crm", "run")  # the other writer: it reads what ingest wrote and moves its cursor
    wait_for(lambda: "subscribed" in procs.log("ingest"), timeout=30, what="ingest to subscribe")
    stream = Stream(broker.url)
    sender = threading.Thread(target=stream.publish, args=(MESSAGES, EVENTS))
    sender.start()
    wait_for(lambda: counts(pair.primary.url)[0] >= MESSAGES * EVENTS // 3, timeout=60, what="a third in")
    pair.primary.kill()
    if pair.link:
        pair.link.cut()  # what was on the way to the standby is lost with the primary's building
    # until a standby is promoted, every host refuses writes: the writers say what to do, on one line
    wait_for(lambda: "no host of CARGOTRACE_DATABASE_URL accepts writes: promote a standby" in procs.log("ingest"),
             timeout=60, what="ingest to find no primary")
    promoted = cargotrace("db", "promote", pair.standby.url, url=pair.url)
    assert promoted.returncode == 0 and "promoted" in promoted.stdout, promoted.stderr
    # it inherited the synchronous setting: kept, its commits would wait for a standby it does not have
    assert pair.synchronous == ("synchronous replication to standby1 switched off" in promoted.stdout)
    sender.join(180)
    assert not sender.is_alive()
    sent = MESSAGES * EVENTS  # every batch the broker holds unacknowledged comes again, to the new primary
    wait_for(lambda: settled(sent), timeout=120, what="ingest to catch up on the new primary")
    procs.stop()
    stream.close()
    return sent


def test_with_synchronous_replication_a_promoted_standby_has_every_acknowledged_fix_once(
        tmp_path: Path, broker: Mosquitto) -> None:
    pair = Pair(synchronous=True)
    try:
        migrate(pair.primary.url)
        with psycopg.connect(pair.primary.url) as conn:
            key = create_key(conn, "dispatcher")
        with TestClient(create_app(Settings(database_url=pair.url))) as api:  # the API reads and writes too
            listed = api.get("/v1/shipments", headers={"Authorization": f"Bearer {key}"})
            assert listed.status_code == 200, listed.text
            sent = failover_mid_stream(tmp_path, broker, pair,
                                       lambda n: counts(pair.standby.url)[1] >= n and correlated(pair.standby.url))
            # its pooled connections to the dead primary are dropped, not handed to the first requests
            after = [api.get("/v1/shipments", headers={"Authorization": f"Bearer {key}"}).status_code
                     for _ in range(3)]
        stored, distinct, _ = counts(pair.standby.url)
        status = cargotrace("db", "status", url=pair.url)
    finally:
        pair.stop()
    assert after == [200, 200, 200]
    assert (stored, distinct) == (sent, sent)  # nothing lost, nothing doubled
    # the old primary is gone, the standby now takes writes: exactly one primary
    assert status.returncode == 0, status.stderr
    assert "unreachable" in status.stdout and status.stdout.count(": primary") == 1, status.stdout


@pytest.mark.slow
def test_without_synchronous_replication_the_loss_is_exactly_what_the_standby_never_received(
        tmp_path: Path, broker: Mosquitto) -> None:
    pair = Pair(synchronous=False, link_delay_s=0.05)  # the standby 50 ms away
    seen: list[int] = []

    def quiet_for_3_s(_: int) -> bool:  # some fixes may never come: wait until no more arrive
        seen.append(counts(pair.standby.url)[0])
        return len(seen) > 60 and seen[-1] == seen[-61] > 0

    try:
        sent = failover_mid_stream(tmp_path, broker, pair, quiet_for_3_s)
        kept, (stored, distinct, _) = keys(pair.standby.url), counts(pair.standby.url)
        pair.primary.start()  # the old primary, fenced off from every writer, shows what it had committed
        committed_on_old = keys(pair.primary.url)
    finally:
        pair.stop()
    lost = committed_on_old - kept
    print(f"async failover, standby 50 ms away: {sent} sent, {len(kept)} on the promoted standby, "
          f"{len(lost)} committed on the old primary and never replicated")
    assert stored == distinct  # nothing doubled
    assert len(kept) + len(lost) == sent  # every fix is either on the new primary or in the lost window


def correlated(url: str) -> bool:
    """The correlator, reconnected to the new primary, has read every stored fix."""
    with psycopg.connect(url) as conn:
        return unapplied(conn, "positions") == 0


def keys(url: str) -> set[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        return set(conn.execute("SELECT gateway_id, seq FROM positions").fetchall())


def test_db_status_names_each_host_of_a_multi_host_url(tmp_path: Path) -> None:
    pair = Pair(synchronous=False)
    try:
        assert [state(url).role for url in hosts(pair.url)] == ["primary", "standby"]
        refused = cargotrace("db", "promote", pair.primary.url, url=pair.url)
    finally:
        pair.stop()
    assert refused.returncode != 0 and "already a primary" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
