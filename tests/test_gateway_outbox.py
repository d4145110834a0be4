"""The outbox: seq only grows and survives restarts and SIGKILL; batches are bounded; the full policy
keeps cargo."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.outbox import Outbox, Pending


def everything(outbox: Outbox) -> list[Pending]:
    """Every pending event, walking batch after batch with a cursor as the publisher does."""
    out: list[Pending] = []
    while batch := outbox.batch(out[-1].seq if out else 0, 10**6, 10**12):
        out += batch
    return out


def test_seq_keeps_growing_across_reopen_and_is_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path, keep_acked_s=0)
    assert outbox.append_many([("gps", {"n": i}, False) for i in range(5)]) == [1, 2, 3, 4, 5]
    outbox.ack([1, 2, 3, 4, 5])  # empty now
    outbox.close()
    outbox = Outbox(path, keep_acked_s=0)
    assert outbox.append("rfid", {"epc": "AA"}) == 6
    assert [(p.seq, p.event) for p in outbox.batch(0, 10, 10**6)] == [(6, {"seq": 6, "epc": "AA"})]


def test_batches_are_one_kind_in_seq_order_bounded_by_count_and_bytes(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", keep_acked_s=0)
    outbox.append_many([("rfid", {"pad": "x" * 90}, False) for _ in range(10)] + [("gps", {"n": 1}, False)])
    assert [p.seq for p in outbox.batch(0, 4, 10**6)] == [1, 2, 3, 4]
    assert len(outbox.batch(0, 100, 450)) == 4  # 100-byte bodies, plus the seq each one gains
    assert [p.seq for p in outbox.batch(8, 100, 10**6)] == [9, 10]  # stops where the kind changes
    assert [p.kind for p in outbox.batch(10, 100, 10**6)] == ["gps"]
    assert [p.seq for p in outbox.batch(0, 100, 10)] == [1]  # an event larger than the bound still goes
    outbox.ack([2, 3])
    assert [p.seq for p in outbox.batch(0, 4, 10**6)] == [1, 4, 5, 6]
    assert outbox.depth() == 9 and outbox.oldest_age_s() >= 0
    outbox.ack(list(range(1, 12)))
    assert outbox.depth() == 0 and outbox.oldest_age_s() == 0.0


def test_when_full_stationary_fixes_go_first_and_cargo_is_never_refused(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", max_events=1000, keep_acked_s=0)
    outbox.append_many([("gps", {"parked": i}, True) for i in range(900)]
                       + [("gps", {"moving": i}, False) for i in range(100)])
    seqs = outbox.append_many([("rfid", {"case": i}, False) for i in range(150)])
    assert all(seqs) and outbox.thinned == 200  # room made a hundred stationary fixes at a time
    kept = everything(outbox)
    assert sum("moving" in p.event for p in kept) == 100  # moving fixes are not thinned
    outbox.append_many([("gps", {"parked": i}, True) for i in range(950)])  # fill with stationary again
    refused_before = outbox.refused
    outbox.append_many([("rfid", {"case": i}, False) for i in range(2000)])  # more cargo than fits
    assert outbox.depth() > 1000 and outbox.alarm  # the bound gives way to cargo, loudly
    assert outbox.append("gps", {"moving": "late"}) == 0 and outbox.refused == refused_before + 1
    outbox.ack([p.seq for p in everything(outbox) if p.kind == "rfid"])  # the broker took the cargo
    assert outbox.depth() < 1000 and not outbox.alarm


_CHILD = """
import sys
from gateway.outbox import Outbox
outbox = Outbox(sys.argv[1])
while True:
    (seq,) = outbox.append_many([("rfid", {"epc": "3074257BF7194E4000001A85"}, False)])
    print(seq, flush=True)  # printed only once the transaction committed
"""


def test_sigkill_while_appending_loses_no_committed_event(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    Outbox(path, keep_acked_s=0).append("gps", {"first": True})
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    reported = [int(child.stdout.readline()) for _ in range(200)]
    child.kill()  # SIGKILL in the middle of its appends
    child.wait(10)
    reported += [int(line) for line in child.stdout.read().split()]
    outbox = Outbox(path, keep_acked_s=0)
    stored = [p.seq for p in everything(outbox)]
    assert set(reported) <= set(stored) and stored[0] == 1
    assert stored == list(range(1, stored[-1] + 1))  # no holes, nothing torn
    assert outbox.append("rfid", {"epc": "after"}) == stored[-1] + 1


ops = st.lists(st.one_of(st.tuples(st.just("append"), st.sampled_from(["rfid", "gps"]), st.integers(1, 5)),
                         st.tuples(st.just("ack"), st.floats(0, 1), st.integers(0, 5)),
                         st.tuples(st.just("reopen"), st.none(), st.none())), max_size=30)


@settings(max_examples=40, deadline=None)
@given(ops)
def test_the_outbox_behaves_like_an_ordered_map_whatever_happens(steps: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "o.sqlite"
        outbox = Outbox(path, keep_acked_s=0)
        model: dict[int, tuple[str, dict]] = {}
        last_seq = 0
        for op, a, b in steps:
            if op == "append":
                events = [(a, {"i": i}, False) for i in range(b)]
                seqs = outbox.append_many(events)
                assert seqs == sorted(seqs) and seqs[0] > last_seq  # only grows
                last_seq = seqs[-1]
                model.update({s: (a, {"seq": s, "i": i}) for i, s in enumerate(seqs)})
            elif op == "ack":
                chosen = sorted(model)[int(a * len(model)):][:b]
                outbox.ack(chosen)
                for seq in chosen:
                    del model[seq]
            else:
                outbox.close()
                outbox = Outbox(path, keep_acked_s=0)
            stored_all = everything(outbox)
            assert {p.seq: (p.kind, p.event) for p in stored_all} == model
            assert [p.seq for p in stored_all] == sorted(model)
            assert json.dumps([p.event for p in stored_all])  # events stay JSON
        outbox.close()


def test_acknowledged_events_stay_a_while_and_come_back_for_a_resend(tmp_path: Path) -> None:
    """A broker that crashes before saving what it acknowledged gets it again after a reconnect: the
    publisher starts from seq 0, which still reaches events acknowledged less than keep_acked_s ago."""
    outbox = Outbox(tmp_path / "o.sqlite", keep_acked_s=3600)
    outbox.append_many([("rfid", {"n": i}, False) for i in range(3)])
    outbox.ack([1, 2])
    assert outbox.depth() == 1  # waiting for the broker: one
    assert [p.seq for p in outbox.batch(0, 10, 10**6)] == [1, 2, 3]  # after a reconnect: all three again
    assert [p.seq for p in outbox.batch(3, 10, 10**6)] == []
    outbox.close()
    outbox = Outbox(tmp_path / "o.sqlite", keep_acked_s=0)  # their time is up
    outbox.ack([3])
    assert outbox.depth() == 0 and outbox.batch(0, 10, 10**6) == []


def test_an_outbox_from_before_acknowledgements_were_kept_opens(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
                   "body TEXT NOT NULL, stationary INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)")
        db.execute("INSERT INTO events (kind, body, created) VALUES ('rfid', '{\"epc\": \"AA\"}', 0)")
    outbox = Outbox(path)
    assert outbox.depth() == 1 and outbox.append("rfid", {"epc": "BB"}) == 2
