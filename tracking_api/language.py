"""The language an answer speaks (locales.negotiate): `?lang=`, else `Accept-Language`, else the
customer's configured language (a customer key's or a share link's customer), else zh-CN. Routes whose
answers carry texts for people take `Lang`; the answer says its language in `Content-Language`, and
problem details of the same request speak it too."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Response

from locales import negotiate
from tracking_api.auth import principal
from tracking_api.deps import shared
from tracking_api.keys import Principal

# Declared for the OpenAPI document and its length check; `spoken` reads it from the query, as the problem
# handler does for requests that never reach a route.
Choice = Annotated[str | None, Query(alias="lang", max_length=35, description=(
    "the language of the texts for people (zh-CN or en); default: Accept-Language, then the customer's language"))]


def spoken(request: Request, customer_language: str | None = None) -> str:
    """The request's language: as already settled for it, or negotiated from the request alone."""
    settled = getattr(request.state, "language", None)
    return settled or negotiate(request.query_params.get("lang"), request.headers.get("accept-language"),
                                customer_language)


def _settle(request: Request, response: Response, who: Principal) -> str:
    request.state.language = spoken(request, who.language)
    response.headers["Content-Language"] = request.state.language
    return request.state.language


def speaks(request: Request, response: Response, lang: Choice = None, who: Principal = Depends(principal)) -> str:
    return _settle(request, response, who)


def speaks_shared(request: Request, response: Response, lang: Choice = None, who: Principal = Depends(shared)) -> str:
    return _settle(request, response, who)


Lang = Annotated[str, Depends(speaks)]
SharedLang = Annotated[str, Depends(speaks_shared)]
