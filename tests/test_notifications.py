"""Notifications for people on the webhook outbox: WeCom, DingTalk and Feishu group robots and email, each
checked by a local stand-in the way the vendor checks (tests/receivers.py), in the subscriber's language."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as email_policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from common.settings import Settings
from crm_link import mail, notices, outbox, robots
from crm_link.webhooks import UnsafeURL
from tests.api_world import World
from tests.receivers import Mailbox, Robot, signature_problem
from tracking_api.app import create_app

DINGTALK_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
FEISHU_SECRET = "feishu-signing-secret-1"
EVENTS = ["exception.opened", "exception.resolved", "shipment.status_changed"]


@pytest.fixture
def mailbox(tmp_path: Path) -> Iterator[Mailbox]:
    box = Mailbox(tmp_path)
    yield box
    box.close()


@pytest.fixture
def settings(world: World, mailbox: Mailbox) -> Settings:
    return Settings(database_url=world.db_url, webhook_allow_private=True, notify_any_host=True,
                    public_url="https://track.example.com", smtp_host="127.0.0.1", smtp_port=mailbox.port,
                    smtp_user=Mailbox.USER, smtp_password=Mailbox.PASSWORD, smtp_ca_file=str(mailbox.cert_file),
                    smtp_from="notify@example.com", webhook_timeout_s=5)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture
def robot(request: pytest.FixtureRequest) -> Iterator[Robot]:
    channel, secret = request.param
    r = Robot(channel, secret)
    yield r
    r.close()


def subscribe(world: World, client: TestClient, who: str = "acme", lang: str | None = None, **body: Any) -> Any:
    return world.call(client, "POST", "/v1/webhooks", who, json={"event_types": EVENTS, **body},
                      params={"lang": lang} if lang else None)


def send_all(settings: Settings, rounds: int = 10) -> None:
    """The outbox worker's passes until nothing is due (retries are due at once with this schedule)."""
    sender = outbox.Sender(settings, delays=(0.0,) * 5)
    try:
        with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
            for _ in range(rounds):
                if sender.send_due(conn) == 0:
                    return
    finally:
        sender.close()


def deliveries(world: World) -> list[tuple[str, int, str | None]]:
    with psycopg.connect(world.db_url) as conn:
        return conn.execute("SELECT state, attempts, last_error FROM webhook_deliveries ORDER BY id").fetchall()


def misload(world: World, ref: str = "SO-A1") -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("INSERT INTO exceptions (demand_id, vehicle_id, type, opened_at, evidence) SELECT id, 'TRK-G', "
                     "'misload', now(), '{\"epc_uri\": \"urn:epc:id:sgtin:0614141.812345.1\", \"read_point\": "
                     "\"wh-sh1/door-03\", \"planned_vehicle_id\": \"TRK-A\"}' FROM demands WHERE external_ref = %s",
                     (ref,))


# --- the robots' and the mail's formats ------------------------------------------------------------------

NOTICE = notices.Notice("【运单 SO-1 装错车】", ("有货物装上了计划以外的车辆，调度正在处理。",),
                        "https://track.example.com/track/SO-1", "查看运单")
NOW = datetime(2026, 11, 30, 6, 5, tzinfo=UTC)


