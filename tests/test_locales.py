"""The server side's message catalogues: every key in every language, the same placeholders in each, real
gettext; language negotiation (explicit choice, Accept-Language by q-value, the customer's, the default);
times in 24-hour form in the site's zone with the zone named."""

from __future__ import annotations

import gettext
import io
import string
from datetime import UTC, datetime

import pytest
from babel.messages.mofile import write_mo
from hypothesis import given
from hypothesis import strategies as st

from locales import DEFAULT, LANGUAGES, negotiate, text, when
from locales.catalogue import catalog, messages
from locales.negotiation import accept_language
from storage import vocabulary


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def test_the_languages_are_those_customers_can_be_written_to() -> None:
    assert LANGUAGES == vocabulary.LANGUAGES and DEFAULT == "zh-CN"


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_key_is_missing_or_empty_in_any_catalogue(language: str) -> None:
    every = set().union(*(messages(other) for other in LANGUAGES))
    mine = messages(language)
    assert sorted(every - set(mine)) == []
    assert sorted(key for key, value in mine.items() if not value.strip()) == []


def test_placeholders_are_the_same_in_every_language() -> None:
    differ = {key: {language: placeholders(messages(language)[key]) for language in LANGUAGES}
              for key in messages(DEFAULT)}
    assert {key: found for key, found in differ.items() if len({frozenset(v) for v in found.values()}) > 1} == {}


@pytest.mark.parametrize(("prefix", "words"), [("status", vocabulary.STATUSES),
                                               ("exception", vocabulary.EXCEPTION_TYPES),
                                               ("state", vocabulary.EXCEPTION_STATES)])
def test_every_word_of_the_vocabulary_has_its_text(prefix: str, words: tuple[str, ...]) -> None:
    for language in LANGUAGES:
        assert all(text(f"{prefix}.{word}", language) for word in words)


def test_the_status_words_are_those_a_consignee_understands() -> None:
    assert [text(f"status.{s}", "zh-CN") for s in vocabulary.STATUSES] == [
        "待揽收", "装车中", "已装车", "运输中", "已到达", "已签收"]
    assert [text(f"status.{s}", "en") for s in vocabulary.STATUSES] == [
        "Awaiting pickup", "Loading", "Loaded", "In transit", "Arrived", "Delivered"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_catalogues_are_real_gettext(language: str) -> None:
    """Compiled to a .mo, standard gettext reads the same texts: the files are catalogues any gettext
    tool (Poedit, Weblate, msgfmt) takes."""
    compiled = io.BytesIO()
    write_mo(compiled, catalog(language))
    compiled.seek(0)
    translations = gettext.GNUTranslations(compiled)
    assert all(translations.gettext(key) == value for key, value in messages(language).items())
    assert str(catalog(language).locale) == {"zh-CN": "zh_Hans_CN", "en": "en"}[language]


def test_an_explicit_choice_beats_the_header_and_the_customer() -> None:
    assert negotiate("en", "zh-CN", "zh-CN") == "en"
    assert negotiate("zh", "en", "en") == "zh-CN"
    assert negotiate("fr", "en", "zh-CN") == "en"  # a choice we have no catalogue for does not count
    assert negotiate("<script>", None, "en") == "en"


def test_accept_language_by_q_value_then_the_customer_then_the_default() -> None:
    assert negotiate(None, "fr-CH, fr;q=0.9, en;q=0.8, zh;q=0.7", "zh-CN") == "en"
    assert negotiate(None, "en;q=0.3, zh-CN;q=0.6", "en") == "zh-CN"
    assert negotiate(None, "en-GB", None) == "en"
    assert negotiate(None, "zh-Hant-TW, en;q=0.5", None) == "zh-CN"  # the one Chinese catalogue
    assert negotiate(None, "en;q=0, fr", "zh-CN") == "zh-CN"  # q=0: not acceptable
    assert negotiate(None, "de, *;q=0.5", "en") == "en"  # `*` is no preference: the customer's
    assert negotiate(None, None, "en") == "en"
    assert negotiate(None, "", None) == DEFAULT


def test_a_malformed_entry_does_not_spoil_the_header() -> None:
    assert accept_language("en;q=2, zh;q=0.5, ;q=1, fr;q=0.x, de;q=0.25") == ["zh", "de"]
    assert accept_language("EN_us;Q=0.9, ja") == ["ja", "EN-us"]


QUALITY = st.sampled_from(["1", "1.0", "0.9", "0.5", "0.25", "0.125", "0.001"])
TAGS = st.sampled_from(["zh", "zh-CN", "zh-Hans", "en", "en-US", "fr", "de-CH", "ja", "ko"])


@given(st.lists(st.tuples(TAGS, QUALITY), max_size=6))
def test_the_heaviest_range_comes_first(entries: list[tuple[str, str]]) -> None:
    header = ", ".join(f"{tag};q={q}" for tag, q in entries)
    ranges = accept_language(header)
    assert len(ranges) == len(entries)
    if entries:
        heaviest = max(float(q) for _, q in entries)
        assert ranges[0] == next(tag for tag, q in entries if float(q) == heaviest)


@given(st.one_of(st.none(), st.text(max_size=80)), st.one_of(st.none(), st.text(max_size=200)),
       st.one_of(st.none(), st.sampled_from(LANGUAGES)))
def test_negotiation_never_fails_and_always_names_a_catalogue(choice: str | None, header: str | None,
                                                              customer: str | None) -> None:
    spoken = negotiate(choice, header, customer)
    assert spoken in LANGUAGES
    if not choice and not header:
        assert spoken == (customer or DEFAULT)


def test_times_in_24_hours_in_the_sites_zone_with_the_zone_named() -> None:
    evening = datetime(2026, 11, 30, 15, 5, tzinfo=UTC)  # 23:05 in Shanghai
    assert when(evening, "zh-CN") == "11月30日 23:05 (北京时间)"
    assert when(evening, "en") == "Nov 30, 23:05 (Beijing time)"
    assert when(evening, "en", "Europe/Berlin") == "Nov 30, 16:05 (Central European Standard Time)"
    assert when(evening, "zh-CN", "Asia/Urumqi").startswith("11月30日 21:05 (")
