"""Group robots of the chat apps people in China work in: WeCom (企业微信), DingTalk (钉钉) and Feishu/Lark
(飞书). Each is one function laying a notice out as its robot's request (URL and JSON body), signing it
where the robot does, and one reading of the robot's reply: its own error code counts, an HTTP 200 with
`errcode` ≠ 0 is a failure (docs/notifications.md cites the vendors' documents).

- WeCom group robot: `{"msgtype": "markdown", "markdown": {"content": …}}` (content ≤ 4096 bytes), no
  signature: the robot's key is in its URL.
- DingTalk custom robot, signed: `timestamp` (ms) and `sign` = URL-encoded base64 of HMAC-SHA256 keyed by
  the secret over "timestamp\\nsecret", as query parameters; `{"msgtype": "markdown", "markdown": {title, text}}`.
- Feishu/Lark custom bot, signed: body fields `timestamp` (s) and `sign` = base64 of HMAC-SHA256 keyed by
  "timestamp\\nsecret" over an empty message; a `post` (rich text) message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus, urlsplit, urlunsplit

from crm_link.notices import Notice

# The hosts each robot's URL is on; another host only when the settings allow it (a relay, a test).
HOSTS: dict[str, tuple[str, ...]] = {"wecom": ("qyapi.weixin.qq.com",), "dingtalk": ("oapi.dingtalk.com",),
                                     "feishu": ("open.feishu.cn", "open.larksuite.com")}
SIGNED = ("dingtalk", "feishu")  # robots whose subscriptions keep a signing secret
WECOM_MAX_BYTES = 4096


@dataclass(frozen=True, slots=True)
class RobotRequest:
    url: str
    body: dict[str, Any]


def markdown(notice: Notice) -> str:
    lines = [f"### {notice.title}", *notice.lines]
    if notice.link:
        lines.append(f"[{notice.link_text}]({notice.link})")
    return "\n\n".join(lines)


def wecom(notice: Notice, url: str, secret: str | None, now: datetime) -> RobotRequest:
    content = markdown(notice).encode()[:WECOM_MAX_BYTES].decode(errors="ignore")
    return RobotRequest(url, {"msgtype": "markdown", "markdown": {"content": content}})


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def dingtalk(notice: Notice, url: str, secret: str | None, now: datetime) -> RobotRequest:
    assert secret, "a DingTalk subscription keeps its signing secret"
    timestamp = int(now.timestamp() * 1000)
    signed = f"{url}{'&' if urlsplit(url).query else '?'}timestamp={timestamp}&sign={dingtalk_sign(timestamp, secret)}"
    return RobotRequest(signed, {"msgtype": "markdown", "markdown": {"title": notice.title, "text": markdown(notice)}})


def feishu_sign(timestamp_s: int, secret: str) -> str:
    return base64.b64encode(hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


def feishu(notice: Notice, url: str, secret: str | None, now: datetime) -> RobotRequest:
    assert secret, "a Feishu subscription keeps its signing secret"
    timestamp = int(now.timestamp())
    paragraphs: list[list[dict[str, str]]] = [[{"tag": "text", "text": line}] for line in notice.lines]
    if notice.link:
        paragraphs.append([{"tag": "a", "text": notice.link_text, "href": notice.link}])
    return RobotRequest(url, {"timestamp": str(timestamp), "sign": feishu_sign(timestamp, secret), "msg_type": "post",
                              "content": {"post": {"zh_cn": {"title": notice.title, "content": paragraphs}}}})


ROBOTS: dict[str, Callable[[Notice, str, str | None, datetime], RobotRequest]] = {
    "wecom": wecom, "dingtalk": dingtalk, "feishu": feishu}


def refusal(reply: Any) -> str | None:
    """The robot's own refusal in a reply answered with HTTP 2xx, or None when it took the message.
    WeCom and DingTalk answer `errcode`/`errmsg`, Feishu `code`/`msg` (older bots `StatusCode`)."""
    if not isinstance(reply, dict):
        return "the reply is not a JSON object"
    for code, message in (("errcode", "errmsg"), ("code", "msg"), ("StatusCode", "StatusMessage")):
        if code in reply:
            return None if reply[code] == 0 else f"{code} {reply[code]}: {str(reply.get(message, ''))[:200]}"
    return "the reply carries no error code"


def masked(url: str | None) -> str | None:
    """A robot's URL as shown after it is subscribed: its key or token (query values, Feishu's last path
    segment) is a credential and is not shown again."""
    if url is None:
        return None
    parts = urlsplit(url)
    query = "&".join(f"{p.partition('=')[0]}=***" for p in parts.query.split("&") if p)
    path = parts.path.rsplit("/", 1)[0] + "/***" if "/hook/" in parts.path else parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
