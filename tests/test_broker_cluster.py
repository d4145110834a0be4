"""The clustered broker on real servers: three NATS nodes (Debian's 2.9 and the pinned wheel's), gateways
publishing MQTT QoS 1 to them, ingest consuming JetStream's durable consumer that `broker init` made."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from common.contract import KINDS, NATS_SUBJECTS, parse_topic, subject_of, topic, topic_of
from common.settings import Settings
from gateway.check import check
from ingest.jetstream import consumer_exists, init, servers
from ingest.jetstream_worker import JetStreamWorker
from launcher.embedded import free_port
from tests.brokers import NATS_SERVERS, NatsCluster
from tests.helpers import Processes, wait_for
from tests.test_faults_ingest import Stream, counts

gateway_ids = st.from_regex(r"[a-z0-9-]{1,64}", fullmatch=True)


@given(gateway_ids, st.sampled_from(sorted(KINDS)))
def test_a_contract_topic_and_its_nats_subject_map_both_ways(gateway: str, kind: str) -> None:
    name = topic(gateway, kind)
    subject = subject_of(name)
    assert "/" not in subject and subject.startswith(NATS_SUBJECTS[:-1])
    assert topic_of(subject) == name and parse_topic(topic_of(subject)) == (gateway, kind)


@given(st.text(st.characters(blacklist_categories=["Cs"]), max_size=80))
def test_a_subject_that_is_no_contract_topic_stays_none_of_them(subject: str) -> None:
    found = parse_topic(topic_of(subject))
    assert found is None or subject_of(topic(*found)) == subject  # only a contract subject maps to a topic


@given(st.lists(st.from_regex(r"(nats|tls)://[a-z0-9.-]{1,20}:[0-9]{1,5}", fullmatch=True), min_size=1, max_size=5))
def test_the_broker_url_names_every_node_in_order(urls: list[str]) -> None:
    joined = ",".join(urls)
    assert Settings(broker_url=joined).broker_url == joined
    assert servers(joined) == urls


@pytest.fixture(params=sorted(NATS_SERVERS))
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path / "nats", NATS_SERVERS[request.param]).start()
    yield c
    c.stop()


@pytest.fixture
def worker(db_url: str, cluster: NatsCluster) -> Iterator[JetStreamWorker]:
    """Ingest on the cluster, in a thread; started by the test once the consumer exists."""
    w = JetStreamWorker(Settings(database_url=db_url, broker_url=cluster.url, ingest_batch_seconds=0.05))
    stop = threading.Event()
    thread = threading.Thread(target=w.run, args=(stop,), daemon=True)
    w.start = thread.start  # type: ignore[attr-defined]
    yield w
    stop.set()
    if thread.is_alive():
        thread.join(10)


def test_what_gateways_publish_after_broker_init_waits_for_ingest_and_lands_once(
        cluster: NatsCluster, worker: JetStreamWorker, db_url: str) -> None:
    assert "consumer cargotrace-ingest created" in str(asyncio.run(init(cluster.url, 3, 10)))
    stream = Stream(cluster.mqtt_urls(1)[0])  # a gateway on the second node
    sent = stream.publish(200)  # every message PUBACKed while no worker runs
    assert asyncio.run(init(cluster.url, 3, 10)).waiting == 200  # held for the consumer, changed nothing
    worker.start()  # type: ignore[attr-defined]
    assert wait_for(lambda: (c := counts(db_url))[0] >= sent and c, what="every event")[:2] == (sent, sent)
    stream.sent_messages = 0
    stream.publish(200)  # the same events again, as a gateway resends after a reconnect
    wait_for(lambda: worker.counters["messages"] >= 400, what="the copies")
    stream.close()
    assert counts(db_url)[:2] == (sent, sent)  # stored once
    assert asyncio.run(init(cluster.url, 3, 10)).waiting == 0


def test_without_the_consumer_the_cluster_drops_what_it_pubacked(cluster: NatsCluster) -> None:
    """Why `broker init` comes before the first gateway: the stream has interest retention."""
    stream = Stream(cluster.mqtt_urls()[0])
    stream.publish(20)  # all PUBACKed
    stream.close()
    done = asyncio.run(init(cluster.url, 3, 10))
    assert (done.stream_created, done.consumer_created, done.waiting) == (False, True, 0)


def _cargotrace(*args: str, broker_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CARGOTRACE_BROKER_URL": broker_url, "CARGOTRACE_DATABASE_URL": "postgresql://nowhere"}
    return subprocess.run([sys.executable, "-m", "launcher.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("cluster", ["wheel"], indirect=True)
def test_broker_init_and_ingest_say_in_one_line_what_is_missing(cluster: NatsCluster) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    refused = _cargotrace("broker", "init", broker_url=nowhere)
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
    assert f"cannot reach the NATS cluster at {nowhere}" in refused.stderr and "CARGOTRACE_BROKER_URL" in refused.stderr
    early = _cargotrace("ingest", broker_url=cluster.url)
    assert early.returncode == 1 and "run `cargotrace broker init`" in early.stderr.splitlines()[-1]
    done = _cargotrace("broker", "init", broker_url=cluster.url)
    assert done.returncode == 0 and "consumer cargotrace-ingest created" in done.stdout


def test_gateway_check_logs_in_to_every_node_of_the_list_in_mqtt_3_1_1(cluster: NatsCluster, tmp_path: Path) -> None:
    """NATS speaks MQTT 3.1.1 only: the check asks in 5 first (its PUBACK says why a publish is refused)."""
    profile = tmp_path / "gw.yaml"
    profile.write_text(yaml.safe_dump({"gateway": {"id": "dock-1", "broker": cluster.mqtt_urls(),
                                                   "outbox": str(tmp_path / "outbox.sqlite")},
                                       "jt808": {"listen": f"127.0.0.1:{free_port()}",
                                                 "terminals": {"013912345678": "TRK-042"}}}))
    lines: list[str] = []
    assert check(str(profile), 1, lines.append) == 0, lines
    assert [line for line in lines if line.startswith("broker ")] == [
        f"broker 127.0.0.1:{node.mqtt}: logged in as dock-1, wrote its state topic" for node in cluster.nodes]


@pytest.mark.parametrize("cluster", ["wheel"], indirect=True)
def test_ingest_started_while_two_nodes_are_down_waits_for_the_majority(cluster: NatsCluster, db_url: str,
                                                                          tmp_path: Path) -> None:
    asyncio.run(init(cluster.url, 3, 10))
    for node in cluster.nodes[1:]:
        node.stop()
    wait_for(lambda: not asyncio.run(_answers(cluster.url)), timeout=60, what="the last node to give up leading")
    procs = Processes({**os.environ, "CARGOTRACE_BROKER_URL": cluster.url, "CARGOTRACE_DATABASE_URL": db_url},
                      tmp_path)
    procs.start("ingest", "ingest")
    try:
        wait_for(lambda: "does not answer JetStream requests" in procs.log("ingest"), what="ingest waiting")
        for node in cluster.nodes[1:]:
            cluster.start_node(node)
        wait_for(lambda: "bound to consumer" in procs.log("ingest"), timeout=60, what="ingest bound")
        stream = Stream(cluster.mqtt_urls()[0])
        sent = stream.publish(50)
        stream.close()
        assert wait_for(lambda: (c := counts(db_url))[0] >= sent and c, what="every event")[:2] == (sent, sent)
        procs.check_alive()
    finally:
        procs.stop()


async def _answers(broker_url: str) -> bool:
    """Whether JetStream answers for ingest's consumer (a lone node leads on for some seconds)."""
    nc = await nats.connect(servers(broker_url))
    try:
        return await consumer_exists(nc.jetstream(timeout=1))
    finally:
        await nc.close()
