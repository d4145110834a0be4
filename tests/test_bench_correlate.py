"""bench.correlate's workloads do what its numbers claim: every cargo read asks for the vehicle at the
door and finds none (trucks all in the yard), every fix runs the route watch."""

from __future__ import annotations

import psycopg

from bench import correlate
from crm_link.correlate import process_pending


def test_the_observation_workload_loads_cargo_without_accusing_anyone(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        correlate.observations(conn, 400)
        conn.commit()
        process_pending(conn)
        loaded = conn.execute("SELECT count(*) FROM demand_items WHERE loaded_at IS NOT NULL").fetchone()[0]
        assert loaded == 400
        assert conn.execute("SELECT count(*) FROM exceptions").fetchone()[0] == 0


def test_the_fix_workload_gives_every_shipment_an_eta(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        correlate.fixes(conn, 500)
        conn.commit()
        process_pending(conn)
        assert conn.execute("SELECT count(*) FROM route_watch").fetchone()[0] == 100
        assert conn.execute("SELECT count(eta) FROM demands WHERE status = 'in_transit'").fetchone()[0] == 100

