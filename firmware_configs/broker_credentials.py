"""Gateway credentials for Mosquitto: its password file (the `mosquitto_passwd` format) and its ACL.

Written here rather than by calling `mosquitto_passwd`, so an operator's workstation needs no broker
installed. The hash is what Mosquitto 2.0 writes and checks: `user:$7$ITERATIONS$SALT$HASH`, PBKDF2
with SHA-512, a 12-byte random salt, 64 bytes of hash, both standard base64.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import tempfile
from pathlib import Path

ITERATIONS = 101  # mosquitto_passwd's default
SALT_BYTES = 12
# Topics a gateway must be able to write (ARCHITECTURE.md §4) and the one it reads.
GATEWAY_TOPICS = {("write", "cargotrace/v1/%u/rfid"), ("write", "cargotrace/v1/%u/gps"),
                  ("write", "cargotrace/v1/%u/state"), ("read", "cargotrace/v1/%u/command")}


def new_password() -> str:
    return secrets.token_urlsafe(24)


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def set_user(text: str, user: str, password_hash: str) -> str:
    """The password file `text` with `user` added, or its hash replaced in place; other lines unchanged."""
    line = f"{user}:{password_hash}"
    lines = text.splitlines()
    for i, existing in enumerate(lines):
        if existing.partition(":")[0] == user:
            lines[i] = line
            break
    else:
        lines.append(line)
    return "\n".join(lines) + "\n"


def write_user(path: Path, user: str, password: str) -> None:
    """Add or replace `user` in a password file atomically (Mosquitto may reload it at any moment).
    A new file is readable by its owner only; an existing one keeps its mode."""
    old = path.read_text() if path.exists() else ""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(set_user(old, user, hash_password(password)))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def acl_problems(acl: str, user: str) -> list[str]:
    """Why the ACL would not confine `user` as a gateway: missing `%u` patterns, or a `user` section of
    that name (an account like `ingest`, whose rights a gateway of the same name would get)."""
    entries = [line.split(None, 1) for line in acl.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    patterns = {tuple(value.split(None, 1)) for key, value in entries if key == "pattern"}
    named = {value.strip() for key, value in entries if key == "user"}
    problems = [f"the ACL lacks 'pattern {access} {topic}'" for access, topic in sorted(GATEWAY_TOPICS - patterns)]
    if user in named:
        problems.append(f"{user!r} is a named account in the ACL, not a gateway id")
    return problems
