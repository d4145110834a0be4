"""Cargo identifiers a CRM sends (SSCC, GTIN + serial) mapped to the EPC pure identity URIs tags carry."""

from __future__ import annotations

import re

from common import epc

# The parts of a pure identity URI per scheme (EPC Tag Data Standard): its digit fields, how many digits
# the company prefix and the reference make together (the GS1 key's length), and its serial's characters.
_SERIAL = r"(?:[!'()*+,\-.0-9:;=A-Z_a-z]|%[0-9A-Fa-f]{2})+"
_SCHEMES = {
    "sgtin": (rf"(\d+)\.(\d+)\.{_SERIAL}", 13, "CompanyPrefix.IndicatorAndItemReference.Serial"),
    "sscc": (r"(\d+)\.(\d+)", 17, "CompanyPrefix.ExtensionAndSerialReference"),
    "sgln": (rf"(\d+)\.(\d*)\.{_SERIAL}", 12, "CompanyPrefix.LocationReference.Extension"),
    "grai": (rf"(\d+)\.(\d*)\.{_SERIAL}", 12, "CompanyPrefix.AssetType.Serial"),
    "giai": (rf"(\d+)\.{_SERIAL}", 0, "CompanyPrefix.IndividualAssetReference"),
    "gid": (r"(\d+)\.\d+\.\d+", 0, "ManagerNumber.ObjectClass.Serial"),
}


def uri_problem(uri: str) -> str | None:
    """Why an EPC pure identity URI is malformed (a missing serial, a key of the wrong length), or None."""
    scheme, _, body = uri.removeprefix("urn:epc:id:").partition(":")
    if scheme not in _SCHEMES:
        return f"not an EPC pure identity URI of {', '.join(_SCHEMES)}"
    pattern, key_digits, parts = _SCHEMES[scheme]
    match = re.fullmatch(pattern, body)
    if match is None:
        return f"a {scheme} URI is urn:epc:id:{scheme}:{parts}"
    if scheme != "gid" and not 6 <= len(match.group(1)) <= 12:
        return "a company prefix has 6 to 12 digits"
    if key_digits and len(match.group(1)) + len(match.group(2)) != key_digits:
        return f"a {scheme} URI's company prefix and reference have {key_digits} digits together"
    return None


def gs1_check_digit(digits: str) -> int:
    """The GS1 mod-10 check digit of the digits before it."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits)))
    return (10 - total % 10) % 10


def _checked(value: str, length: int, name: str) -> str:
    if not re.fullmatch(rf"\d{{{length}}}", value):
        raise ValueError(f"{name} must be {length} digits")
    if gs1_check_digit(value[:-1]) != int(value[-1]):
        raise ValueError(f"{name} {value} has a wrong check digit")
    return value


def _prefix_length(length: int) -> int:
    if not 6 <= length <= 12:
        raise ValueError("company_prefix_length must be 6 to 12")
    return length


def sscc_to_uri(sscc: str, company_prefix_length: int) -> str:
    """SSCC (18 digits: extension, company prefix, serial reference, check) → urn:epc:id:sscc."""
    sscc = _checked(sscc, 18, "SSCC")
    n = _prefix_length(company_prefix_length)
    return epc.sscc_uri(sscc[1:1 + n], sscc[0] + sscc[1 + n:17])


def gtin_serial_to_uri(gtin: str, serial: str, company_prefix_length: int) -> str:
    """GTIN-14 (or GTIN-13 / -12, left-padded) + numeric serial → urn:epc:id:sgtin."""
    gtin = _checked(gtin.zfill(14), 14, "GTIN")
    n = _prefix_length(company_prefix_length)
    if not re.fullmatch(r"[1-9]\d{0,11}|0", serial):
        raise ValueError("serial must be a number without leading zeros (SGTIN-96)")
    return epc.sgtin_uri(gtin[1:1 + n], gtin[0] + gtin[1 + n:13], int(serial))
