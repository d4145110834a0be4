"""The texts for people beside the machine words of an answer: `status_text` beside `status`, `type_text`
and `state_text` beside an exception's `type` and `state`, in the answer's language. The machine
fields stay as they are."""

from __future__ import annotations

from typing import Any

from locales import text


def exception(row: dict[str, Any], language: str) -> dict[str, Any]:
    return {**row, "type_text": text(f"exception.{row['type']}", language),
            "state_text": text(f"state.{row['state']}", language)}


def shipment(row: dict[str, Any], language: str) -> dict[str, Any]:
    """A shipment (or a line of the list): its status, its timeline's and its exceptions' words."""
    worded = {**row, "status_text": text(f"status.{row['status']}", language)}
    if "timeline" in row:
        worded["timeline"] = [{**entry, "status_text": text(f"status.{entry['status']}", language)}
                              for entry in row["timeline"]]
    if "exceptions" in row:
        worded["exceptions"] = [exception(x, language) for x in row["exceptions"]]
    return worded
