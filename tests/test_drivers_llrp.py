"""LLRP: messages written byte by byte from the specification's layout decode to their fields, encoder
and decoder agree on whatever hypothesis makes up, and a megabyte of noise breaks nothing. Against a
simulated reader on a real TCP connection the gateway's device thread configures the reader as the
profile says, streams its reads, acknowledges keepalives, and configures it again after a reboot
mid-inventory or a reader that went silent after half a message."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common import epc
from device_drivers.llrp_simulator import LlrpReader, r420
from device_drivers.rfid import llrp
from device_drivers.rfid.llrp_session import LlrpRefused, LlrpSession, ReaderSilent
from device_drivers.rfid.protocol import Inventory
from device_drivers.types import TagRead
from firmware_configs import load_profile, validate_file
from gateway.devices import DeviceReader
from tests.helpers import wait_for
from tests.journey import journey
from tests.test_config import PROFILES
from tests.test_crm_status import ITEMS

PRC = Inventory(region="PRC", band_mhz=(920.5, 924.5), power_dbm={1: 27.0, 2: 20.0}, keepalive_s=1.0)
NOW_US = int(time.time() * 1e6)  # when this module was collected: times only carried, not judged
SETUP = ["GET_READER_CAPABILITIES", "SET_READER_CONFIG", "DELETE_ACCESSSPEC", "DELETE_ROSPEC", "SET_READER_CONFIG",
         "ADD_ROSPEC", "ENABLE_ROSPEC", "START_ROSPEC"]


def test_a_report_laid_out_by_hand_decodes_to_its_reads() -> None:
    now_us = time.time_ns() // 1000
    tag = bytes.fromhex(
        "00f0" "0025"  # TagReportData, 37 bytes
        "8d" "3034257bf7194e4000001a85"  # EPC-96
        "81" "0002"  # AntennaID 2
        "87" "0003"  # ChannelIndex 3
        "86" "c5"  # PeakRSSI -59 dBm
        "82" + now_us.to_bytes(8, "big").hex() +  # FirstSeenTimestampUTC, µs
        "88" "0004")  # TagSeenCount 4
    long_epc = bytes.fromhex(
        "00f0" "001b"  # TagReportData, 27 bytes
        "00f1" "0014" "0070" "e280116060000209a1b2c3d4e5f6"  # EPCData: 112 bits
        "81" "0001")
    report = bytes.fromhex("043d" "0000004a" "00000007") + tag + long_epc  # version 1, RO_ACCESS_REPORT, 74 bytes
    decoder = llrp.LlrpDecoder("door-03")
    decoder.channels_khz = (920_625, 920_875, 921_125, 921_375)
    reads = [r for i in range(0, len(report), 7) for r in decoder.feed(report[i:i + 7])]
    assert [(r.epc, r.antenna, r.rssi_dbm, r.frequency_khz, r.reader) for r in reads] == [
        ("3034257BF7194E4000001A85", 2, -59.0, 921_125, "door-03"),
        ("E280116060000209A1B2C3D4E5F6", 1, None, None, "door-03")]
    assert int(reads[0].read_at.timestamp() * 1e6) == pytest.approx(now_us, abs=1)
    assert not decoder.messages and not decoder.bad_frames


def test_the_client_messages_have_the_specified_layout() -> None:
    assert llrp.keepalive_ack(9) == bytes.fromhex("0448" "0000000a" "00000009")
    assert llrp.get_reader_capabilities(1) == bytes.fromhex("0401" "0000000b" "00000001" "00")
    assert llrp.spec_command(llrp.START_ROSPEC, 5, 1) == bytes.fromhex("0416" "0000000e" "00000005" "00000001")
    assert llrp.set_reader_config(2, llrp.keepalive_spec(10_000), reset=False) == bytes.fromhex(
        "0403" "00000014" "00000002" "00" "00dc" "0009" "01" "00002710")
    assert llrp.inventory_command(2, 32, single_target=True) == bytes.fromhex(
        "014a" "0015" "80" "0150" "0010" "80" "0020" "00000000" "0151" "0005" "00")


def test_a_readers_capabilities_give_its_power_table_and_channels() -> None:
    caps = r420("PRC")
    body = llrp.llrp_status() + llrp.capabilities_body(caps)
    assert llrp.status(body) == (0, "")
    assert llrp.capabilities(body) == caps
    assert caps.power_dbm[69] == 27.0 and caps.hop_tables[1][0] == 920_625


TAGS = st.lists(st.tuples(st.binary(min_size=2, max_size=62).filter(lambda b: len(b) % 2 == 0).map(bytes.hex),
                          st.integers(1, 32), st.integers(-128, 0), st.integers(1, 50)), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(TAGS, st.integers(1, 64))
def test_whatever_is_reported_decodes_to_itself(tags: list[tuple[str, int, int, int]], piece: int) -> None:
    report = llrp.ro_access_report(1, [llrp.tag_report_data(e, a, r, NOW_US, c) for e, a, r, c in tags])
    decoder = llrp.LlrpDecoder()
    reads = [r for i in range(0, len(report), piece) for r in decoder.feed(report[i:i + piece])]
    assert [(r.epc, r.antenna, r.rssi_dbm) for r in reads] == [(e.upper(), a, float(r)) for e, a, r, _ in tags]
    assert not decoder.bad_frames and decoder.buffered == 0


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers(1, 200), st.integers(0, 3300).map(lambda c: c / 100), min_size=1, max_size=30),
       st.booleans(), st.lists(st.integers(860_000, 960_000), min_size=1, max_size=60))
def test_whatever_capabilities_are_written_read_back(power: dict[int, float], hopping: bool,
                                                      channels: list[int]) -> None:
    caps = llrp.Capabilities(4, 25882, 2001002, "7.5", True, power, hopping, {3: tuple(channels)} if hopping else {},
                             () if hopping else tuple(channels))
    assert llrp.capabilities(llrp.capabilities_body(caps)) == caps


def test_a_megabyte_of_noise_with_reports_in_it_never_breaks_decoder_or_session() -> None:
    """Seeded fuzz: 1 MiB of random bytes and of valid messages with bytes flipped. The decoder never
    raises; the session raises only what makes the gateway reconnect."""
    rng = random.Random(5084)
    report = llrp.ro_access_report(3, [llrp.tag_report_data("3034257BF7194E4000001A85", 1, -60, NOW_US)])
    decoder = llrp.LlrpDecoder()
    fed = 0
    while fed < 1 << 20:
        chunk = bytearray(rng.getrandbits(8) for _ in range(4096))
        mutated = bytearray(report)
        mutated[rng.randrange(len(mutated))] ^= 1 << rng.randrange(8)
        chunk += mutated + report
        decoder.feed(bytes(chunk))
        fed += len(chunk)
        assert decoder.buffered <= 2 * llrp.MAX_MESSAGE
    assert sum(decoder.bad_frames.values()) > 0
    for _ in range(2000):
        session = LlrpSession("r", PRC)
        message = bytearray(llrp.notification(1, NOW_US, llrp.connection_attempt_event(0)) + report)
        message[rng.randrange(len(message))] = rng.getrandbits(8)
        try:
            session.feed(bytes(message))
            session.outgoing()
        except (LlrpRefused, OSError):
            pass


def test_a_reader_busy_with_another_client_is_reported_in_one_line() -> None:
    session = LlrpSession("door-03", PRC)
    with pytest.raises(LlrpRefused) as refused:
        session.feed(llrp.notification(1, NOW_US, llrp.connection_attempt_event(2)))
    assert str(refused.value) == ("door-03: the reader refused: another client is connected: a reader takes one "
                                  "LLRP client at a time, stop the other one")


def test_a_reader_that_never_answers_times_out() -> None:
    now = [0.0]
    session = LlrpSession("door-03", PRC, clock=lambda: now[0])
    assert session.outgoing() == llrp.get_reader_capabilities(1)
    session.feed(llrp.notification(1, NOW_US, llrp.connection_attempt_event(0)))
    assert session.outgoing() == b""
    now[0] = 6.0
    with pytest.raises(ReaderSilent, match="door-03: no answer to its capabilities within 5 s"):
        session.outgoing()


@contextmanager
def connected(reader: LlrpReader, inventory: Inventory = PRC) -> Iterator[tuple[DeviceReader, queue.Queue]]:
    """The gateway's device thread on a TCP connection to the simulated reader."""
    out: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    device = DeviceReader("door-03", f"socket://{reader.address}", 0, lambda: LlrpSession("door-03", inventory),
                          out, stop)
    device.start()
    try:
        yield device, out
    finally:
        stop.set()
        device.join(5)


