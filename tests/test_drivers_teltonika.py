"""Teltonika Codec 8 and 8 Extended: packets written byte by byte from the protocol's layout decode to
their fields, the CRC is CRC-16/IBM, encoder and decoder agree on whatever hypothesis makes up, and a
megabyte of noise breaks nothing. A gateway's endpoint accepts mapped trackers only, acknowledges the
records it took, and takes nothing from a connection that never said who it is."""

from __future__ import annotations

import random
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers import teltonika as t
from device_drivers.simulators import TeltonikaTracker, route, teltonika_record
from firmware_configs.profile import GatewayProfile
from gateway.runner import Gateway
from launcher.embedded import free_port, wait_for_port
from tests.helpers import Subscriber, wait_for
from tests.journey import VEHICLE, journey
from tests.test_crm_status import CUSTOMER_SITE, WAREHOUSE
from tests.test_faults_gateway import fill, small_disk

IMEI = "356307042441013"
AT = datetime(2026, 11, 29, 8, 0, 5, tzinfo=UTC)


def _packet_by_hand() -> bytes:
    """One Codec 8 record: Shanghai, 45 m, 90°, 11 satellites, 62 km/h; IO 239 (ignition) = 1 and 66
    (external voltage) = 24 079 mV."""
    record = struct.pack(">QB", int(AT.timestamp() * 1000), 1) + struct.pack(">iihHBH", 1214737000, 312304000, 45,
                                                                           90, 11, 62)
    record += bytes([239, 2]) + bytes([1, 239, 1]) + bytes([1, 66]) + struct.pack(">H", 24079) + bytes([0, 0])
    data = bytes([0x08, 1]) + record + bytes([1])
    crc = 0
    for byte in data:  # CRC-16/IBM, bit by bit as the protocol describes it
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return b"\x00\x00\x00\x00" + struct.pack(">I", len(data)) + data + struct.pack(">I", crc)


def test_a_packet_built_from_the_layout_decodes_to_its_fields() -> None:
    decoder = t.TeltonikaDecoder()
    stream = b"\x00\x0f" + IMEI.encode() + _packet_by_hand()
    imei, packet = [item for i in range(0, len(stream), 5) for item in decoder.feed(stream[i:i + 5])]
    assert imei == t.Imei(IMEI)
    (record,) = packet.records
    assert (record.ts, record.lat, record.lon, record.altitude_m) == (AT, 31.2304, 121.4737, 45)
    assert (record.angle_deg, record.satellites, record.speed_kmh, record.event_io) == (90, 11, 62, 239)
    assert record.io == {239: 1, 66: 24079} and record.fixed


def test_the_crc_is_crc16_ibm() -> None:
    assert t.crc16(b"123456789") == 0xBB3D  # the catalogue's check value of CRC-16/ARC


RECORDS = st.builds(
    t.Record, ts=st.integers(0, 2**40).map(lambda ms: t.EPOCH + timedelta(milliseconds=ms)), priority=st.integers(0, 2),
    lat=st.integers(-900_000_000, 900_000_000).map(lambda v: v / 1e7),
    lon=st.integers(-1_800_000_000, 1_800_000_000).map(lambda v: v / 1e7), altitude_m=st.integers(-500, 9000),
    angle_deg=st.integers(0, 359), satellites=st.integers(0, 30), speed_kmh=st.integers(0, 300),
    event_io=st.integers(0, 255), io=st.dictionaries(st.integers(0, 255), st.integers(0, 2**64 - 1), max_size=6))


@settings(max_examples=150, deadline=None)
@given(st.lists(RECORDS, min_size=1, max_size=5), st.booleans(),
       st.dictionaries(st.integers(256, 65535), st.binary(min_size=1, max_size=8).map(bytes.hex), max_size=2))
