"""Predictable failures as one line a person can act on: the cause and the remedy, no traceback.

A wrong URL, a missing file, a port in use or a server that is down is not a bug: `describe` turns
the exceptions they raise into such a line. Anything it does not know stays a traceback, because
that is a bug. Here because the gateway, the leftmost process, needs it too: psycopg and the central
settings are recognised without importing them (an edge box has neither).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydantic

DATABASE_REMEDY = "check CARGOTRACE_DATABASE_URL and that PostgreSQL runs"
RETRY_LOG_EVERY_S = 30.0
# Errors of a file the process was told to use; others (EIO, ...) stay tracebacks.
FILE_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.ENOSPC}


class Failure(Exception):
    """A predictable failure; its message is the whole line a person reads."""


def cause(exc: BaseException) -> str:
    """The short cause of an OS or connection error: 'connection refused', 'no such file or directory'."""
    return _lower(exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__)


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:]


def unreachable(what: str, where: str, why: str, remedy: str) -> str:
    return f"cannot reach {what}{f' at {where}' if where else ''} ({_lower(why)}): {remedy}"


def describe(exc: BaseException) -> str | None:
    """The one line for a predictable failure, or None for a bug (keep its traceback)."""
    if isinstance(exc, Failure):
        return str(exc)
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, pydantic.ValidationError) and exc.title == "Settings":
        return "; ".join(_setting_error(e) for e in exc.errors())
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        return _database(exc)
    return None


def _os_error(exc: OSError) -> str | None:
    if exc.errno in FILE_ERRNOS and exc.filename:
        return f"cannot use {exc.filename} ({cause(exc)})"
    return None


def pydantic_message(error: Any) -> str:
    """One of pydantic's errors in its own words, without the machinery's 'Value error, ' prefix."""
    ctx = error.get("ctx") or {}
    return str(ctx["error"]) if error["type"] == "value_error" and "error" in ctx else str(error["msg"])


def _setting_error(error: Any) -> str:
    name = "CARGOTRACE_" + "_".join(str(part) for part in error["loc"]).upper()
    return f"{name}={error['input']!r} is invalid: {_lower(pydantic_message(error))}"


def _database(exc: Any) -> str:
    """psycopg's connection error (several lines: 'connection to server at "H", port P failed: WHY') as one."""
    first = (str(exc) or type(exc).__name__).splitlines()[0]
    why = first.rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip()
    pgconn = exc.pgconn  # the failed connection: its host and port, as the URL named them
    where = f"{pgconn.host.decode()}:{pgconn.port.decode()}" if pgconn is not None and pgconn.host else ""
    if "read-only" in why:  # every host is a standby: the primary is gone and none is promoted yet
        return unreachable("a primary database", where, why, "no host of CARGOTRACE_DATABASE_URL accepts writes: "
                           "promote a standby (cargotrace db promote URL) once the old primary is down")
    return unreachable("the database", where, why, DATABASE_REMEDY)


@contextmanager
def naming(setting: str, path: str | Path) -> Iterator[None]:
    """An error of the file at `path` becomes a Failure naming the setting that chose it."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FILE_ERRNOS:
            raise
        raise Failure(f"cannot use {path} ({cause(exc)}): check {setting}") from exc


def writable_dir(setting: str, path: str | Path) -> None:
    """Create a file's folder if needed and make sure this process may write there (SQLite's own error
    says only 'unable to open database file')."""
    folder = Path(path).parent
    with naming(setting, folder):
        folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise Failure(f"cannot use {folder} (permission denied): check {setting}")


def port_in_use(port: int | str, remedy: str) -> Failure:
    return Failure(f"port {port} is in use: stop what listens there or choose another with {remedy}")


def listening_socket(host: str, port: int, remedy: str) -> socket.socket:
    """A TCP socket bound to host:port (listening), or a Failure saying the port is taken and how to move."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise port_in_use(port, remedy) from exc
        raise
    return sock


def exit_code(main: Callable[[], int | None], debug: bool) -> int:
    """Run a command: a predictable failure is one line on stderr and exit 1 (--debug: the traceback)."""
    try:
        return main() or 0
    except Exception as exc:
        message = describe(exc)
        if message is None or debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


class BrokerWatch:
    """Says why a paho client cannot reach its broker (the one it tried): host:port and the cause, at most every
    30 s.

    paho retries by itself and hides the error (on_connect_fail gets no argument, the log says 'Client is
    not connected. Socket: None'); it calls on_connect_fail inside its `except OSError`, where the error
    is still the one being handled.
    """

    def __init__(self, log: logging.Logger, remedy: str, then: Callable[[], None] = lambda: None) -> None:
        self.log, self.remedy, self.then = log, remedy, then  # then: after each failed attempt
        self._logged_at = -RETRY_LOG_EVERY_S

    def attach(self, client: Any) -> None:
        client.on_connect_fail = self._failed

    def _failed(self, client: Any, *_: object) -> None:
        now = time.monotonic()
        if now - self._logged_at >= RETRY_LOG_EVERY_S:
            self._logged_at = now
            exc = sys.exception() or ConnectionError("no answer")
            self.log.warning("%s; retrying", unreachable("the MQTT broker", f"{client.host}:{client.port}",
                                                         cause(exc), self.remedy))
        self.then()


class OneLineErrors(logging.Filter):
    """For a library's log (psycopg_pool's 'error connecting in pool: ERROR'): an error it logs as an
    argument, described in one line (host:port and cause) when it is a predictable one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple((describe(a) or a) if isinstance(a, BaseException) else a for a in record.args)
        return True


class PahoNoise(logging.Filter):
    """Drops paho's 'Client is not connected' line, repeated at every loop turn while away (BrokerWatch
    says why instead)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")
