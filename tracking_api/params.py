"""Parameters shared by the routers: one definition of what a reference, an id or a page may look like."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

Ref = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$",
                          description="the CRM's external reference of a demand")]
Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Token = Annotated[str, Path(min_length=10, max_length=512, pattern=r"^[A-Za-z0-9_.-]+$",
                            description="a share link's token")]
_CUSTOMER = {"min_length": 1, "max_length": 64, "pattern": r"^[A-Za-z0-9._-]+$"}
CustomerId = Annotated[str | None, Query(**_CUSTOMER, description="required for staff roles; customers always see "
                                                                  "their own")]
CustomerFilter = Annotated[str | None, Query(**_CUSTOMER, description="staff: one customer's, else every customer's; "
                                                                      "customers always see their own")]
MaxPoints = Annotated[int, Query(ge=2, le=5000, description="downsampled to at most this many fixes")]
After = Annotated[int, Query(ge=0, le=2**62, description="cursor: next_after of the last page")]
Limit = Annotated[int, Query(ge=1, le=500)]
AfterId = Annotated[str, Query(max_length=64, pattern=r"^[A-Za-z0-9._-]*$",
                               description="cursor: next_after of the last page")]