def test_whatever_is_encoded_decodes_to_itself(records: list[t.Record], extended: bool, blobs: dict) -> None:
    if extended:
        records = [t.Record(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "io": {**r.io, **blobs}})
                   for r in records]
    decoder = t.TeltonikaDecoder()
    (_, packet) = decoder.feed(t.imei_frame(IMEI) + t.packet_frame(records, extended))
    assert packet.codec == (t.CODEC_8E if extended else t.CODEC_8)
    assert list(packet.records) == records


def test_a_corrupted_packet_is_counted_and_the_next_one_read() -> None:
    good = _packet_by_hand()
    bad = good[:20] + bytes([good[20] ^ 0xFF]) + good[21:]
    decoder = t.TeltonikaDecoder()
    items = decoder.feed(t.imei_frame(IMEI) + bad + good)
    assert [type(i).__name__ for i in items] == ["Imei", "Packet"] and decoder.bad_frames["bad crc"] == 1


def test_a_megabyte_of_noise_with_packets_in_it_never_breaks_the_decoder() -> None:
    rng = random.Random(8)
    decoder = t.TeltonikaDecoder()
    decoder.feed(t.imei_frame(IMEI))
    found = 0
    for _ in range(256):
        chunk = bytes(rng.getrandbits(8) for _ in range(4096)) + _packet_by_hand()
        for i in range(0, len(chunk), rng.randint(1, 900)):
            found += sum(isinstance(item, t.Packet) for item in decoder.feed(chunk[i:i + 900]))
        assert decoder.buffered <= 2 * t.MAX_PACKET
    assert found >= 250


@contextmanager
def teltonika_gateway(outbox: Path, gateway_id: str, mqtt_url: str) -> Iterator[tuple[Gateway, Subscriber]]:
    gateway = Gateway(GatewayProfile.model_validate({
        "gateway": {"id": gateway_id, "broker": mqtt_url, "outbox": str(outbox)},
        "teltonika": {"listen": "127.0.0.1:0", "devices": {IMEI: "TRK-TEL"}}}))
    subscriber = Subscriber(mqtt_url, f"cargotrace/v1/{gateway_id}/gps")
    stop = threading.Event()
    thread = threading.Thread(target=gateway.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: gateway.endpoints and gateway.endpoints[0].listening.is_set(), what="the Teltonika endpoint")
        yield gateway, subscriber
    finally:
        stop.set()
        thread.join(20)
        subscriber.close()


@pytest.fixture
def fleet(tmp_path: Path, gateway_id: str, mqtt_url: str) -> Iterator[tuple[Gateway, Subscriber]]:
    with teltonika_gateway(tmp_path / "outbox.sqlite", gateway_id, mqtt_url) as running:
        yield running


def test_a_mapped_tracker_is_accepted_and_its_records_acknowledged_and_published(
        fleet: tuple[Gateway, Subscriber]) -> None:
    gateway, subscriber = fleet
    port = gateway.endpoints[0].port
    stranger = TeltonikaTracker("127.0.0.1", port, "356307042441099")
    assert not stranger.accepted
    stranger.close()
    tracker = TeltonikaTracker("127.0.0.1", port, IMEI)
    assert tracker.accepted
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    records = [t.Record(start + timedelta(seconds=10 * i), 0, 31.23 + i / 1000, 121.47, 5, 0, 9 if i != 2 else 0, 40)
               for i in range(5)]
    assert tracker.send(records[:3]) == 3 and tracker.send(records[3:], extended=True) == 2
    tracker.close()
    events = subscriber.wait_events("gps", 4)  # the record without satellites has no position
    assert [e["vehicle"] for e in events] == ["TRK-TEL"] * 4
    assert [e["lat"] for e in events] == [31.23, 31.231, 31.233, 31.234]
    assert gateway.endpoints[0].counters["refused: unknown device"] == 1


def test_records_from_a_connection_that_never_sent_its_imei_are_refused(fleet: tuple[Gateway, Subscriber]) -> None:
    gateway, _ = fleet
    with socket.create_connection(("127.0.0.1", gateway.endpoints[0].port), timeout=10) as sock:
        sock.sendall(_packet_by_hand())
        assert sock.recv(4) == b""  # closed without an acknowledgement: the tracker keeps the records
    wait_for(lambda: gateway.endpoints[0].counters["refused: no IMEI"] == 1)
    assert gateway.endpoints[0].counters["records"] == 0


