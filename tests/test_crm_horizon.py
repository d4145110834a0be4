"""The correlator reads only what can no longer be overtaken, and nothing else on the cluster stalls it."""

from __future__ import annotations

import psycopg

from crm_link.correlate import CORRELATOR_APP, HISTORY_APP, process_pending
from crm_link.demands import upsert_demand
from tests.conftest import ADMIN_PG_URL
from tests.test_crm_status import ITEMS, T0, demand, observe, status, world


def test_a_long_transaction_in_another_database_does_not_stall_the_status_feed(db_url: str) -> None:
    with world(db_url) as conn, psycopg.connect(ADMIN_PG_URL) as elsewhere:
        demand_id, _ = upsert_demand(conn, "acme", "SO-4001", demand())
        elsewhere.execute("CREATE TEMP TABLE busy (n int)")
        elsewhere.execute("INSERT INTO busy VALUES (1)")  # holds an xid, left open
        observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)
        assert process_pending(conn) == 1
        assert status(conn, demand_id) == "loading"
        elsewhere.rollback()


def test_rows_committed_after_an_open_writer_wait_for_it(db_url: str) -> None:
    with world(db_url) as conn, psycopg.connect(db_url) as writer:
        demand_id, _ = upsert_demand(conn, "acme", "SO-4002", demand())
        conn.commit()
        writer.execute("INSERT INTO dead_letters (topic, payload, reason) VALUES ('t', 'x', 'r')")  # open writer
        observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)  # committed, but its xid is newer than the writer's
        assert process_pending(conn) == 0  # it could still be overtaken by the writer: not read yet
        writer.commit()
        assert process_pending(conn) == 1
        assert status(conn, demand_id) == "loading"


def test_the_open_transactions_of_other_correlators_and_the_history_keeper_do_not_hold_it_back(db_url: str) -> None:
    """They never write observations or fixes: another process's batch, or a long fold of the speed
    history, is no reason to wait."""
    with world(db_url) as conn, psycopg.connect(db_url, application_name=f"{CORRELATOR_APP} 1") as peer, \
            psycopg.connect(db_url, application_name=f"{HISTORY_APP} 2") as keeper:
        demand_id, _ = upsert_demand(conn, "acme", "SO-4003", demand())
        conn.commit()
        for other in (peer, keeper):  # each holds a transaction id, left open
            other.execute("INSERT INTO consumer_cursors (consumer) VALUES (%s)", (f"x:{other.info.backend_pid}",))
        observe(conn, ITEMS[0], "wh-sh1/door-03", "out", T0)
        assert process_pending(conn) == 1
        assert status(conn, demand_id) == "loading"
