"""The scenario of issue 17's "done when": a shipper with three subscriptions — a WeCom group robot in
Chinese, a signed DingTalk robot in English, an email in Chinese — has a shipment that becomes late and a
misload on another; the correlator opens both on the real database, the delivery worker sends, and every
receiver gets one message per incident in its subscriber's language, the DingTalk signature valid, even
though each receiver refuses its first message (errcode ≠ 0, HTTP 500, SMTP 451) and gets it again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from common.settings import Settings
from crm_link import outbox
from crm_link.correlate import process_pending
from crm_link.demands import upsert_demand
from crm_link.directory import upsert_vehicle
from tests.helpers import wait_for
from tests.receivers import Mailbox, Robot
from tests.test_crm_route_exceptions import along, fix, in_transit
from tests.test_crm_status import T0, demand, observe, world
from tracking_api.app import create_app
from tracking_api.keys import create_key

SECRET = "SEC5e7f1b0c9d8a7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1"
WRONG_TRUCK_TAG = "urn:epc:id:giai:0614141.7007"
MISLOADED_PALLET = "urn:epc:id:sgtin:0614141.812345.77"
FAST = (0.05, 0.05, 0.05)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with world(db_url) as conn:
        yield conn


def test_a_late_shipment_and_a_misload_reach_wecom_dingtalk_and_email_once_each_in_their_language(
        conn: psycopg.Connection, db_url: str, tmp_path: Path) -> None:
    wecom, dingtalk, mailbox = Robot("wecom"), Robot("dingtalk", SECRET), Mailbox(tmp_path)
    settings = Settings(database_url=db_url, webhook_allow_private=True, notify_any_host=True,
                        webhook_poll_seconds=0.05, public_url="https://track.example.com",
                        smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_user=Mailbox.USER,
                        smtp_password=Mailbox.PASSWORD, smtp_ca_file=str(mailbox.cert_file))
    stop = threading.Event()
    worker = threading.Thread(target=outbox.run, args=(settings, stop, FAST))
    try:
        key = {"Authorization": f"Bearer {create_key(conn, 'customer', 'acme')}"}
        conn.commit()
        with TestClient(create_app(settings)) as api:
            for body in ({"channel": "wecom", "url": wecom.url, "language": "zh-CN"},
                         {"channel": "dingtalk", "url": dingtalk.url, "secret": SECRET, "language": "en"},
                         {"channel": "email", "email": "dispatch@shipper.example.com", "language": "zh-CN"}):
                made = api.post("/v1/webhooks", headers=key, json={**body, "event_types": ["exception.opened"]})
                assert made.status_code == 201, made.text
        # each receiver turns its first message away
        wecom.answers.append((200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
        dingtalk.answers.append((500, {}))
        mailbox.answers.append("451 4.3.0 try again later")

        # a shipment due at 08:05 leaves at 08:05 and crawls: its ETA is past the window → late
        late_id = in_transit(conn, delivery_to=(T0 + timedelta(minutes=5)).isoformat())
        fix(conn, along(0.15), T0 + timedelta(minutes=6), speed_kmh=10)
        # a pallet of another shipment read out at a door beside another truck → misload
        upsert_vehicle(conn, "TRK-007", tag_epc_uri=WRONG_TRUCK_TAG)
        misloaded_id, _ = upsert_demand(conn, "acme", "SO-MIS", demand(items=[{"epc_uri": MISLOADED_PALLET}]))
        conn.commit()
        observe(conn, WRONG_TRUCK_TAG, "wh-sh1/door-04", None, T0 + timedelta(hours=2))
        observe(conn, MISLOADED_PALLET, "wh-sh1/door-04", "out", T0 + timedelta(hours=2, minutes=1))
        process_pending(conn)
        conn.commit()
        opened = conn.execute("SELECT demand_id, type FROM exceptions ORDER BY id").fetchall()
        assert opened == [(late_id, "late"), (misloaded_id, "misload")]
        late_ref = conn.execute("SELECT external_ref FROM demands WHERE id = %s", (late_id,)).fetchone()[0]

        worker.start()  # the delivery worker, as `cargotrace crm run` runs it
        wait_for(lambda: conn.execute("SELECT count(*) FILTER (WHERE state = 'delivered'), count(*) "
                                      "FROM webhook_deliveries").fetchone() == (6, 6), what="six deliveries")
        stop.set()
        worker.join()

        # WeCom, in Chinese: one message per incident, after one refused
        assert len(wecom.requests) == 3 and [r["reply"]["errcode"] for r in wecom.requests].count(45009) == 1
        zh = sorted(json.dumps(r["body"], ensure_ascii=False) for r in wecom.accepted())
        assert len(zh) == 2 and all('"msgtype": "markdown"' in m for m in zh)
        assert sum(f"【运单 {late_ref} 可能延误】" in m and "北京时间" in m and "晚于约定窗口" in m for m in zh) == 1
        assert sum("【运单 SO-MIS 装错车】" in m for m in zh) == 1

        # DingTalk, in English, signed with the robot's secret: each incident once, after an HTTP 500
        assert [r["status"] for r in dingtalk.requests].count(500) == 1 and len(dingtalk.requests) == 3
        taken = dingtalk.accepted()
        assert len(taken) == 2 and all(r["signature"] is None for r in dingtalk.requests)
        en = [r["body"]["markdown"]["text"] for r in taken]
        assert sum(f"[Shipment {late_ref} may be late]" in m and "Beijing time" in m for m in en) == 1
        assert sum("[Shipment SO-MIS loaded on the wrong truck]" in m for m in en) == 1
        assert not any("运单" in m for m in en)

        # email, in Chinese, over STARTTLS: each incident once, after a 451
        assert mailbox.refused == 1 and len(mailbox.messages) == 2
        subjects = sorted(message["Subject"] for message, _, _ in mailbox.messages)
        assert subjects == sorted([f"【运单 {late_ref} 可能延误】", "【运单 SO-MIS 装错车】"])
        assert all(tls and to == ["dispatch@shipper.example.com"] for _, to, tls in mailbox.messages)

        # nothing more is due: the worker would send nothing twice
        sender = outbox.Sender(settings, FAST)
        with psycopg.connect(db_url, autocommit=True) as again:
            assert sender.send_due(again) == 0
        sender.close()
        attempts = sorted(a for (a,) in conn.execute("SELECT attempts FROM webhook_deliveries"))
        assert attempts == [1, 1, 1, 2, 2, 2]  # each channel's first delivery went twice, the rest once
    finally:
        stop.set()
        if worker.is_alive():
            worker.join()
        wecom.close()
        dingtalk.close()
        mailbox.close()
