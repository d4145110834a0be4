"""`cargotrace gateway check --config FILE`: the bring-up of a gateway box, before its service runs.

It validates the profile with the files it names, logs in to the broker as the gateway and writes its
state topic (the retained state it leaves is `offline`, true of a gateway that is not running), checks
that the telematics endpoints' ports are free, then opens every reader and the GPS for some seconds and
shows, second by second, what they read: reads per second per antenna, tags, RSSI; fixes with their
quality. Reads are counted here and never published: a tag shown to a door during a check moves no
shipment. It ends with a verdict: problems (exit 1) and warnings (exit 0).
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.contract import topic
from device_drivers.types import Fix, TagRead
from firmware_configs.profile import GatewayProfile, load_profile, validate_file
from gateway.devices import GPS_DEVICE, DeviceReader, device_readers
from gateway.publisher import client_for, state_message

LOGIN_WAIT_S = 10.0
Say = Callable[[str], None]


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Seen:
    """What the devices read during the check."""

    reads: Counter[tuple[str, int]] = field(default_factory=Counter)  # (reader, antenna) → reads
    tags: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    rssi: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    fixes: int = 0
    last_fix: Fix | None = None
    status: dict[str, str] = field(default_factory=dict)  # device → up / down, its latest
    opened: set[str] = field(default_factory=set)  # devices that were up at some point


def check(path: str, seconds: float, say: Say = print) -> int:
    errors = validate_file(path, check_files=True)
    if errors:
        for error in errors:
            say(error)
        say(f"verdict: the profile has {len(errors)} problem(s): fix them, then check again")
        return 1
    profile = load_profile(path)
    say(f"gateway {profile.gateway.id}: profile {path} valid (version {profile.version}), its files readable")
    verdict = Verdict()
    _broker(profile, verdict, say)
    _endpoints(profile, verdict, say)
    if profile.readers or profile.gps:
        _devices(profile, seconds, verdict, say)
    for warning in verdict.warnings:
        say(f"warning: {warning}")
    for problem in verdict.problems:
        say(f"problem: {problem}")
    if verdict.problems:
        say(f"verdict: {len(verdict.problems)} problem(s); fix them and check again")
        return 1
    say("verdict: ready" + (f" ({len(verdict.warnings)} warning(s) above)" if verdict.warnings else ""))
    return 0


def _broker(profile: GatewayProfile, verdict: Verdict, say: Say) -> None:
    """Each broker of the list: a gateway fails over to any of them."""
    for host, port in client_for(profile.gateway)[1]:
        if _broker_at(profile, verdict, say, host, port, v5=True):
            _broker_at(profile, verdict, say, host, port, v5=False)
    if not profile.gateway.password_file:
        verdict.warnings.append("no gateway.password_file: the broker lets anyone in as this gateway (a test "
                                "bench only)")


def _broker_at(profile: GatewayProfile, verdict: Verdict, say: Say, host: str, port: int, v5: bool) -> bool:
    """Log in and write the state topic; True when the broker speaks MQTT 3.1.1 only (NATS): ask again so."""
    cfg = profile.gateway
    client = client_for(cfg, v5=v5)[0]
    where = f"the broker at {host}:{port}"
    answered, acked = threading.Event(), threading.Event()
    login: dict[str, Any] = {}
    client.on_connect = lambda c, u, f, reason, p: (login.update(reason=reason), answered.set())
    client.on_publish = lambda c, u, mid, reason, p: (login.update(puback=reason), acked.set())
    try:
        client.connect(host, port, keepalive=int(LOGIN_WAIT_S))
    except (OSError, ValueError) as exc:
        verdict.problems.append(f"cannot reach {where} ({getattr(exc, 'strerror', None) or exc}): check "
                                f"gateway.broker and the network")
        return False
    client.loop_start()
    try:
        if not answered.wait(LOGIN_WAIT_S):
            verdict.problems.append(f"{where} did not answer the login within {LOGIN_WAIT_S:.0f} s")
            return False
        if v5 and login["reason"] == "Unsupported protocol version":
            return True
        if login["reason"].is_failure:
            verdict.problems.append(f"{where} refused the login as {cfg.id} ({login['reason']}): check "
                                    f"gateway.password_file, or make a new password with `cargotrace gateway "
                                    f"provision {cfg.id}`")
            return False
        state = topic(cfg.id, "state")
        client.publish(state, state_message(cfg, "offline", profile.version, {}, {}), qos=1, retain=True)
        if not acked.wait(LOGIN_WAIT_S):
            verdict.problems.append(f"{where} did not acknowledge {cfg.id}'s state within {LOGIN_WAIT_S:.0f} s")
            return False
        if login["puback"].is_failure:  # MQTT 5's PUBACK says "not authorized"; 3.1.1's hides it
            verdict.problems.append(f"{where} does not let {cfg.id} write {state}: its ACL must give each gateway "
                                    f"its own topics (deploy/mosquitto/cargotrace.acl)")
            return False
        say(f"broker {host}:{port}: logged in as {cfg.id}, wrote its state topic")
        return False
    finally:
        client.disconnect()
        client.loop_stop()


def _endpoints(profile: GatewayProfile, verdict: Verdict, say: Say) -> None:
    for name, endpoint in (("jt808", profile.jt808), ("teltonika", profile.teltonika)):
        if endpoint is None:
            continue
        host, port = endpoint.listen.rsplit(":", 1)
        try:
            socket.create_server((host, int(port))).close()
        except OSError as exc:
            verdict.problems.append(f"{name}.listen {endpoint.listen}: cannot listen ({exc.strerror}): is the "
                                    f"gateway's service running? stop it for the check")
            continue
        say(f"{name}: {endpoint.listen} free to listen on")


class _Warnings(logging.Handler):
    """The device threads' warnings (cannot open, lost, refused), shown as they come."""

    def __init__(self, say: Say) -> None:
        super().__init__(logging.WARNING)
        self.say = say
        self.said: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().split(" (retry in", 1)[0]
        if text not in self.said:  # a device failing the same way again is said once
            self.said.add(text)
            self.say(f"  {text}")


