"""A truck's journey through every process, for the end-to-end tests of each GPS source: a shipment
whose pallets were read out of the warehouse door (loaded), and ingest, the CRM link and a gateway
with the source under test running as real processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

from crm_link.demands import upsert_demand
from tests.helpers import Processes, wait_for
from tests.test_crm_status import ITEMS, demand, observe, status, world

VEHICLE = "TRK-042"  # the shipment's truck in `tests.test_crm_status.world`


@dataclass
class Journey:
    db_url: str
    demand_id: int
    procs: Processes

    def status(self) -> str:
        with psycopg.connect(self.db_url) as conn:
            return status(conn, self.demand_id)

    def wait_for(self, wanted: str, feed: Callable[[], object] | None = None) -> None:
        """Until the shipment is `wanted`, calling `feed` before each look when given."""
        def reached() -> bool:
            if feed is not None:
                feed()
            return self.status() == wanted

        wait_for(reached, timeout=60, interval=0.2 if feed is None else 2.0, what=wanted)

    def history(self) -> tuple[list[str], list[str]]:
        """The shipment's statuses in order, and the vehicles whose positions were stored."""
        with psycopg.connect(self.db_url) as conn:
            statuses = [s for (s,) in conn.execute("SELECT status FROM shipment_events WHERE demand_id = %s "
                                                   "ORDER BY ts", (self.demand_id,))]
            (vehicles,) = conn.execute("SELECT array_agg(DISTINCT vehicle_id) FROM positions").fetchone()
        return statuses, vehicles


@contextmanager
def journey(tmp_path: Path, db_url: str, mqtt_url: str, gateway_id: str, order: str,
            devices: dict[str, Any], loaded: bool = True) -> Iterator[Journey]:
    """`devices`: the gateway profile's device sections (`gps`, `jt808`, `readers`...). The shipment's
    pallets were read out of the door already, unless `loaded` is False (the gateway's readers do it)."""
    with world(db_url) as conn:
        demand_id, _ = upsert_demand(conn, "acme", order, demand())
        conn.commit()
        for uri in ITEMS if loaded else ():
            observe(conn, uri, "wh-sh1/door-03", "out", datetime.now(UTC) - timedelta(minutes=20))
    profile = tmp_path / "truck.yaml"
    devices = dict(devices)
    own = devices.pop("gateway", {})
    profile.write_text(yaml.safe_dump({
        "gateway": {"id": gateway_id, "broker": mqtt_url, "outbox": str(tmp_path / "truck.sqlite"), **own},
        **devices}))
    unique = gateway_id.rsplit("-", 1)[-1]
    procs = Processes({**os.environ, "CARGOTRACE_DATABASE_URL": db_url, "CARGOTRACE_MQTT_URL": mqtt_url,
                       "CARGOTRACE_INGEST_CLIENT_ID": f"ingest-{unique}",
                       "CARGOTRACE_INGEST_SHARED_GROUP": f"g{unique}", "CARGOTRACE_CRM_POLL_SECONDS": "0.5"}, tmp_path)
    trip = Journey(db_url, demand_id, procs)
    try:
        for name, args in {"ingest": ["ingest"], "crm": ["crm", "run"],
                           "truck": ["gateway", "--config", str(profile)]}.items():
            procs.start(name, *args)
        trip.wait_for("loaded" if loaded else "pending")
        yield trip
        procs.check_alive()
    finally:
        procs.stop()
