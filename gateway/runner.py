"""The edge gateway process: devices → smoothing / track filter → outbox → MQTT."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from common.contract import iso_ms
from common.failures import writable_dir
from common.metrics import Sample, serve
from common.stopping import stop_on_signals
from device_drivers.types import Fix, TagRead, VehicleFix
from firmware_configs import GatewayProfile, load_profile
from gateway.devices import DeviceReader, device_readers
from gateway.gps_filter import TrackFilter, TrackStats
from gateway.jt808_server import Jt808Server
from gateway.outbox import Outbox, StorageRefused
from gateway.publisher import Publisher
from gateway.smoothing import Smoother
from gateway.tcp_endpoint import Receipt, TcpEndpoint
from gateway.teltonika_server import TeltonikaServer
from gateway.watchdog import Watchdog

log = logging.getLogger(__name__)
TICK_S = 0.1
CLOCK_WARN_S = 60.0  # the box's clock this far off GPS time is worth a warning
STORAGE_RETRY = timedelta(seconds=1)  # how often a disk that refused a write is asked again
Item = tuple[str, dict[str, Any], bool]  # (kind, event, stationary), as the outbox takes them


def _fix_event(vehicle: str, fix: Fix) -> dict[str, Any]:
    event = {"vehicle": vehicle, "ts": iso_ms(fix.ts), "lat": round(fix.lat, 7), "lon": round(fix.lon, 7),
             "speed_kmh": fix.speed_kmh, "course_deg": fix.course_deg, "hdop": fix.hdop, "sats": fix.sats,
             "quality": fix.quality, "alt_m": fix.alt_m}
    return {**event, "alarms": list(fix.alarms)} if fix.alarms else event


class Gateway:
    def __init__(self, profile: GatewayProfile) -> None:
        self.profile = profile
        cfg = profile.gateway
        writable_dir("gateway.outbox in the profile", cfg.outbox)
        self.outbox = Outbox(cfg.outbox, cfg.outbox_max_events, cfg.keep_acked_s)
        self.publisher = Publisher(cfg, self.outbox, profile.version)
        self.smoother = Smoother(cfg.smoothing)
        self.tracks: dict[str, TrackFilter] = {}  # per vehicle: a JT/T 808 endpoint serves a fleet
        self.track_stats = TrackStats()  # of them all
        self.endpoints: list[TcpEndpoint] = []  # JT/T 808, Teltonika: a fleet's terminals connect to these
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=100_000)
        self.readers = {r.name: r for r in profile.readers}
        self.antennas = {(r.name, a.port): a for r in profile.readers for a in r.antennas}
        self.devices: list[DeviceReader] = []
        self.observations = 0
        self.clock_offset_s: float | None = None  # this box's clock minus GPS time, from the last fix
        self.held: list[Item] = []  # events the outbox's disk refused, oldest first, waiting in memory
        self.receipts: list[Receipt] = []  # endpoints waiting to acknowledge what they queued before these
        self.held_dropped = 0
        self.backfilled = self.backfill_refused = 0  # blind-area fixes stored as history; refused as ahead
        self._retry_at = datetime.min.replace(tzinfo=UTC)

    def run(self, stop: threading.Event) -> None:
        devices = device_readers(self.profile, self.queue, stop)
        self.devices = devices
        self.publisher.devices = {d.device: "starting" for d in devices}
        if self.profile.jt808:
            self.endpoints.append(Jt808Server(self.profile.jt808, self.profile.gateway.id, self.queue, stop))
        if self.profile.teltonika:
            self.endpoints.append(TeltonikaServer(self.profile.teltonika, self.queue, stop))
        for endpoint in self.endpoints:
            endpoint.start()
        metrics = None
        if self.profile.gateway.metrics_listen:
            metrics = serve(self.profile.gateway.metrics_listen, self.samples,
                            lambda: self.publisher.connected.is_set() and "down" not in self.publisher.devices.values()
                            and not self.held, "gateway.metrics_listen in the profile")
        self.publisher.start()
        for device in devices:
            device.start()
        watchdog = Watchdog()
        watchdog.ready()
        try:
            while not stop.is_set():
                self.step(datetime.now(UTC))
                watchdog.alive()
        finally:
            watchdog.stopping()
            self.step(datetime.now(UTC), flush=True)
            for device in devices:
                device.join(timeout=2)
            self.publisher.stop()
            self.outbox.close()
            if metrics:
                metrics.shutdown()

    def step(self, now: datetime, flush: bool = False) -> None:
        """One turn of the loop: take what the devices read, store what is due, publish."""
        items: list[tuple[str, dict[str, Any], bool]] = []
        try:
            device, value = self.queue.get(timeout=0 if flush else TICK_S)
            while True:
                self._take(device, value, items, now)
                device, value = self.queue.get_nowait()
        except queue.Empty:
            pass
        observations = self.smoother.due(now, everything=flush)
        self.observations += len(observations)
        items += [("rfid", obs, False) for obs in observations]
        if items or self.held:
            self._store(items, now, flush)
        if not self.held:  # everything taken so far is in the outbox (or deliberately dropped)
            for receipt in self.receipts:
                receipt.settle()
            self.receipts.clear()
        self.publisher.counters = self.counters()
        self.publisher.pump()

    def _store(self, items: list[Item], now: datetime, flush: bool) -> None:
        """Into the outbox after what waits in memory; what its disk refuses (full, failing) waits there."""
        waiting = self.held + items
        if self.held and now < self._retry_at and not flush:
            self.held = self._bounded(waiting)
            return
        try:
            self.outbox.append_many(waiting)
        except StorageRefused as exc:
            if not self.held:
                log.error("the outbox's disk refused a write (%s): holding events in memory, retrying", exc)
            self.held, self._retry_at = self._bounded(waiting), now + STORAGE_RETRY
            if flush:
                log.error("stopping with %d events the outbox's disk refused: they are lost", len(self.held))
            self._state_changed()
            return
        if self.held:
            log.info("the outbox takes writes again: %d held events stored", len(self.held))
            self.held = []
            self._state_changed()

    def _bounded(self, waiting: list[Item]) -> list[Item]:
        """At most held_max_events: stationary fixes go first, then other fixes, cargo never."""
        excess = len(waiting) - self.profile.gateway.held_max_events
        for droppable in (lambda i: i[0] == "gps" and i[2], lambda i: i[0] == "gps"):
            if excess <= 0:
                break
            dropped = set(itertools.islice((n for n, item in enumerate(waiting) if droppable(item)), excess))
            waiting = [item for n, item in enumerate(waiting) if n not in dropped]
            excess -= len(dropped)
            self.held_dropped += len(dropped)
        return waiting

    def _state_changed(self) -> None:
        self.publisher.counters = self.counters()
        if self.publisher.connected.is_set():
            self.publisher.publish_state()

    def _take(self, device: str, value: Any, items: list[tuple[str, dict[str, Any], bool]], now: datetime) -> None:
        if isinstance(value, TagRead):
            antenna = self.antennas.get((device, value.antenna))
            if antenna is None:
                self.smoother.stray += 1  # an antenna port the profile does not know
                return
            self.smoother.add(value.epc, antenna.read_point, device, value.antenna, antenna.side, value.rssi_dbm,
                              value.read_at)
        elif isinstance(value, Fix) and self.profile.gps:
            self._clock_against(value, now)
            self._track(self.profile.gps.vehicle, value, now, items)
        elif isinstance(value, list):  # an endpoint's fixes of one read
            for one in value:
                self._take(device, one, items, now)
        elif isinstance(value, VehicleFix) and value.backfill:
            self._backfill(value.vehicle, value.fix, now, items)
        elif isinstance(value, VehicleFix):
            self._track(value.vehicle, value.fix, now, items)
        elif isinstance(value, Receipt):
            self.receipts.append(value)
        elif value in ("up", "down") and self.publisher.devices.get(device) != value:
            self.publisher.devices[device] = value
            if self.publisher.connected.is_set():
                self.publisher.publish_state()

    def samples(self) -> list[Sample]:
        g = "cargotrace_gateway_"
        tracks = self.track_stats
        out: list[Sample] = [
            (g + "raw_reads_total", {}, self.smoother.raw_reads),
            (g + "stray_reads_total", {}, self.smoother.stray),
            (g + "observations_total", {}, self.observations),
            (g + "fixes_accepted_total", {}, tracks.accepted),
            (g + "fixes_backfilled_total", {}, self.backfilled),
            (g + "fixes_backfill_refused_total", {}, self.backfill_refused),
            (g + "gps_gaps_total", {}, tracks.gaps),
            (g + "gps_reanchored_total", {}, tracks.reanchored),
            *([(g + "clock_offset_seconds", {}, self.clock_offset_s)] if self.clock_offset_s is not None else []),
            (g + "outbox_depth", {}, self.outbox.depth()),
            (g + "outbox_oldest_age_seconds", {}, self.outbox.oldest_age_s()),
            (g + "outbox_refused_total", {}, self.outbox.refused),
            (g + "outbox_storage_refused", {}, float(self.outbox.storage_refused)),
            (g + "held_events", {}, len(self.held)),
            (g + "held_dropped_total", {}, self.held_dropped),
            (g + "published_events_total", {}, self.publisher.published_events),
            (g + "broker_connected", {}, float(self.publisher.connected.is_set())),
            (g + "short_lived_connections_total", {}, self.publisher.short_lived_connections),
        ]
        out += [(g + "fixes_dropped_total", {"reason": r}, n) for r, n in tracks.dropped.items()]
        for endpoint in self.endpoints:
            out.append((g + "endpoint_connections", {"endpoint": endpoint.name}, endpoint.connections))
            out += [(g + "endpoint_messages_total", {"endpoint": endpoint.name, "outcome": k}, n)
                    for k, n in sorted(endpoint.counters.items())]
        for device in self.devices:
            out.append((g + "device_up", {"device": device.device}, float(self.publisher.devices.get(device.device)
                                                                              == "up")))
            out.append((g + "device_reopens_total", {"device": device.device}, device.reopens))
            bad = device.decoder.bad_frames if device.decoder is not None else {}
            out += [(g + "bad_frames_total", {"device": device.device, "reason": r}, n) for r, n in bad.items()]
        return out

    def _track(self, vehicle: str, fix: Fix, now: datetime, items: list[Item]) -> None:
        track = self.tracks.get(vehicle)
        if track is None:
            track = self.tracks[vehicle] = TrackFilter(self.profile.gateway.gps_filter, self.track_stats)
        keep, stationary = track.offer(fix, now)
        if keep:
            items.append(("gps", _fix_event(vehicle, fix), stationary))

    def _backfill(self, vehicle: str, fix: Fix, now: datetime, items: list[Item]) -> None:
        """Older than the live track by nature: stored as history, around the track filter, which would
        drop them as not advancing. Only a time in the future is refused."""
        if (fix.ts - now).total_seconds() > self.profile.gateway.gps_filter.max_ahead_s:
            self.backfill_refused += 1
            return
        self.backfilled += 1
        items.append(("gps", _fix_event(vehicle, fix), False))

    def _clock_against(self, fix: Fix, now: datetime) -> None:
        """Reads are stamped with this box's clock: GPS time tells how far off it is."""
        offset = (now - fix.ts).total_seconds()
        if abs(offset) > CLOCK_WARN_S and (self.clock_offset_s is None or abs(self.clock_offset_s) <= CLOCK_WARN_S):
            log.warning("this gateway's clock is %+.0f s off GPS time: its reads carry that error (run NTP)", offset)
        self.clock_offset_s = offset

    def counters(self) -> dict[str, Any]:
        tracks = self.track_stats
        return {"raw_reads": self.smoother.raw_reads, "stray_reads": self.smoother.stray,
                "fixes_accepted": tracks.accepted, "fixes_dropped": dict(tracks.dropped),
                "gps_gaps": tracks.gaps, "clock_offset_s": self.clock_offset_s,
                "outbox_refused": self.outbox.refused, "outbox_storage_refused": self.outbox.storage_refused,
                "held_events": len(self.held), "held_dropped": self.held_dropped,
                "outbox_alarm": self.outbox.alarm, "published_events": self.publisher.published_events}


def run(profile_path: str, stop: threading.Event | None = None) -> None:
    profile = load_profile(profile_path)
    stop = stop or threading.Event()
    stop_on_signals(stop)
    log.info("gateway %s starting (profile %s)", profile.gateway.id, profile.version)
    Gateway(profile).run(stop)