def reads_of(out: queue.Queue, count: int) -> list[TagRead]:
    reads: list[TagRead] = []
    while len(reads) < count:
        _, value = out.get(timeout=20)
        if isinstance(value, TagRead):
            reads.append(value)
    return reads


@pytest.fixture
def reader() -> Iterator[LlrpReader]:
    sim = LlrpReader(r420("PRC"))
    yield sim
    sim.close()


def test_the_gateway_configures_the_reader_as_the_profile_says_and_streams_its_reads(reader: LlrpReader) -> None:
    with connected(reader) as (device, out):
        assert reader.started.wait(20)
        assert reader.received == SETUP
        assert reader.power_index == {1: 69, 2: 41}  # 27 dBm and 20 dBm in the table's 0.25 dB steps
        assert reader.keepalive_ms == 1000 and reader.rospecs[1]["antennas"] == (1, 2)
        assert reader.report([("3034257BF7194E4000001A85", 1, -52), ("3034257BF7194E4000001A86", 2, -61)], channel=5)
        reads = reads_of(out, 2)
        assert [(r.epc, r.antenna, r.rssi_dbm, r.frequency_khz) for r in reads] == [
            ("3034257BF7194E4000001A85", 1, -52.0, 921_625), ("3034257BF7194E4000001A86", 2, -61.0, 921_625)]
        wait_for(lambda: reader.keepalive_acks >= 2, what="keepalives acknowledged")
        assert device.reopens == 0


