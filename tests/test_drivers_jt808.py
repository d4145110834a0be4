"""JT/T 808: frames built byte by byte from the standard's field layout (not by our encoder) decode to
their fields; our encoder and decoder agree on whatever hypothesis makes up; the stream decoder
survives a megabyte of noise. During development the decoder was also run over the frames published in
open-source decoders' test suites (terminal registrations, authentications, heartbeats, location reports
with alarms and additional items, blind-area batches); those frames are not kept here."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_drivers import jt808 as j


def _bcd(digits: str) -> bytes:
    return bytes.fromhex(digits)


def _frame(content: bytes) -> bytes:
    """Flag, escaped content and check code, flag: written out here from the standard's rules."""
    check = 0
    for b in content:
        check ^= b
    escaped = bytearray()
    for b in content + bytes([check]):
        escaped += {0x7E: b"\x7d\x02", 0x7D: b"\x7d\x01"}.get(b, bytes([b]))
    return b"\x7e" + bytes(escaped) + b"\x7e"


def _location_2013(phone: str, serial: int) -> bytes:
    """A location report: emergency and overspeed alarms, positioned, south and west, at 2026-11-29
    16:30:05 Beijing time, with mileage 1234.5 km and 11 satellites."""
    body = struct.pack(">IIIIHHH", 0b11, 0b1110, 33_868_500, 151_209_300, 45, 623, 270)
    body += _bcd("261129163005") + bytes([0x01, 4]) + struct.pack(">I", 12345) + bytes([0x31, 1, 11])
    header = struct.pack(">HH", 0x0200, len(body)) + _bcd(phone) + struct.pack(">H", serial)
    return _frame(header + body)


def test_a_location_report_built_from_the_standard_decodes_to_its_fields() -> None:
    (message,) = j.Jt808Decoder().feed(_location_2013("013912345678", 7))
    assert (message.header.message_id, message.header.phone, message.header.serial) == (0x0200, "013912345678", 7)
    assert not message.header.is_2019
    report = j.location(message.body)
    assert report.alarms == ("emergency", "overspeed") and report.fixed
    assert (report.lat, report.lon) == (-33.8685, -151.2093)
    assert (report.altitude_m, report.speed_kmh, report.course_deg) == (45, 62.3, 270)
    assert report.ts == datetime(2026, 11, 29, 8, 30, 5, tzinfo=UTC)  # GMT+8 on the wire
    assert report.extras == {"mileage_km": 1234.5, "satellites": 11}


def test_a_2019_header_carries_its_version_and_a_20_digit_phone_number() -> None:
    body = b"\x05codeX" + b"860000000000001" + b"V2.1".ljust(20, b"\x00")
    header = struct.pack(">HH", 0x0102, len(body) | 0x4000) + bytes([1]) + _bcd("00000000013912345678") + b"\x00\x09"
    (message,) = j.Jt808Decoder().feed(_frame(header + body))
    assert message.header.is_2019 and message.header.version == 1
    assert message.header.phone == "00000000013912345678"
    assert j.auth_code(message) == "codeX"


def test_a_registration_with_a_chinese_plate() -> None:
    body = struct.pack(">HH", 31, 1100) + b"70107" + b"HB-R03".ljust(20, b"\x00") + b"2366104" + bytes([2])
    body += "沪A12345".encode("gbk")
    header = struct.pack(">HH", 0x0100, len(body)) + _bcd("013912345678") + b"\x00\x01"
    (message,) = j.Jt808Decoder().feed(_frame(header + body))
    assert j.registration(message) == j.Registration(31, 1100, "70107", "HB-R03", "2366104", 2, "沪A12345")


def test_escaping_keeps_flags_out_of_a_frame_and_comes_back_exactly() -> None:
    content = bytes([0x7E, 0x01, 0x7D, 0x7D, 0x02, 0x7E])
    assert j.escape(content) == bytes([0x7D, 0x02, 0x01, 0x7D, 0x01, 0x7D, 0x01, 0x02, 0x7D, 0x02])
    assert j.unescape(j.escape(content)) == content
    with pytest.raises(j.Jt808Error):
        j.unescape(b"\x7d\x03")


@given(st.binary(max_size=300))
def test_escape_round_trips_and_never_lets_a_flag_through(data: bytes) -> None:
    assert 0x7E not in j.escape(data)
    assert j.unescape(j.escape(data)) == data


