"""Moments as people read them: 24-hour time in a site's time zone, with the date and the zone named
(`11月30日 14:05 (北京时间)`, `Nov 30, 14:05 (Beijing time)`), formatted by Babel from CLDR."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton, get_timezone_name

from locales.catalogue import has, locale, text

DEFAULT_ZONE = "Asia/Shanghai"


def zone_name(local: datetime, zone: str, language: str) -> str:
    """The name people use for a zone: the catalogue's where it has one (`zone.Asia/Shanghai`:
    北京时间, Beijing time), else CLDR's long name (Babel)."""
    key = f"zone.{zone}"
    return text(key, language) if has(key, language) else get_timezone_name(local, "long", locale=locale(language))


def when(moment: datetime, language: str, zone: str = DEFAULT_ZONE) -> str:
    """`moment` (aware) in `zone`: the day and month, the time in 24-hour form, the zone's name."""
    local = moment.astimezone(ZoneInfo(zone))
    speech = locale(language)
    date = format_skeleton("MMMd", local, locale=speech)
    clock = format_skeleton("Hm", local, locale=speech)
    # CLDR's pattern joining a date and a time: "{1} {0}" in Chinese, "{1}, {0}" in English
    joined = str(speech.datetime_formats["medium"]).replace("{1}", date).replace("{0}", clock)
    return text("time.zoned", language, time=joined, zone=zone_name(local, zone, language))
