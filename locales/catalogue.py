"""The message catalogues: one gettext `.po` file per language beside this module, named by the
language tag the API and `customers.language` use (`zh-CN.po`, `en.po`), read once with Babel. A
message's id is its key (`status.in_transit`); its text may hold `{name}` placeholders (str.format).
No compile step: the `.po` files are read as they are."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

FOLDER = Path(__file__).resolve().parent
DEFAULT = "zh-CN"  # the language of the business: spoken when nothing else is known
# Every language with a catalogue, the default first.
LANGUAGES: tuple[str, ...] = tuple(sorted((p.stem for p in FOLDER.glob("*.po")), key=lambda tag: tag != DEFAULT))


@cache
def catalog(language: str) -> Catalog:
    if language not in LANGUAGES:
        raise ValueError(f"no catalogue for the language {language!r}; there are {', '.join(LANGUAGES)}")
    with (FOLDER / f"{language}.po").open("rb") as f:
        return read_po(f)


@cache
def messages(language: str) -> dict[str, str]:
    """key → text of one catalogue (the header entry left out)."""
    return {str(m.id): str(m.string) for m in catalog(language) if m.id}


def locale(language: str) -> Locale:
    """Babel's locale of a catalogue (its `Language:` header), for dates and numbers."""
    found = catalog(language).locale
    assert found is not None, f"{language}.po has no Language header"
    return found


def has(key: str, language: str) -> bool:
    return key in messages(language)


def text(key: str, language: str, **params: object) -> str:
    """The text of `key` in `language`, its placeholders filled from `params`. A key missing from a
    catalogue is a KeyError: the catalogue test makes sure every key is in every one."""
    return messages(language)[key].format(**params)
