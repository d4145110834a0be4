"""Local stand-ins for where notifications go, each checking what it gets as the real one would: a group
robot's endpoint (WeCom, DingTalk with its URL signature, Feishu with its body signature) answering with
the robot's error codes, and a real SMTP server (aiosmtpd) that requires STARTTLS and a login."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
from collections import deque
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from launcher.embedded import free_port

SIGNATURE_WINDOW_S = 3600  # DingTalk refuses a timestamp more than an hour off


def signature_problem(channel: str, query: dict[str, list[str]], body: dict[str, Any], secret: str) -> str | None:
    """What the vendor would refuse in a signed robot request (None: the signature holds), computed
    here from the vendors' rules independently of crm_link/robots.py."""
    now = dt.datetime.now(dt.UTC).timestamp()
    if channel == "dingtalk":
        timestamp, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]  # parse_qs has URL-decoded
        expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                             hashlib.sha256).digest()).decode()
        fresh = timestamp.isdigit() and abs(int(timestamp) / 1000 - now) < SIGNATURE_WINDOW_S
    else:  # feishu
        timestamp, sign = str(body.get("timestamp", "")), str(body.get("sign", ""))
        expected = base64.b64encode(hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()
        fresh = timestamp.isdigit() and abs(int(timestamp) - now) < SIGNATURE_WINDOW_S
    if not fresh:
        return "timestamp missing or stale"
    return None if hmac.compare_digest(sign, expected) else "sign not match"


class Robot:
    """A group robot's endpoint. Answers are queued (HTTP status, JSON reply); by default 200 with the
    robot's success code. A signed channel's requests are checked against `secret` and refused the way
    the vendor does (HTTP 200, an error code) when the signature fails."""

    def __init__(self, channel: str, secret: str | None = None) -> None:
        self.channel, self.secret = channel, secret
        self.answers: deque[tuple[int, dict[str, Any]]] = deque()
        self.requests: list[dict[str, Any]] = []  # {"path", "query", "body", "status", "reply", "signature"}
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                body = json.loads(raw)
                problem = signature_problem(robot.channel, query, body, robot.secret) if robot.secret else None
                status, reply = robot.answers.popleft() if robot.answers else (200, robot.ok())
                if problem and status == 200:
                    reply = robot.refused(problem)
                robot.requests.append({"path": url.path, "query": query, "body": body, "status": status,
                                       "reply": reply, "signature": problem,
                                       "content_type": self.headers.get("content-type", "")})
                payload = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.server_address[1]
        self.url = {"wecom": f"http://127.0.0.1:{port}/cgi-bin/webhook/send?key=693axxx6-robot-key",
                    "dingtalk": f"http://127.0.0.1:{port}/robot/send?access_token=ding-token-1",
                    "feishu": f"http://127.0.0.1:{port}/open-apis/bot/v2/hook/feishu-token-1"}[channel]

    def ok(self) -> dict[str, Any]:
        return {"code": 0, "msg": "success"} if self.channel == "feishu" else {"errcode": 0, "errmsg": "ok"}

    def refused(self, why: str) -> dict[str, Any]:
        return {"code": 19021, "msg": why} if self.channel == "feishu" else {"errcode": 310000, "errmsg": why}

    def accepted(self) -> list[dict[str, Any]]:
        """The messages the robot took (posted to the group)."""
        return [r for r in self.requests if r["status"] == 200 and r["reply"] == self.ok()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as files (the client trusts the certificate as its CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "smtp.crt", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Mailbox:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that requires STARTTLS and a login before mail; answers
    queued SMTP replies first (e.g. "451 try again later"), then takes the message."""

    USER, PASSWORD = "notify", "relay-password"

    def __init__(self, folder: Path) -> None:
        self.cert_file, key_file = self_signed(folder)
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self.cert_file, key_file)
        self.answers: deque[str] = deque()
        self.messages: list[tuple[EmailMessage, list[str], bool]] = []  # message, recipients, over TLS
        self.refused = 0
        mailbox = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                if mailbox.answers:
                    mailbox.refused += 1
                    return mailbox.answers.popleft()
                message = message_from_bytes(envelope.content, policy=policy.default)
                mailbox.messages.append((message, list(envelope.rcpt_tos), session.ssl is not None))
                return "250 OK"

        def login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                self.USER.encode(), self.PASSWORD.encode())
            return AuthResult(success=ok)

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=tls,
                                     require_starttls=True, authenticator=login, auth_required=True)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