LOCATIONS = st.builds(
    j.Location, alarms=st.lists(st.sampled_from(sorted(j.ALARMS.values())), unique=True).map(tuple),
    status=st.integers(0, 2**32 - 1).map(lambda s: s & ~(j.STATUS_FIXED | j.STATUS_SOUTH | j.STATUS_WEST)),
    fixed=st.booleans(), lat=st.integers(-90_000_000, 90_000_000).map(lambda v: v / 1e6),
    lon=st.integers(-180_000_000, 180_000_000).map(lambda v: v / 1e6), altitude_m=st.integers(-500, 9000),
    speed_kmh=st.integers(0, 2000).map(lambda v: v / 10), course_deg=st.integers(0, 359),
    ts=st.datetimes(datetime(2000, 1, 2), datetime(2098, 12, 30)).map(lambda t: t.replace(microsecond=0,
                                                                                          tzinfo=UTC)),
    extras=st.fixed_dictionaries({}, optional={"mileage_km": st.integers(0, 10**8).map(lambda v: v / 10),
                                               "satellites": st.integers(0, 99)}))


@settings(max_examples=200, deadline=None)
@given(LOCATIONS, st.booleans(), st.integers(0, 0xFFFF))
def test_whatever_location_is_encoded_decodes_to_itself(report: j.Location, is_2019: bool, serial: int) -> None:
    header = j.Header(j.LOCATION, "0" * 9 + "13912345678" if is_2019 else "013912345678", serial,
                      version=1 if is_2019 else None)
    (message,) = j.Jt808Decoder().feed(j.frame(header, j.location_body(report)))
    assert message.header == header
    decoded = j.location(message.body)
    assert decoded == j.Location(tuple(sorted(report.alarms, key=list(j.ALARMS.values()).index)),
                                 decoded.status, report.fixed, report.lat if report.lat else 0.0,
                                 report.lon if report.lon else 0.0, report.altitude_m, report.speed_kmh,
                                 report.course_deg, report.ts, report.extras)
    assert decoded.status & ~(j.STATUS_FIXED | j.STATUS_SOUTH | j.STATUS_WEST) == report.status


def test_a_blind_area_batch_brings_every_report() -> None:
    reports = [j.Location((), j.STATUS_FIXED, True, 31.2 + i / 100, 121.4, 5, 30.0, 90,
                          datetime(2026, 11, 29, 8, i, tzinfo=UTC))
               for i in range(5)]
    (message,) = j.Jt808Decoder().feed(j.frame(j.Header(j.BATCH_LOCATION, "013912345678", 3),
                                               j.batch_body(reports, supplement=True)))
    assert j.batch_locations(message.body) == (True, reports)


def test_subpackages_are_joined_in_any_order() -> None:
    body = bytes(range(256)) * 10
    parts = [body[i:i + 1000] for i in range(0, len(body), 1000)]
    frames = [j.frame(j.Header(0x0801, "013912345678", 100 + n, packages=(len(parts), n + 1)), part)
              for n, part in enumerate(parts)]
    reassembly = j.Reassembly()
    messages = j.Jt808Decoder().feed(b"".join(reversed(frames)))
    joined = [m for m in map(reassembly.add, messages) if m is not None]
    assert len(joined) == 1 and joined[0].body == body and joined[0].header.serial == 100


def test_a_terminal_leaving_a_flag_unescaped_inside_a_frame_is_still_understood() -> None:
    header = j.Header(j.LOCATION, "013912345678", 1)
    report = j.Location((), 0, True, 31.2, 121.4, 5, 30.0, 90, datetime(2026, 11, 29, 8, 0, tzinfo=UTC),
                        {"item_e1": "7e00"})
    body = j.location_body(report) + bytes([0xE1, 2, 0x7E, 0x00])
    data = j.encode_header(header, len(body)) + body
    sloppy = b"\x7e" + data + bytes([j.check_code(data)]) + b"\x7e"  # no escaping at all
    assert 0x7D not in data  # the only thing wrong with it is the bare flag inside
    (message,) = j.Jt808Decoder().feed(sloppy)
    assert j.location(message.body).extras["item_e1"] == "7e00"


def test_a_wrong_check_code_or_length_is_counted_not_decoded() -> None:
    good = _location_2013("013912345678", 1)
    corrupt = good[:-2] + bytes([good[-2] ^ 0xFF]) + good[-1:]
    decoder = j.Jt808Decoder()
    assert [m.header.serial for m in decoder.feed(corrupt + good)] == [1]
    assert decoder.bad_frames["bad check code"] == 1


def test_a_megabyte_of_noise_with_frames_in_it_never_breaks_the_decoder() -> None:
    """Seeded fuzz: 1 MiB of random bytes (flags and escapes among them) with a valid frame every ~4 kB."""
    rng = random.Random(808)
    decoder = j.Jt808Decoder()
    sent = found = 0
    for n in range(256):
        noise = bytes(rng.getrandbits(8) for _ in range(4096))
        frame = _location_2013("013912345678", n)
        sent += 1
        chunk = noise + frame
        for i in range(0, len(chunk), rng.randint(1, 700)):
            for message in decoder.feed(chunk[i:i + 700]):
                found += message.header.message_id == j.LOCATION and message.body[:8] == struct.pack(">II", 3, 14)
        assert decoder.buffered <= 4 * j.MAX_FRAME
    assert found >= sent * 0.98  # a frame right behind noise that ends in a flag can be lost to it