def test_the_signed_robots_sign_as_their_vendors_check() -> None:
    ding = robots.dingtalk(NOTICE, "https://oapi.dingtalk.com/robot/send?access_token=t", DINGTALK_SECRET, NOW)
    query = {k: [v] for k, v in (p.split("=", 1) for p in ding.url.split("?", 1)[1].split("&"))}
    assert query["timestamp"] == [str(int(NOW.timestamp() * 1000))] and query["access_token"] == ["t"]
    fresh = robots.dingtalk(NOTICE, "https://oapi.dingtalk.com/robot/send?access_token=t", DINGTALK_SECRET,
                            datetime.now(UTC))
    assert signature_problem("dingtalk", parse_qs(urlsplit(fresh.url).query), {}, DINGTALK_SECRET) is None
    assert signature_problem("dingtalk", parse_qs(urlsplit(fresh.url).query), {}, DINGTALK_SECRET + "x") == (
        "sign not match")
    feishu = robots.feishu(NOTICE, "https://open.feishu.cn/open-apis/bot/v2/hook/x", FEISHU_SECRET, datetime.now(UTC))
    assert signature_problem("feishu", {}, feishu.body, FEISHU_SECRET) is None
    assert signature_problem("feishu", {}, {**feishu.body, "timestamp": "1"}, FEISHU_SECRET) == (
        "timestamp missing or stale")
    assert feishu.body["msg_type"] == "post" and feishu.body["content"]["post"]["zh_cn"]["title"] == NOTICE.title
    wecom = robots.wecom(NOTICE, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", None, NOW)
    assert wecom.body == {"msgtype": "markdown", "markdown": {"content": robots.markdown(NOTICE)}}
    assert "[查看运单](https://track.example.com/track/SO-1)" in wecom.body["markdown"]["content"]


def test_a_wecom_message_is_cut_to_the_robots_limit_on_a_character() -> None:
    long = notices.Notice("标题", ("装" * 3000,), None, "")
    content = robots.wecom(long, "u", None, NOW).body["markdown"]["content"]
    assert len(content.encode()) <= robots.WECOM_MAX_BYTES and content.endswith("装")


def test_robot_replies_are_read_by_their_own_codes() -> None:
    assert robots.refusal({"errcode": 0, "errmsg": "ok"}) is None
    assert robots.refusal({"code": 0, "msg": "success"}) is None
    assert robots.refusal({"StatusCode": 0, "StatusMessage": "success"}) is None
    assert robots.refusal({"errcode": 310000, "errmsg": "sign not match"}) == "errcode 310000: sign not match"
    assert robots.refusal({"code": 9499, "msg": "Bad Request"}) == "code 9499: Bad Request"
    assert robots.refusal([]) == "the reply is not a JSON object"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=9), inner, max_size=3),
                    max_leaves=10)


@given(JSON)
def test_any_reply_is_read_without_failing(reply: Any) -> None:
    verdict = robots.refusal(reply)
    assert verdict is None or isinstance(verdict, str)
    if verdict is None:
        assert isinstance(reply, dict) and 0 in (reply.get("errcode"), reply.get("code"), reply.get("StatusCode"))


@given(st.text(max_size=60))
def test_an_email_address_is_one_bare_address_or_refused(text: str) -> None:
    try:
        found = mail.address(text)
    except ValueError:
        return
    assert found == text.strip() and "@" in found and not any(c in found for c in "\r\n\0,;<>")
    message = EmailMessage(policy=email_policy)
    message["To"] = found  # the header takes it as one address
    assert [a.addr_spec for a in message["To"].addresses] == [found]


@given(st.sampled_from(sorted(robots.ROBOTS)), st.text(max_size=80), st.booleans())
def test_any_robot_url_is_taken_or_refused_in_words(channel: str, url: str, any_host: bool) -> None:
    """A robot URL as given to the API: vetted or refused with UnsafeURL, never another error."""
    try:
        outbox.vet_robot_url(channel, url, Settings(notify_any_host=any_host))
    except UnsafeURL as exc:
        assert str(exc)
    else:
        assert url.startswith("https://") or any_host


def test_a_robot_url_off_the_vendors_hosts_is_refused() -> None:
    strict = Settings()
    for channel, url in (("wecom", "https://qyapi.weixin.qq.com.example.net/cgi-bin/webhook/send?key=k"),
                         ("dingtalk", "http://oapi.dingtalk.com/robot/send?access_token=t"),
                         ("feishu", "https://[::1/open-apis/bot/v2/hook/x")):
        with pytest.raises(UnsafeURL, match="robot's URL is https://"):
            outbox.vet_robot_url(channel, url, strict)


def test_email_addresses() -> None:
    assert mail.address("ops@example.com") == "ops@example.com"
    for bad in ("ops", "ops@localhost", "Ops <ops@example.com>", "a@b.com, c@d.com", "x@example.com\r\nBcc: y@z.com"):
        with pytest.raises(ValueError):
            mail.address(bad)


def test_the_late_notice_in_both_languages() -> None:
    shipment = notices.Facts(eta=datetime(2026, 11, 30, 6, 5, tzinfo=UTC),
                             delivery_to=datetime(2026, 11, 30, 4, 0, tzinfo=UTC), zone="Asia/Shanghai")
    data = {"external_ref": "SO-123", "type": "late", "state": "open", "opened_at": "2026-11-30T05:00:00+00:00"}
    zh = notices.render("exception.opened", data, shipment, "zh-CN", "https://track.example.com/")
    en = notices.render("exception.opened", data, shipment, "en", None)
    assert zh.title == "【运单 SO-123 可能延误】"
    assert zh.lines == ("预计到达 11月30日 14:05 (北京时间)，晚于约定窗口（11月30日 12:00 (北京时间) 前）。",)
    assert zh.link == "https://track.example.com/track/SO-123" and zh.link_text == "查看运单"
    assert en.title == "[Shipment SO-123 may be late]"
    assert en.lines == ("Expected Nov 30, 14:05 (Beijing time), later than the agreed window "
                        "(by Nov 30, 12:00 (Beijing time)).",)
    assert en.link is None
    status = notices.render("shipment.status_changed", {"external_ref": "SO-123", "status": "in_transit",
                                                        "at": "2026-11-30T05:00:00+00:00"}, shipment, "zh-CN", None)
    assert status.title == "【运单 SO-123】运输中" and status.lines == ("运输中：11月30日 13:00 (北京时间)",)


