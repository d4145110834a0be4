"""EPC Tag Data Standard decoding against the GS1 vectors, and the round trip back to binary."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common import epc


def _rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_every_96_bit_vector_decodes_to_its_pure_identity_and_back(corpora: Path) -> None:
    rows = _rows(corpora / "epc/tds96.tsv")[1:]  # first line names the columns
    assert len(rows) == 61
    for hexed, uri, *_ in rows:
        decoded = epc.decode(hexed)
        assert decoded.uri == uri, hexed
        assert epc.encode(uri, decoded.filter or 0) == hexed


def test_standard_examples_of_supported_96_bit_schemes(corpora: Path) -> None:
    checked = 0
    for hexed, uri, *_ in _rows(corpora / "epc/tds_standard_examples.tsv"):
        if len(hexed) == 24 and uri.split(":")[3] in ("sgtin", "sscc", "sgln", "grai", "giai", "gid"):
            assert epc.decode(hexed).uri == uri
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("raw", ["596F596F", "000000000000000000001545", "E2001026760E017915907125", "", "XYZ"])
def test_non_epcs_from_real_readers_are_reported_never_crash(raw: str) -> None:
    with pytest.raises(epc.EpcError):
        epc.decode(raw)


@given(st.text(max_size=40))
def test_arbitrary_text_raises_only_epc_error(text: str) -> None:
    with contextlib.suppress(epc.EpcError):
        assert epc.decode(text).uri.startswith("urn:epc:id:")


@given(partition=st.integers(0, 6), data=st.data(), serial=st.integers(0, 2**38 - 1), filter_=st.integers(0, 7))
def test_sgtin_round_trip(partition: int, data: st.DataObject, serial: int, filter_: int) -> None:
    company_digits = 12 - partition
    company = data.draw(st.integers(0, 10**company_digits - 1))
    item = data.draw(st.integers(0, 10 ** (partition + 1) - 1))
    uri = epc.sgtin_uri(f"{company:0{company_digits}d}", f"{item:0{partition + 1}d}", serial)
    decoded = epc.decode(epc.encode(uri, filter_))
    assert (decoded.uri, decoded.filter) == (uri, filter_)
