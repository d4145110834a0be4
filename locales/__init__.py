"""The texts people read from the server side (API answers, notifications), in every language the
customers can be written to: gettext catalogues read with Babel, language negotiation, and times as
people read them."""

from __future__ import annotations

from locales.catalogue import DEFAULT, LANGUAGES, text
from locales.negotiation import negotiate
from locales.times import when

__all__ = ["DEFAULT", "LANGUAGES", "negotiate", "text", "when"]
