"""Drills of the clustered broker on real processes: three NATS nodes, gateways with real outboxes, ingest
workers sharing JetStream's consumer. Nodes and workers are killed with SIGKILL mid-stream; every
(gateway_id, seq) an outbox handed out must be in the database exactly once. The same stream through
Mosquitto, the single-box default, for comparison. The publish pause the gateways saw and the catch-up
time are printed (`pytest -s`), never asserted."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.brokers import NATS_SERVERS, Mosquitto, NatsCluster
from tests.helpers import Processes, wait_for
from tests.rigs import Box, outbox_depth, outbox_last_seq, tags
from tests.test_faults_ingest import Stream, counts

TICK_S = 0.2  # each gateway's door sees a few pallets this often


@dataclass
class Timeline:
    """What the gateways' outboxes said, sampled every 0.1 s: the longest wait for a PUBACK per gateway."""

    last_acked: dict[str, tuple[float, int]] = field(default_factory=dict)  # gateway → (since, max acked seq)
    pause: dict[str, float] = field(default_factory=dict)


class Rig:
    """Gateways (each its own process, door and outbox) publishing to `brokers(i)`, ingest workers, a feeder."""

    def __init__(self, folder: Path, env: dict[str, str], brokers: Callable[[int], str | list[str]],
                 gateways: int = 4) -> None:
        self.procs = Processes(env, folder)
        self.boxes = [Box(folder, self.procs, brokers(i), name=f"gateway-{i}") for i in range(gateways)]
        self.stop_feed = threading.Event()
        self.timeline = Timeline()
        self.threads: list[threading.Thread] = []
        self.fed = 0  # pallets passed through each door

    def start(self, workers: int) -> None:
        for n in range(1, workers + 1):
            self.procs.start(f"ingest-{n}", "ingest")
        for box in self.boxes:
            box.start()
        self.threads = [threading.Thread(target=self._feed), threading.Thread(target=self._watch)]
        for thread in self.threads:
            thread.start()

    def _feed(self, per_tick: int = 10) -> None:
        while not self.stop_feed.wait(TICK_S):
            for box in self.boxes:
                box.pass_door(tags(self.fed, per_tick))
            self.fed += per_tick

    def _watch(self) -> None:
        t = self.timeline
        while not self.stop_feed.wait(0.1):
            now = time.monotonic()
            for box in self.boxes:
                acked = box.last_acked()
                since, seen = t.last_acked.get(box.gateway_id, (now, -1))
                if acked != seen:
                    since = now
                t.last_acked[box.gateway_id] = (since, acked)
                t.pause[box.gateway_id] = max(t.pause.get(box.gateway_id, 0.0), now - since)

    def handed_out(self) -> dict[str, int]:
        return {box.gateway_id: outbox_last_seq(box.outbox) for box in self.boxes}

    def stored(self, db_url: str) -> dict[str, tuple[int, int]]:
        """Per gateway: (rows, distinct seqs) of its observations."""
        with psycopg.connect(db_url) as conn:
            rows = conn.execute("SELECT gateway_id, count(*), count(DISTINCT seq) FROM tag_observations "
                                "GROUP BY gateway_id").fetchall()
        return {gateway: (n, distinct) for gateway, n, distinct in rows}

    def caught_up(self, db_url: str, handed: dict[str, int]) -> bool:
        """Every seq up to `handed` of each gateway is stored."""
        with psycopg.connect(db_url) as conn:
            return all(conn.execute("SELECT count(DISTINCT seq) FROM tag_observations WHERE gateway_id = %s "
                                    "AND seq <= %s", (gateway, last)).fetchone()[0] == last
                       for gateway, last in handed.items())

    def outage(self, db_url: str, seconds: float, restart: Callable[[], object]) -> float:
        """What was killed stays away `seconds`, then `restart`; returns the time from then until everything
        handed out before it is stored."""
        time.sleep(seconds)  # the outage itself
        held = self.handed_out()
        back = time.monotonic()
        restart()
        wait_for(lambda: self.caught_up(db_url, held), timeout=300, what="what was held during the outage")
        return time.monotonic() - back

    def conclude(self, db_url: str) -> int:
        """The stream flows again; then the doors stop and every outbox drains: every event stored once."""
        _flowing(self, db_url, 400)
        handed = self.finish(db_url)
        self.procs.check_alive()
        return assert_exactly_once(self, db_url, handed)

    def finish(self, db_url: str) -> dict[str, int]:
        """Stop the doors, let every outbox drain and ingest store it; the last seq of each gateway."""
        self.stop_feed.set()
        for thread in self.threads:
            thread.join(30)
        for box in self.boxes:  # each passage one observation, once the door saw nothing for a moment
            wait_for(lambda box=box: outbox_last_seq(box.outbox) == self.fed and outbox_depth(box.outbox) == 0,
                     timeout=180, what=f"{box.name}'s last observations out of its outbox")
        handed = self.handed_out()
        wait_for(lambda: self.caught_up(db_url, handed), timeout=180, what="every event stored")
        return handed

    def close(self) -> None:
        self.stop_feed.set()
        for thread in self.threads:
            thread.join(30)
        self.procs.stop()
        for box in self.boxes:
            box.close()


