"""Path parameters shared by the routers: one definition of what a reference or an id may look like."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

Ref = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
                          description="the CRM's external reference of a demand")]
Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
