"""Small helpers shared by tests: a collecting MQTT subscriber and condition waiting."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

import paho.mqtt.client as mqtt


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll a condition (a database count, a file) until it holds; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


class Subscriber:
    """Collects the messages of a topic filter from a real broker."""

    def __init__(self, mqtt_url: str, topic_filter: str) -> None:
        url = urlparse(mqtt_url)
        self.messages: list[mqtt.MQTTMessage] = []
        self.changed = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        if url.username:
            self.client.username_pw_set(url.username, url.password)
        self.client.connect(url.hostname or "127.0.0.1", url.port or 1883)
        self.client.loop_start()
        assert subscribed.wait(10), "subscription not acknowledged by the broker"

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.changed:
            self.messages.append(msg)
            self.changed.notify_all()

    def events(self, kind: str) -> list[dict[str, Any]]:
        with self.changed:
            msgs = list(self.messages)
        return [e for m in msgs if m.topic.endswith("/" + kind) for e in json.loads(m.payload)["events"]]

    def wait_events(self, kind: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.events(kind)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"got {len(self.events(kind))} {kind} events, expected {count}")
                self.changed.wait(left)
        return self.events(kind)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Processes:
    """`cargotrace` commands as separate processes, each with its own log file."""

    made: ClassVar[weakref.WeakSet[Processes]] = weakref.WeakSet()  # for stop_left_running

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []
        Processes.made.add(self)

    def start(self, name: str, *args: str) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs.append((name, subprocess.Popen([sys.executable, "-m", "launcher.cli", *args], env=self.env,
                                                  stdout=log, stderr=subprocess.STDOUT)))

    def check_alive(self) -> None:
        for name, proc in self.procs:
            assert proc.poll() is None, f"{name} exited: {(self.logs / f'{name}.log').read_text()[-3000:]}"

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process (SIGKILL: no clean-up at all) and forget it."""
        for entry in [e for e in self.procs if e[0] == name]:
            entry[1].send_signal(sig)
            entry[1].wait(15)
            self.procs.remove(entry)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def stop(self) -> None:
        for _, proc in self.procs:
            proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def stop_left_running(before: set[Processes]) -> None:
    """Stop the processes of every Processes made since `before`: a test that failed before its own
    stop() leaves none running to disturb the next ones."""
    for procs in list(Processes.made):
        if procs not in before:
            procs.stop()


class ApiServer:
    """The API app served by a real uvicorn on a free local port, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from launcher.embedded import free_port
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        wait_for(lambda: self.server.started, what="the API to start")
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class SseReader:
    """Reads one Server-Sent Events stream in a thread; `next()` awaits the next event (name, JSON data)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        import httpx
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = httpx.Client(timeout=httpx.Timeout(5.0, read=None))
        self.response = self.client.send(self.client.build_request("GET", url, headers=headers), stream=True)
        self.status = self.response.status_code
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event, data = "message", []
        try:
            for line in self.response.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    self.events.put((event, json.loads("\n".join(data))))
                    event, data = "message", []
        except Exception:  # the stream was closed by close(): nothing more to read
            return

    def next(self, event: str | None = None, timeout: float = 10.0) -> tuple[str, Any]:
        """The next event (of this name, skipping others); fails after a generous timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {event or 'SSE'} event within {timeout:.0f} s") from None
            if event is None or got[0] == event:
                return got

    def close(self) -> None:
        self.response.close()
        self.client.close()