def assert_exactly_once(rig: Rig, db_url: str, handed: dict[str, int]) -> int:
    """Every (gateway, seq) from 1 to the last handed out is stored, and once; returns how many."""
    assert all(last > 0 for last in handed.values()), handed
    assert rig.stored(db_url) == {gateway: (last, last) for gateway, last in handed.items()}
    return sum(handed.values())


def report(drill: str, **figures: object) -> None:
    print(f"\n{drill}: " + ", ".join(f"{k} {v:.1f} s" if isinstance(v, float) else f"{k} {v}"
                                     for k, v in figures.items()))


def _broker_init(cluster: NatsCluster, env: dict[str, str]) -> None:
    done = subprocess.run([sys.executable, "-m", "launcher.cli", "broker", "init"], capture_output=True, text=True,
                          env={**env, "CARGOTRACE_BROKER_URL": cluster.url}, timeout=90)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path / "nats", NATS_SERVERS[request.param]).start()
    yield c
    c.stop()


def _cluster_rig(tmp_path: Path, db_url: str, cluster: NatsCluster, ack_wait_s: float = 10.0) -> Rig:
    env = {**os.environ, "CARGOTRACE_DATABASE_URL": db_url, "CARGOTRACE_BROKER_URL": cluster.url,
           "CARGOTRACE_INGEST_ACK_WAIT_S": str(ack_wait_s)}
    _broker_init(cluster, env)  # before any gateway publishes
    return Rig(tmp_path, env, lambda i: cluster.mqtt_urls(i % len(cluster.nodes)))


def _flowing(rig: Rig, db_url: str, more: int) -> None:
    """Wait until `more` further observations are stored: the stream flows."""
    start = sum(n for n, _ in rig.stored(db_url).values())
    wait_for(lambda: sum(n for n, _ in rig.stored(db_url).values()) >= start + more, timeout=120,
             what=f"{more} more observations stored")


DRILL_1 = [pytest.param("wheel", 3.0, id="wheel"),
           pytest.param("debian", 3.0, id="debian", marks=pytest.mark.slow),
           pytest.param("wheel", 30.0, id="wheel-30s-outage", marks=pytest.mark.slow),
           pytest.param("debian", 30.0, id="debian-30s-outage", marks=pytest.mark.slow)]


@pytest.mark.parametrize(("cluster", "outage_s"), DRILL_1, indirect=["cluster"])
def test_meta_leader_then_stream_leader_killed_mid_stream_every_seq_stored_once(
        tmp_path: Path, db_url: str, cluster: NatsCluster, outage_s: float) -> None:
    """Drill 1: four gateways, two workers. The meta leader is SIGKILLed (one node down: the cluster goes
    on); then the stream's leader (two down: no quorum, the gateways' outboxes hold everything); both come
    back after `outage_s`."""
    rig = _cluster_rig(tmp_path, db_url, cluster)
    try:
        rig.start(workers=2)
        _flowing(rig, db_url, 400)
        meta = cluster.meta_leader()
        cluster.node(meta).stop(signal.SIGKILL)
        wait_for(lambda: cluster.meta_leader() not in ("", meta), timeout=60, what="a new meta leader")
        _flowing(rig, db_url, 400)  # one node down: the stream goes on
        pause_one = max(rig.timeline.pause.values())
        leader = wait_for(lambda: cluster.stream_leader("$MQTT_msgs") not in ("", meta)
                          and cluster.stream_leader("$MQTT_msgs"), timeout=60, what="the stream's leader")
        cluster.node(leader).stop(signal.SIGKILL)
        catch_up = rig.outage(db_url, outage_s, lambda: [cluster.start_node(cluster.node(n)) for n in (meta, leader)])
        total = rig.conclude(db_url)
    finally:
        rig.close()
    report(f"drill 1 ({cluster.version()}, {outage_s:.0f} s outage)", events=total,
           pause_one_node_down=pause_one, pause_two_nodes_down=max(rig.timeline.pause.values()),
           catch_up_after_restart=catch_up)