def test_after_a_reboot_mid_inventory_the_reader_is_configured_again(reader: LlrpReader) -> None:
    with connected(reader) as (device, out):
        assert reader.started.wait(20) and reader.report([("AA" * 12, 1, -50)])
        reads_of(out, 1)
        reader.reboot()
        wait_for(lambda: reader.started.is_set() and reader.connections == 2, what="the ROSpec installed again")
        assert reader.received == SETUP * 2
        assert reader.report([("BB" * 12, 2, -50)])
        assert [r.epc for r in reads_of(out, 1)] == ["BB" * 12]
        assert device.reopens == 1


def test_a_reader_silent_after_half_a_report_is_given_up_and_configured_again(reader: LlrpReader) -> None:
    """Power lost mid-message: no FIN comes; three missed keepalives end the connection, the half
    report yields nothing, and the next connection configures the reader again."""
    with connected(reader) as (device, out):
        assert reader.started.wait(20)
        half = llrp.ro_access_report(99, [llrp.tag_report_data("CC" * 12, 1, -50, NOW_US)])
        reader.hang(half[:len(half) // 2])
        wait_for(lambda: reader.started.is_set() and reader.connections == 2, timeout=30,
                 what="a new connection after the silence")
        assert reader.report([("DD" * 12, 1, -50)])
        epcs = []
        while not epcs:
            _, value = out.get(timeout=20)
            epcs += [value.epc] if isinstance(value, TagRead) else []
        assert epcs == ["DD" * 12] and device.reopens == 1


@pytest.mark.parametrize(("sim", "message"), [
    (r420("EU"), "door-03: the reader's channels (865.700-867.500 MHz) are outside region PRC (920.5-924.5 MHz): "
                 "set the reader's region on its web page, or the profile's to the reader's"),
    (r420("PRC", antennas=1), "door-03: the profile uses antenna 2 but the reader has 1: fix the profile's antennas"),
])
def test_a_profile_the_reader_cannot_follow_is_refused_with_the_remedy(sim: Any, message: str,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    reader = LlrpReader(sim)
    try:
        with connected(reader):
            wait_for(lambda: message in caplog.text, what="the refusal in the log")
        assert not reader.started.is_set() and reader.received == ["GET_READER_CAPABILITIES"] * reader.connections
    finally:
        reader.close()


def test_an_llrp_portal_at_the_dock_door_loads_a_shipment(tmp_path: Path, db_url: str, mqtt_url: str,
                                                        gateway_id: str, reader: LlrpReader) -> None:
    """The gateway (a real process) configures the reader; pallets pass the door outward, peaking on the
    inner antenna first; ingest and the CRM link (real processes) move the shipment to loaded."""
    door = {"readers": [{"name": "door-03", "protocol": "llrp", "port": f"socket://{reader.address}",
                         "region": "PRC", "llrp": {"keepalive_s": 2},
                         "antennas": [{"port": 1, "read_point": "wh-sh1/door-03", "side": "outer"},
                                      {"port": 2, "read_point": "wh-sh1/door-03", "side": "inner"}]}],
            "gateway": {"smoothing": {"absent_s": 0.5}}}
    with journey(tmp_path, db_url, mqtt_url, gateway_id, "SO-LLRP", door, loaded=False) as trip:
        assert reader.started.wait(30)
        for uri in ITEMS:
            tag = epc.encode(uri, filter_=1)
            for antenna in (2, 2, 2, 1, 1, 1):
                assert reader.report([(tag, antenna, -48 if antenna == 2 else -52)])
        trip.wait_for("loaded")
        assert trip.history()[0] == ["loading", "loaded"]


def test_a_profile_turns_into_the_inventory_the_session_sets(tmp_path: Path) -> None:
    shipped = load_profile(PROFILES / "dock-wh-sh2-llrp.yaml").readers[0]
    assert shipped.inventory() == Inventory(region="PRC", band_mhz=(920.5, 924.5), power_dbm={1: 30.0, 2: 30.0},
                                            session=1, search_mode="dual_target", tag_population=64, keepalive_s=10)
    bad = tmp_path / "bad.yaml"
    bad.write_text("gateway: {id: dock-1}\nreaders:\n"
                   "  - {name: d1, protocol: llrp, port: /dev/ttyUSB0, antennas: [{port: 1, read_point: s/d}]}\n"
                   "  - {name: d2, protocol: thingmagic-mercury, port: /dev/ttyUSB1, llrp: {session: 2},\n"
                   "     antennas: [{port: 1, read_point: s/d}]}\n")
    assert validate_file(bad) == [
        f"{bad}:3: readers.0: an llrp reader's port is socket://HOST:PORT (port 5084 as a rule)",
        f"{bad}:4: readers.1: an llrp section belongs to an llrp reader, not to thingmagic-mercury"]