def _devices(profile: GatewayProfile, seconds: float, verdict: Verdict, say: Say) -> None:
    out: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    devices = device_readers(profile, out, stop)
    warnings = _Warnings(say)
    device_log = logging.getLogger("gateway.devices")
    device_log.addHandler(warnings)
    device_log.propagate = False  # said here once, not again by the process's log
    seen = Seen()
    say(f"reading for {seconds:.0f} s; reads are counted here, not published")
    for device in devices:
        device.start()
    try:
        start = time.monotonic()
        for second in range(1, int(seconds) + 1):
            before = Counter(seen.reads)
            _take(out, seen, start + second)
            say(f"{second:3d} s  {_line(profile, seen, before)}")
    finally:
        stop.set()
        for device in devices:
            device.join(5)
        device_log.removeHandler(warnings)
        device_log.propagate = True
    _judge(profile, seen, {d.device: d for d in devices}, seconds, verdict)


def _take(out: queue.Queue[tuple[str, Any]], seen: Seen, until: float) -> None:
    while (left := until - time.monotonic()) > 0:
        try:
            device, value = out.get(timeout=left)
        except queue.Empty:
            return
        if isinstance(value, TagRead):
            seen.reads[(device, value.antenna)] += 1
            seen.tags[device].add(value.epc)
            if value.rssi_dbm is not None:
                seen.rssi[device].append(value.rssi_dbm)
        elif isinstance(value, Fix):
            seen.fixes += 1
            seen.last_fix = value
        elif value in ("up", "down"):
            seen.status[device] = value
            if value == "up":
                seen.opened.add(device)


def _line(profile: GatewayProfile, seen: Seen, before: Counter[tuple[str, int]]) -> str:
    parts = []
    for reader in profile.readers:
        rates = " ".join(f"ant{a.port} {seen.reads[(reader.name, a.port)] - before[(reader.name, a.port)]}/s"
                         for a in reader.antennas)
        parts.append(f"{reader.name}: {seen.status.get(reader.name, 'opening')}, {rates}, "
                     f"{len(seen.tags[reader.name])} tags")
    if profile.gps:
        fix = seen.last_fix
        parts.append(f"gps: {seen.status.get(GPS_DEVICE, 'opening')}, " + (
            f"{seen.fixes} fixes, last {fix.lat:.5f},{fix.lon:.5f} sats {fix.sats} HDOP {fix.hdop}" if fix
            else "no fix yet"))
    return " | ".join(parts)


def _judge(profile: GatewayProfile, seen: Seen, devices: dict[str, DeviceReader],
           seconds: float, verdict: Verdict) -> None:
    for name in [r.name for r in profile.readers] + ([GPS_DEVICE] if profile.gps else []):
        device = devices[name]
        bad = sum(getattr(device.decoder, "bad_frames", {}).values())
        if name not in seen.opened:
            verdict.problems.append(f"{name}: did not open: {device.last_error or 'no answer'}")
        elif bad:
            verdict.warnings.append(f"{name}: {bad} frame(s) it could not read: check the port's baud rate and "
                                    f"the protocol in the profile")
    for reader in profile.readers:
        for antenna in reader.antennas:
            if seen.status.get(reader.name) == "up" and not seen.reads[(reader.name, antenna.port)]:
                verdict.warnings.append(f"{reader.name} antenna {antenna.port} ({antenna.read_point}): no tag read "
                                        f"in {seconds:.0f} s: hold a tag in front of it, check its cable")
    if profile.gps and seen.status.get(GPS_DEVICE) == "up" and not seen.fixes:
        verdict.warnings.append(f"gps: no fix in {seconds:.0f} s: the receiver needs the sky, a cold start takes "
                                f"minutes")
