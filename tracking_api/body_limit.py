"""Request bodies are read whole, within a size and a time limit, before a request may take an
admission slot, a worker thread or a database connection: a huge body is refused (413) as soon as it
passes the limit, and a body trickled in to hold the API's slots ends in 408, costing meanwhile only an
idle coroutine."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request

from tracking_api.problems import problem, said

Scope = dict[str, Any]


class TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware, outside `Admission`."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, 413)
            return
        try:
            body = await asyncio.wait_for(self._read(receive), self.timeout_s)
        except TooLarge:
            await self._refuse(scope, receive, send, 413)
            return
        except TimeoutError:
            await self._refuse(scope, receive, send, 408)
            return
        if body is None:  # the client left while sending
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()  # what follows the body: a disconnect, for streams that wait for it
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Any) -> bytes | None:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, scope: Scope, receive: Any, send: Any, status: int) -> None:
        request = Request(scope)
        if status == 413:
            answer = problem(request, 413, said(request, "problem.body_too_large", bytes=self.max_bytes))
        else:
            answer = problem(request, 408, said(request, "problem.body_timeout", seconds=f"{self.timeout_s:g}"))
        answer.headers["Connection"] = "close"
        await answer(scope, receive, send)
