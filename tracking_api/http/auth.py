"""Bearer API keys → a Principal; role checks as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tracking_api.keys import Principal, authenticate

_bearer = HTTPBearer(auto_error=False)


def principal(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    if credentials is None:
        raise HTTPException(401, "an API key is required: Authorization: Bearer <key>")
    with request.app.state.pool.connection() as conn:
        found = authenticate(conn, credentials.credentials)
    if found is None:
        raise HTTPException(401, "invalid, revoked or expired API key")
    return found


def require(*roles: str) -> Callable[[Principal], Principal]:
    def check(who: Principal = Depends(principal)) -> Principal:
        if who.role not in roles:
            raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
        return who

    return check
