"""A refusal a person reads: an HTTP error whose detail is a catalogue key (locales) with its parameters,
said in the request's language by the problem handler (tracking_api/problems.py)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.exceptions import HTTPException


@dataclass(frozen=True, slots=True)
class Word:
    """A parameter that is itself a catalogue text (a state, a status), said in the same language."""

    key: str


class Refusal(HTTPException):
    def __init__(self, status: int, key: str, headers: dict[str, str] | None = None, **params: object) -> None:
        super().__init__(status, key, headers)
        self.key, self.params = key, params
