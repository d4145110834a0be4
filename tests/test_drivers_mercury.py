"""Mercury protocol: every captured frame of a real M6e Nano passes our CRC and every tag record decodes."""

from __future__ import annotations

import os
from pathlib import Path

import serial
from hypothesis import given
from hypothesis import strategies as st

from device_drivers.rfid import decoder_for
from device_drivers.rfid import mercury as enc
from device_drivers.rfid.mercury import crc16


def _frames(corpora: Path) -> list[tuple[str, str, bytes, str]]:
    rows = []
    for line in (corpora / "rfid/thingmagic-mercury/frames.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            direction, opcode, hexed, source = line.split("\t")
            rows.append((direction, opcode, bytes.fromhex(hexed), source))
    return rows


def test_every_captured_frame_passes_the_module_crc(corpora: Path) -> None:
    frames = _frames(corpora)
    assert len(frames) == 1482
    assert all(crc16(f[1:-2]) == int.from_bytes(f[-2:], "big") for _, _, f, _ in frames)


def test_every_captured_tag_record_decodes(corpora: Path) -> None:
    decoder = decoder_for("thingmagic-mercury", reader="nano")
    records = [f for d, op, f, _ in _frames(corpora)
               if d == "Received" and op == "0x22" and f[3:5] == b"\0\0" and f[5] == 0x10]
    reads = [r for f in records for r in decoder.feed(f)]
    assert len(reads) == len(records) >= 1300
    assert not decoder.bad_frames
    assert all(r.rssi_dbm is not None and -100 < r.rssi_dbm < 0 for r in reads)
    assert all(r.frequency_khz and 902_000 <= r.frequency_khz <= 928_000 for r in reads)
    assert {r.epc for r in reads} >= {"596F596F", "000000000000000000001545", "E2001026760E017915907125"}


def test_capture_of_one_tag_read_7_times_at_about_minus_63_dbm(corpora: Path) -> None:
    decoder = decoder_for("thingmagic-mercury")
    reads = []
    capture = corpora / "rfid/thingmagic-mercury/5-596F569F_7_counts_-63dbm.txt"
    for line in capture.read_text().splitlines():
        if line.startswith("    "):
            reads += decoder.feed(bytes.fromhex(line))
    assert [r.epc for r in reads] == ["596F596F"] * 7  # the name's 569F is a typo of the capture's EPC
    assert all(-66 <= r.rssi_dbm <= -60 for r in reads)
    assert {r.antenna for r in reads} == {1}


def test_encoder_builds_the_frames_the_host_sent_in_the_capture(corpora: Path) -> None:
    sent = {f for d, _, f, _ in _frames(corpora) if d == "Sending"}
    assert enc.set_region("NA") in sent
    assert enc.set_antenna(1) in sent
    assert enc.set_read_power(15.0) == bytes.fromhex("FF 02 92 05 DC 44 85")


def test_resynchronises_after_garbage_and_a_corrupted_frame() -> None:
    good = enc.tag_record_frame("3034257BF7194E4000001A85", antenna=2, rssi_dbm=-58)
    corrupted = bytearray(good)
    corrupted[20] ^= 0x55
    decoder = decoder_for("thingmagic-mercury")
    reads = decoder.feed(b"\x00\xff\x13garbage" + bytes(corrupted) + good)
    assert [r.epc for r in reads] == ["3034257BF7194E4000001A85"]
    assert decoder.bad_frames["bad crc"] >= 1


def test_reads_real_bytes_through_a_serial_port() -> None:
    port = serial.serial_for_url("loop://", timeout=0.5)
    frames = [enc.tag_record_frame(f"30340000000000000000{i:04X}", 1, -50 - i) for i in range(5)]
    port.write(b"".join(frames))
    decoder = decoder_for("thingmagic-mercury")
    reads = []
    while len(reads) < 5 and (chunk := port.read(7)):  # small reads split frames anywhere
        reads += decoder.feed(chunk)
    assert [r.rssi_dbm for r in reads] == [-50, -51, -52, -53, -54]


def test_reads_through_a_pseudo_terminal() -> None:
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), timeout=1)
    port.reset_input_buffer()
    os.write(master, enc.tag_record_frame("ABCD" * 6, 3, -45))
    decoder = decoder_for("thingmagic-mercury")
    reads = []
    while not reads and (chunk := port.read(64)):
        reads += decoder.feed(chunk)
    port.close()
    os.close(master)
    os.close(slave)
    assert reads[0].epc == "ABCD" * 6 and reads[0].antenna == 3


epcs = st.binary(min_size=2, max_size=31).filter(lambda b: len(b) % 2 == 0).map(lambda b: b.hex().upper())


@given(epc=epcs, antenna=st.integers(1, 4), rssi=st.integers(-100, -1), freq=st.integers(860_000, 960_000))
def test_tag_record_round_trip(epc: str, antenna: int, rssi: int, freq: int) -> None:
    frame = enc.tag_record_frame(epc, antenna, rssi, frequency_khz=freq)
    (read,) = decoder_for("thingmagic-mercury").feed(frame)
    assert (read.epc, read.antenna, read.rssi_dbm, read.frequency_khz) == (epc, antenna, rssi, freq)


@given(noise=st.binary(max_size=600), pieces=st.integers(1, 50))
def test_garbage_never_raises_never_grows_and_the_next_good_frame_is_found(noise: bytes, pieces: int) -> None:
    decoder = decoder_for("thingmagic-mercury")
    good = enc.tag_record_frame("30340000000000000000BEEF", 1, -40)
    stream = noise + good
    found = []
    for i in range(0, len(stream), pieces):
        found += decoder.feed(stream[i:i + pieces])
        assert decoder.buffered <= 4096
    assert "30340000000000000000BEEF" in [r.epc for r in found]
