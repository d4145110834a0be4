"""Which language to speak: the user's explicit choice (`?lang=`), else the browser's or client's
`Accept-Language` (RFC 9110 §12.5.4, by q-value), else the customer's configured language, else the
default. Any region or script of a language we have is that language (en-GB → en; zh, zh-Hans, zh-TW
→ zh-CN, the one Chinese catalogue)."""

from __future__ import annotations

import re

from babel import negotiate_locale

from locales.catalogue import DEFAULT, LANGUAGES

RANGE = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")  # a language range; `*` carries no preference
QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
# primary subtag → the catalogue's language
_PRIMARY = {language.split("-")[0].lower(): language for language in LANGUAGES}


def accept_language(header: str | None) -> list[str]:
    """The language ranges of an Accept-Language header, most wanted first (equal weights keep their
    order); ranges with q=0 and malformed entries are left out, the rest of the header still counts."""
    weighted = []
    for position, entry in enumerate((header or "").split(",")):
        tag, *params = (part.strip() for part in entry.split(";"))
        q: float | None = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                value = value.strip()
                q = float(value) if QVALUE.fullmatch(value) else None
        if q and RANGE.fullmatch(tag):
            weighted.append((-q, position, tag.replace("_", "-")))
    return [tag for _, _, tag in sorted(weighted)]


def supported(ranges: list[str]) -> str | None:
    """The first of the ranges we have a catalogue for, as our language tag; None when none is."""
    found = negotiate_locale(ranges, list(_PRIMARY), sep="-", aliases=None)
    return _PRIMARY[found.split("-")[0].lower()] if found else None


def negotiate(choice: str | None, accept: str | None, customer_language: str | None) -> str:
    """The language to answer in: the explicit choice, the Accept-Language header, the customer's
    configured language, the default — the first of them we have."""
    for ranges in ([choice] if choice and RANGE.fullmatch(choice) else [], accept_language(accept),
                   [customer_language] if customer_language else []):
        found = supported([r.replace("_", "-") for r in ranges])
        if found:
            return found
    return DEFAULT