def test_a_teltonika_truck_takes_a_shipment_from_loaded_to_arrived(
        tmp_path: Path, db_url: str, mqtt_url: str, gateway_id: str) -> None:
    """The smaller end-to-end scenario: a tracker mapped to the shipment's truck sends its drive in
    packets of ten records; ingest and the CRM link (real processes) move the shipment."""
    port = free_port()
    endpoint = {"teltonika": {"listen": f"127.0.0.1:{port}", "devices": {IMEI: VEHICLE}}}
    with journey(tmp_path, db_url, mqtt_url, gateway_id, "SO-TELTONIKA", endpoint) as trip:
        wait_for_port(port)
        tracker = TeltonikaTracker("127.0.0.1", port, IMEI)
        assert tracker.accepted
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=12)
        records = [teltonika_record(p) for p in route([WAREHOUSE, CUSTOMER_SITE], 60.0, start, period_s=10.0)]
        for i in range(0, len(records), 10):
            assert tracker.send(records[i:i + 10], extended=i % 20 == 10) == len(records[i:i + 10])
        tracker.close()
        trip.wait_for("arrived")
        assert trip.history() == (["loading", "loaded", "in_transit", "arrived"], [VEHICLE])


@pytest.mark.slow  # the decoder and endpoint are in make test; this is their CLI around them
def test_the_command_line_simulates_a_tracker_and_names_the_remedy_when_refused(
        fleet: tuple[Gateway, Subscriber]) -> None:
    gateway, subscriber = fleet
    address = f"127.0.0.1:{gateway.endpoints[0].port}"
    refused = subprocess.run([sys.executable, "-m", "launcher.cli", "simulate", "--teltonika", address, "--imei",
                              "356307042441099"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and refused.stderr.strip().splitlines() == [
        "error: the gateway refused tracker 356307042441099: map its IMEI to a vehicle in the gateway profile's "
        "teltonika.devices"]
    tracker = subprocess.Popen([sys.executable, "-m", "launcher.cli", "simulate", "--teltonika", address, "--imei",
                                IMEI, "--period", "0.2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        events = subscriber.wait_events("gps", 3)
    finally:
        tracker.terminate()
        tracker.wait(10)
    assert {e["vehicle"] for e in events} == {"TRK-TEL"}


def test_records_are_acknowledged_only_once_the_outbox_has_stored_them(
        tmp_path: Path, gateway_id: str, mqtt_url: str) -> None:
    """The outbox's disk is full: the tracker gets no acknowledgement, so it keeps its records and sends
    them again; once there is room they are stored and published once."""
    with small_disk(tmp_path / "disk") as disk, teltonika_gateway(disk / "outbox.sqlite", gateway_id,
                                                                  mqtt_url) as (gateway, subscriber):
        endpoint = gateway.endpoints[0]
        endpoint.store_wait_s = 1.0
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        records = [t.Record(start + timedelta(seconds=10 * i), 0, 31.23 + i / 1000, 121.47, 5, 0, 9, 40)
                   for i in range(3)]
        filler = fill(disk)
        tracker = TeltonikaTracker("127.0.0.1", endpoint.port, IMEI)
        with pytest.raises(ConnectionError):
            tracker.send(records)  # closed unanswered
        tracker.close()
        assert endpoint.counters["unanswered: outbox not storing"] == 1 and gateway.held
        filler.unlink()
        tracker = TeltonikaTracker("127.0.0.1", endpoint.port, IMEI)
        assert tracker.send(records) == 3
        tracker.close()
        events = subscriber.wait_events("gps", 3)
        assert [e["lat"] for e in events] == [31.23, 31.231, 31.232]
        assert gateway.track_stats.dropped["time not advancing"] == 3  # the copies sent again