@pytest.mark.parametrize("cluster", ["wheel", pytest.param("debian", marks=pytest.mark.slow)], indirect=True)
def test_an_ingest_worker_killed_mid_batch_loses_and_doubles_nothing(
        tmp_path: Path, db_url: str, cluster: NatsCluster) -> None:
    """Drill 2: both workers hold a batch they cannot commit yet (the table is locked); one is SIGKILLed;
    its messages, never acknowledged, go to the other after the ack wait."""
    env = {**os.environ, "CARGOTRACE_DATABASE_URL": db_url, "CARGOTRACE_BROKER_URL": cluster.url,
           "CARGOTRACE_INGEST_ACK_WAIT_S": "2"}
    _broker_init(cluster, env)
    procs = Processes(env, tmp_path)
    stream = Stream(cluster.mqtt_urls(1)[0])
    try:
        for name in ("ingest-1", "ingest-2"):
            procs.start(name, "ingest")
            wait_for(lambda name=name: "bound to consumer" in procs.log(name), what=f"{name} bound")
        with psycopg.connect(db_url) as blocker:
            blocker.execute("LOCK TABLE positions IN EXCLUSIVE MODE")
            sender = threading.Thread(target=stream.publish, args=(1000,))
            sender.start()
            wait_for(lambda: _waiting_writers(blocker) == 2, timeout=60, what="both workers mid-batch")
            procs.kill("ingest-1")  # mid-batch: its rows not committed, its messages not acknowledged
            blocker.commit()
        sender.join(120)
        sent = 5 * 1000
        total = wait_for(lambda: (c := counts(db_url))[0] >= sent and c, timeout=120, what="all events")
        procs.check_alive()
    finally:
        procs.stop()
        stream.close()
    assert total[:2] == (sent, sent)  # none lost, none twice
    survivor = _counters(procs.log("ingest-2"))
    assert survivor["redelivered"] > 0  # the killed worker's batch came to it again
    report(f"drill 2 ({cluster.version()})", events=sent, redelivered_to_the_survivor=survivor["redelivered"])


def _waiting_writers(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                        "WHERE NOT l.granted AND d.datname = current_database()").fetchone()[0]


def _counters(log: str) -> dict[str, int]:
    """A worker's last words: `ingest stopped: {counters}`."""
    found = re.findall(r"ingest stopped: (\{.*\})", log)
    assert found, log[-2000:]
    return json.loads(found[-1])


@pytest.mark.parametrize("outage_s", [3.0, pytest.param(30.0, marks=pytest.mark.slow)])
def test_the_same_stream_through_mosquitto_with_the_broker_killed(tmp_path: Path, db_url: str,
                                                                  outage_s: float) -> None:
    """Drill 4, for comparison: the single-box default (one Mosquitto, one worker on a plain persistent
    subscription) with the broker SIGKILLed mid-stream and back after `outage_s`."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    env = {**os.environ, "CARGOTRACE_DATABASE_URL": db_url, "CARGOTRACE_MQTT_URL": broker.url,
           "CARGOTRACE_INGEST_CLIENT_ID": f"ingest-{tmp_path.name}"[-64:]}
    rig = Rig(tmp_path, env, lambda i: broker.url)
    try:
        rig.procs.start("ingest-1", "ingest")
        wait_for(lambda: "subscribed" in rig.procs.log("ingest-1"), what="ingest to subscribe")
        rig.start(workers=0)
        _flowing(rig, db_url, 400)
        broker.stop(signal.SIGKILL)
        catch_up = rig.outage(db_url, outage_s, broker.start)
        total = rig.conclude(db_url)
    finally:
        rig.close()
        broker.stop()
    report(f"drill 4 (Mosquitto, {outage_s:.0f} s outage)", events=total,
           pause_broker_down=max(rig.timeline.pause.values()), catch_up_after_restart=catch_up)
