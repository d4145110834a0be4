"""Impinj R2000 'CMD', EM4100 (RDM6300) and EPC-per-line readers on documented and captured frames.

Frames come from `shared/corpora/rfid/misc/r2000-and-em4100-frames.tsv`, which names the open-source
implementation each one was taken from beside it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_drivers import rfid
from device_drivers.rfid import decoder_for, em4100, r2000


def _frames(corpora: Path, protocol: str) -> list[tuple[bytes, str, str]]:
    rows = []
    for line in (corpora / "rfid/misc/r2000-and-em4100-frames.tsv").read_text().splitlines():
        if line.startswith(protocol):
            _, direction, hexed, meaning, *_ = line.split("\t")
            if protocol == "RDM6300":  # written as 02 'ASCII' 'ASCII' 03
                data = bytes([0x02]) + "".join(hexed.split("'")[1::2]).encode() + bytes([0x03])
            else:
                data = bytes.fromhex(hexed)
            rows.append((data, direction, meaning))
    return rows


def test_r2000_documented_frames(corpora: Path) -> None:
    frames = _frames(corpora, "R2000-CMD")
    assert all(r2000.checksum(f[:-1]) == f[-1] for f, _, _ in frames)
    assert r2000.real_time_inventory(address=1, repeat=1) == frames[0][0]
    decoder = decoder_for("impinj-r2000", "gate")
    reads = [r for f, direction, _ in frames if direction == "reader->host" for r in decoder.feed(f)]
    assert [(r.epc, r.antenna, r.rssi_dbm) for r in reads] == [
        ("000000000000000000002986", 1, -31.0), ("E2003098881900722140369E", 1, -54.0)]
    assert [e.code for e in decoder.errors] == [0x38]  # BUFFER_IS_EMPTY, turned into a clear error
    assert "buffer is empty" in str(decoder.errors[0])


def test_r2000_commands() -> None:
    assert r2000.set_output_power(30)[3:5] == bytes([0x76, 30])
    assert r2000.set_work_antenna(2)[3:5] == bytes([0x74, 1])
    with pytest.raises(ValueError):
        r2000.set_output_power(40)


def test_em4100_cards_and_the_invalid_frame(corpora: Path) -> None:
    frames = _frames(corpora, "RDM6300")
    decoder = decoder_for("em4100")
    reads = [r.epc for f, _, _ in frames for r in decoder.feed(f)]
    assert reads == ["67003B51C6", "67003BA86C", "67003BA867"]
    assert int(reads[0][2:], 16) == 3887558
    assert decoder.bad_frames["bad checksum"] == 1
    assert em4100.encode("67003B51C6") == frames[0][0]


def test_epc_lines() -> None:
    decoder = decoder_for("epc-lines")
    reads = decoder.feed(b"3074257bf7194e4000001a85\r\nhello\r\n\r\nE200") + decoder.feed(b"1026760E017915907125\n")
    assert [r.epc for r in reads] == ["3074257BF7194E4000001A85", "E2001026760E017915907125"]
    assert decoder.bad_frames["not an EPC"] == 1


@given(epc=st.binary(min_size=2, max_size=30).filter(lambda b: len(b) % 2 == 0), antenna=st.integers(1, 4),
       rssi=st.integers(-100, -1), index=st.integers(0, 59))
def test_r2000_round_trip(epc: bytes, antenna: int, rssi: int, index: int) -> None:
    (read,) = decoder_for("impinj-r2000").feed(r2000.tag_frame(epc.hex(), antenna, rssi, index))
    assert (read.epc, read.antenna, read.rssi_dbm, read.frequency_khz) == (
        epc.hex().upper(), antenna, rssi, r2000.frequency_khz(index))


@given(card=st.binary(min_size=5, max_size=5))
def test_em4100_round_trip(card: bytes) -> None:
    (read,) = decoder_for("em4100").feed(em4100.encode(card.hex()))
    assert read.epc == card.hex().upper()


def test_every_protocol_module_is_in_the_registry() -> None:
    """A protocol module whose line in the table was forgotten would never be offered to a profile."""
    helpers = ("__init__", "protocol", "llrp")  # llrp: the codec under llrp_session's record
    modules = [f.stem for f in Path(rfid.__file__).parent.glob("*.py") if f.stem not in helpers]
    records = {importlib.import_module(f"device_drivers.rfid.{m}").PROTOCOL for m in modules}
    assert records == set(rfid.PROTOCOLS.values())
    assert all(rfid.PROTOCOLS[name].name == name for name in rfid.PROTOCOLS)