# --- through the API and the outbox ------------------------------------------------------------------------

def test_subscribing_people_channels_checks_each_address(world: World, client: TestClient) -> None:
    bad = [({"channel": "dingtalk", "url": "http://127.0.0.1:9/robot/send?access_token=t"}, "secret"),
           ({"channel": "wecom", "url": "http://127.0.0.1:9/send?key=k", "secret": "x"}, "secret"),
           ({"channel": "email"}, "email"),
           ({"channel": "email", "email": "ops@example.com", "url": "http://127.0.0.1:9/"}, "email"),
           ({"channel": "email", "email": "Ops <ops@example.com>"}, "email"),
           ({"channel": "feishu"}, "url"),
           ({"channel": "fax", "url": "http://127.0.0.1:9/"}, "channel")]
    for body, word in bad:
        answer = subscribe(world, client, lang="en", **body)
        assert answer.status_code == 422 and word in answer.text, (body, answer.text)
    strict = Settings(database_url=world.db_url, webhook_allow_private=True)  # a robot's vendor hosts only
    with TestClient(create_app(strict)) as vendor_only:
        answer = subscribe(world, vendor_only, channel="wecom", url="http://127.0.0.1:9/cgi-bin/webhook/send?key=k",
                           lang="en")
        assert answer.status_code == 422 and "https://qyapi.weixin.qq.com/" in answer.text
        answer = subscribe(world, vendor_only, channel="feishu", url="https://open.feishu.cn.example.net/open-apis/"
                                                                      "bot/v2/hook/x", secret="s", lang="en")
        assert answer.status_code == 422 and "https://open.larksuite.com/" in answer.text


def test_a_robots_key_and_secret_are_never_shown_again(world: World, client: TestClient) -> None:
    made = subscribe(world, client, channel="dingtalk", language="en", secret=DINGTALK_SECRET,
                     url="http://127.0.0.1:9/robot/send?access_token=ding-token-1")
    assert made.status_code == 201, made.text
    assert made.json()["secret"] is None and made.json()["url"] == "http://127.0.0.1:9/robot/send?access_token=***"
    feishu = subscribe(world, client, channel="feishu", secret=FEISHU_SECRET,
                       url="http://127.0.0.1:9/open-apis/bot/v2/hook/feishu-token-1").json()
    assert feishu["url"] == "http://127.0.0.1:9/open-apis/bot/v2/hook/***"
    email = subscribe(world, client, channel="email", email="ops@example.com").json()
    assert (email["url"], email["email"], email["language"], email["secret"]) == (None, "ops@example.com", None, None)
    listed = world.call(client, "GET", "/v1/webhooks", "acme").text
    for credential in (DINGTALK_SECRET, FEISHU_SECRET, "ding-token-1", "feishu-token-1"):
        assert credential not in listed and credential not in made.text
    assert [s["channel"] for s in json.loads(listed)["webhooks"]] == ["dingtalk", "feishu", "email"]
    # another customer sees none of them and cannot delete them
    assert world.call(client, "GET", "/v1/webhooks", "globex").json()["webhooks"] == []
    assert world.call(client, "DELETE", f"/v1/webhooks/{email['id']}", "globex").status_code == 404
    assert world.call(client, "DELETE", f"/v1/webhooks/{email['id']}", "acme").status_code == 204


@pytest.mark.parametrize("robot", [("wecom", None), ("dingtalk", DINGTALK_SECRET), ("feishu", FEISHU_SECRET)],
                         indirect=True, ids=["wecom", "dingtalk", "feishu"])
