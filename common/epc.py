"""GS1 EPC Tag Data Standard: 96-bit EPC binary ⇄ pure identity URI (SGTIN, SSCC, SGLN, GRAI, GIAI, GID).

Table-driven: each scheme is a header and a bit layout; the partition value decides how the
company prefix and the reference share their bits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class EpcError(ValueError):
    """Not a (supported) GS1 EPC: raw test EPCs, unprogrammed tags, malformed hex."""


@dataclass(frozen=True, slots=True)
class Epc:
    scheme: str  # sgtin, sscc, sgln, grai, giai, gid
    uri: str  # pure identity URI
    filter: int | None
    fields: tuple[str, ...]  # the URI's dot-separated parts


@dataclass(frozen=True, slots=True)
class _Scheme:
    name: str
    header: int
    ref_total_bits: int  # company prefix + reference together
    second_digits: tuple[int, ...]  # digits of the reference per partition 0..6 (bits derive from table)
    second_bits: tuple[int, ...]
    tail_bits: int  # serial / extension after the reference (0 for none)
    pad_second: bool = True


_COMPANY_BITS = (40, 37, 34, 30, 27, 24, 20)
_COMPANY_DIGITS = (12, 11, 10, 9, 8, 7, 6)

_SCHEMES = {s.header: s for s in (
    _Scheme("sgtin", 0x30, 44, (1, 2, 3, 4, 5, 6, 7), (4, 7, 10, 14, 17, 20, 24), 38),
    _Scheme("sscc", 0x31, 58, (5, 6, 7, 8, 9, 10, 11), (18, 21, 24, 28, 31, 34, 38), 0),
    _Scheme("sgln", 0x32, 41, (0, 1, 2, 3, 4, 5, 6), (1, 4, 7, 11, 14, 17, 21), 41),
    _Scheme("grai", 0x33, 44, (0, 1, 2, 3, 4, 5, 6), (4, 7, 10, 14, 17, 20, 24), 38),
    _Scheme("giai", 0x34, 82, (13, 14, 15, 16, 17, 18, 19), (42, 45, 48, 52, 55, 58, 62), 0, pad_second=False),
)}
_BY_NAME = {s.name: s for s in _SCHEMES.values()}
_GID = 0x35
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def decode(epc_hex: str) -> Epc:
    """Decode a 96-bit EPC in hex to its pure identity; EpcError for anything else."""
    if not _HEX.match(epc_hex or ""):
        raise EpcError(f"not hexadecimal: {epc_hex!r}")
    if len(epc_hex) != 24:
        raise EpcError(f"not a 96-bit EPC ({len(epc_hex) * 4} bits): {epc_hex}")
    value = int(epc_hex, 16)
    header = value >> 88
    if header == _GID:
        manager, cls, serial = (value >> 60) & (2**28 - 1), (value >> 36) & (2**24 - 1), value & (2**36 - 1)
        fields = (str(manager), str(cls), str(serial))
        return Epc("gid", "urn:epc:id:gid:" + ".".join(fields), None, fields)
    scheme = _SCHEMES.get(header)
    if scheme is None:
        raise EpcError(f"header 0x{header:02X} is not a supported GS1 EPC scheme: {epc_hex}")
    filter_ = (value >> 85) & 0b111
    partition = (value >> 82) & 0b111
    if partition > 6:
        raise EpcError(f"invalid partition {partition}: {epc_hex}")
    body = value & (2**82 - 1)
    rest_bits = 82 - scheme.ref_total_bits
    refs, tail = body >> rest_bits, body & (2**rest_bits - 1)
    second_bits = scheme.second_bits[partition]
    company, second = refs >> second_bits, refs & (2**second_bits - 1)
    company_digits, second_digits = _COMPANY_DIGITS[partition], scheme.second_digits[partition]
    if company >= 10**company_digits or (scheme.pad_second and second >= 10**second_digits):
        raise EpcError(f"reference out of range for partition {partition}: {epc_hex}")
    parts = [f"{company:0{company_digits}d}", f"{second:0{second_digits}d}" if second_digits else ""]
    if not scheme.pad_second:
        parts[1] = str(second)
    if scheme.tail_bits:
        parts.append(str(tail))
    fields = tuple(parts)
    return Epc(scheme.name, f"urn:epc:id:{scheme.name}:" + ".".join(fields), filter_, fields)


def encode(uri: str, filter_: int = 0) -> str:
    """Pure identity URI → 96-bit EPC hex (upper case). The inverse of `decode`."""
    m = re.match(r"^urn:epc:id:([a-z]+):(.*)$", uri)
    if not m:
        raise EpcError(f"not a pure identity URI: {uri!r}")
    name, parts = m.group(1), m.group(2).split(".")
    if name == "gid":
        manager, cls, serial = (int(p) for p in parts)
        return f"{(_GID << 88) | (manager << 60) | (cls << 36) | serial:024X}"
    scheme = _BY_NAME.get(name)
    if scheme is None or len(parts) != (3 if scheme.tail_bits else 2):
        raise EpcError(f"unsupported or malformed EPC URI: {uri!r}")
    try:
        partition = _COMPANY_DIGITS.index(len(parts[0]))
    except ValueError:
        raise EpcError(f"company prefix must have 6 to 12 digits: {uri!r}") from None
    if scheme.pad_second and len(parts[1]) != scheme.second_digits[partition]:
        raise EpcError(f"reference has the wrong number of digits for its company prefix: {uri!r}")
    company, second = int(parts[0]), int(parts[1] or 0)
    tail = int(parts[2]) if scheme.tail_bits else 0
    rest_bits = 82 - scheme.ref_total_bits
    if second >= 2 ** scheme.second_bits[partition] or tail >= 2**rest_bits or not 0 <= filter_ <= 7:
        raise EpcError(f"value out of range for a 96-bit EPC: {uri!r}")
    refs = (company << scheme.second_bits[partition]) | second
    value = (scheme.header << 88) | (filter_ << 85) | (partition << 82) | (refs << rest_bits) | tail
    return f"{value:024X}"


def sgtin_uri(company_prefix: str, item_ref: str, serial: int) -> str:
    """The pure identity of one trade item instance (GTIN + serial)."""
    return f"urn:epc:id:sgtin:{company_prefix}.{item_ref}.{serial}"


def sscc_uri(company_prefix: str, serial_ref: str) -> str:
    return f"urn:epc:id:sscc:{company_prefix}.{serial_ref}"
