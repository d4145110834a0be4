"""Master data the CRM link joins against: customers, sites with their doors, vehicles."""

from __future__ import annotations

import json

import psycopg


def upsert_customer(conn: psycopg.Connection, customer_id: str, name: str, service_level: str = "standard",
                    contact: dict | None = None) -> None:
    conn.execute("INSERT INTO customers (id, name, service_level, contact) VALUES (%s, %s, %s, %s) "
                 "ON CONFLICT (id) DO UPDATE SET name = excluded.name, service_level = excluded.service_level, "
                 "contact = excluded.contact", (customer_id, name, service_level, json.dumps(contact or {})))


def upsert_site(conn: psycopg.Connection, site_id: str, name: str, lat: float, lon: float, radius_m: float = 300.0,
                doors: list[str] | None = None, gln: str | None = None) -> None:
    conn.execute("INSERT INTO sites (id, name, lat, lon, radius_m, gln) VALUES (%s, %s, %s, %s, %s, %s) "
                 "ON CONFLICT (id) DO UPDATE SET name = excluded.name, lat = excluded.lat, lon = excluded.lon, "
                 "radius_m = excluded.radius_m, gln = excluded.gln", (site_id, name, lat, lon, radius_m, gln))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO read_points (id, site_id, door_id) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                        [(f"{site_id}/{door}", site_id, door) for door in doors or []])


def upsert_vehicle(conn: psycopg.Connection, vehicle_id: str, name: str = "", gateway_id: str | None = None,
                   tag_epc_uri: str | None = None) -> None:
    conn.execute("INSERT INTO vehicles (id, name, gateway_id, tag_epc_uri) VALUES (%s, %s, %s, %s) "
                 "ON CONFLICT (id) DO UPDATE SET name = excluded.name, gateway_id = excluded.gateway_id, "
                 "tag_epc_uri = excluded.tag_epc_uri", (vehicle_id, name, gateway_id, tag_epc_uri))
