"""Master data the CRM link joins against, in the short form code and tests write it (keyword
arguments); stored through crm_link/master_data.py like the API's and the CLI's records."""

from __future__ import annotations

import psycopg

from crm_link import master_data
from crm_link.master_records import Circle, Customer, Site, Vehicle


def upsert_customer(conn: psycopg.Connection, customer_id: str, name: str, service_level: str = "standard",
                    contact: dict | None = None) -> None:
    master_data.put(conn, "customers", customer_id,
                    Customer(name=name, service_level=service_level, contact=contact or {}))


def upsert_site(conn: psycopg.Connection, site_id: str, name: str, lat: float, lon: float, radius_m: float = 300.0,
                doors: list[str] | None = None, gln: str | None = None) -> None:
    master_data.put(conn, "sites", site_id, Site(name=name, geofence=Circle(lat=lat, lon=lon, radius_m=radius_m),
                                                 doors=doors or [], gln=gln))


def upsert_vehicle(conn: psycopg.Connection, vehicle_id: str, name: str = "", gateway_id: str | None = None,
                   tag_epc_uri: str | None = None) -> None:
    master_data.put(conn, "vehicles", vehicle_id, Vehicle(name=name, gateway_id=gateway_id, tag_epc_uri=tag_epc_uri))