def test_each_robot_gets_a_message_it_takes_in_the_subscribers_language(world: World, client: TestClient,
                                                                         settings: Settings, robot: Robot) -> None:
    secret = {"secret": robot.secret} if robot.secret else {}
    assert subscribe(world, client, channel=robot.channel, url=robot.url, language="en", **secret).status_code == 201
    assert subscribe(world, client, channel=robot.channel, url=robot.url, **secret).status_code == 201  # acme: zh-CN
    misload(world)
    send_all(settings)
    assert [state for state, *_ in deliveries(world)] == ["delivered", "delivered"]
    taken = robot.accepted()
    assert len(taken) == 2 and all(r["signature"] is None for r in taken)
    assert all(r["content_type"].startswith("application/json") for r in taken)
    texts = [json.dumps(r["body"], ensure_ascii=False) for r in taken]
    assert sum("loaded on the wrong truck" in t for t in texts) == 1 and sum("装错车" in t for t in texts) == 1
    assert all("https://track.example.com/track/SO-A1" in t for t in texts)
    if robot.channel == "dingtalk":
        assert all(r["query"]["access_token"] == ["ding-token-1"] for r in taken)
        assert {r["body"]["msgtype"] for r in taken} == {"markdown"}


def test_a_robots_refusal_answered_with_http_200_is_retried_and_sent_once(world: World, client: TestClient,
                                                                          settings: Settings) -> None:
    robot = Robot("wecom")
    try:
        subscribe(world, client, channel="wecom", url=robot.url)
        robot.answers.append((200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
        misload(world)
        sender = outbox.Sender(settings, delays=(0.0, 0.0))
        with psycopg.connect(world.db_url, autocommit=True) as conn:
            assert sender.send_due(conn) == 1
            assert deliveries(world) == [("pending", 1, "errcode 45009: api freq out of limit")]
            assert sender.send_due(conn) == 1
            assert sender.send_due(conn) == 0
        sender.close()
        assert [state for state, *_ in deliveries(world)] == ["delivered"]
        assert len(robot.requests) == 2 and len(robot.accepted()) == 1
    finally:
        robot.close()


def test_a_wrong_signing_secret_is_a_failure_that_names_no_secret(world: World, client: TestClient,
                                                                  settings: Settings,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    robot = Robot("dingtalk", DINGTALK_SECRET)
    try:
        subscribe(world, client, channel="dingtalk", url=robot.url, secret="SECwrong-secret-given")
        misload(world)
        with caplog.at_level(logging.INFO):
            send_all(settings, rounds=2)
        [(state, attempts, error)] = deliveries(world)
        assert (state, attempts, error) == ("pending", 2, "errcode 310000: sign not match")
        listed = world.call(client, "GET", "/v1/webhooks/deliveries", "acme").text
        for credential in ("SECwrong-secret-given", "ding-token-1"):
            assert credential not in caplog.text and credential not in listed
    finally:
        robot.close()


def test_an_email_over_starttls_with_text_and_html(world: World, client: TestClient, settings: Settings,
                                                   mailbox: Mailbox) -> None:
    subscribe(world, client, channel="email", email="ops@example.com")
    subscribe(world, client, channel="email", email="shipper@example.com", language="en")
    mailbox.answers.append("451 4.3.0 try again later")
    misload(world)
    send_all(settings)
    assert [state for state, *_ in deliveries(world)] == ["delivered", "delivered"] and mailbox.refused == 1
    by_recipient = {to[0]: (message, tls) for message, to, tls in mailbox.messages}
    assert sorted(by_recipient) == ["ops@example.com", "shipper@example.com"] and len(mailbox.messages) == 2
    zh, tls = by_recipient["ops@example.com"]
    assert tls and zh["Subject"] == "【运单 SO-A1 装错车】" and zh["From"] == "notify@example.com"
    assert zh.get_content_type() == "multipart/alternative"
    plain, html = zh.get_body(("plain",)).get_content(), zh.get_body(("html",)).get_content()
    assert "有货物装上了计划以外的车辆" in plain and "查看运单: https://track.example.com/track/SO-A1" in plain
    assert '<a href="https://track.example.com/track/SO-A1">查看运单</a>' in html
    en, _ = by_recipient["shipper@example.com"]
    assert en["Subject"] == "[Shipment SO-A1 loaded on the wrong truck]" and en["Content-Language"] == "en"
    with psycopg.connect(world.db_url) as conn:
        ids = {f"<{w}@cargotrace>" for (w,) in conn.execute("SELECT webhook_id FROM webhook_deliveries")}
    assert {zh["Message-ID"], en["Message-ID"]} == ids


def test_email_without_a_relay_waits_in_the_outbox(world: World, client: TestClient) -> None:
    subscribe(world, client, channel="email", email="ops@example.com")
    misload(world)
    send_all(Settings(database_url=world.db_url), rounds=1)
    [(state, attempts, error)] = deliveries(world)
    assert (state, attempts) == ("pending", 1) and "CARGOTRACE_SMTP_HOST" in (error or "")
