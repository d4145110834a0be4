"""Tenant isolation you can prove: the database filters, not only the API's queries."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from common.settings import Settings
from tests.api_world import World
from tests.conftest import ADMIN_PG_URL
from tracking_api.app import create_app
from tracking_api.deps import API_ROLE

CUSTOMER_TABLES = ("customers", "demands", "demand_items", "demand_history", "shipment_events", "exceptions",
                   "feedback", "webhook_subscriptions", "webhook_deliveries")


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=world.db_url, api_pool_size=1))) as c:
        yield c


def as_api(conn: psycopg.Connection, role: str | None = None, customer: str | None = None) -> None:
    conn.execute(f"SET ROLE {API_ROLE}")
    if role:
        conn.execute("SELECT set_config('cargotrace.role', %s, true), set_config('cargotrace.customer_id', %s, true)",
                     (role, customer or ""))


def test_the_api_role_neither_owns_the_tables_nor_bypasses_security(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        assert conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s",
                            (API_ROLE,)).fetchone() == (False,)
        rows = conn.execute("SELECT relname, relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) "
                            "FROM pg_class WHERE relname = ANY(%s)", (list(CUSTOMER_TABLES),)).fetchall()
    assert {r[0] for r in rows} == set(CUSTOMER_TABLES)
    assert all(r[1] and r[2] and r[3] != API_ROLE for r in rows)


@pytest.mark.parametrize("table", CUSTOMER_TABLES)
def test_a_transaction_with_no_tenant_sees_no_rows(world: World, table: str) -> None:
    with psycopg.connect(world.db_url) as conn:
        conn.execute("INSERT INTO feedback (customer_id, kind, rating) VALUES ('acme', 'rating', 5)")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM customers").fetchone()[0] == 2  # the owner sees everything
        as_api(conn)
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0


def test_a_forgotten_where_cannot_leak(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        as_api(conn, "customer", "acme")
        assert [r[0] for r in conn.execute("SELECT external_ref FROM demands")] == ["SO-A1"]
        assert {r[0] for r in conn.execute("SELECT epc_uri FROM demand_items")} == {world.epc["acme"]}
        assert [r[0] for r in conn.execute("SELECT id FROM exceptions")] == [world.exception_ids["acme"]]
        # and writes cannot reach another tenant's rows either
        assert conn.execute("UPDATE demands SET rush = true WHERE external_ref = 'SO-G1'").rowcount == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO feedback (customer_id, kind, rating) VALUES ('globex', 'rating', 1)")


def test_a_customer_tenant_is_not_staff_whatever_it_claims(world: World) -> None:
    with psycopg.connect(world.db_url) as conn:
        as_api(conn, "customer", "")  # a customer with no id sees nothing rather than everything
        assert conn.execute("SELECT count(*) FROM demands").fetchone()[0] == 0
        conn.rollback()
        as_api(conn, "dispatcher")
        assert conn.execute("SELECT count(*) FROM demands").fetchone()[0] == 2


def test_a_pooled_connection_never_carries_a_tenant_into_the_next_request(world: World, client: TestClient) -> None:
    assert world.call(client, "GET", "/v1/shipments/SO-A1", "acme").status_code == 200
    with client.app.state.pool.connection() as conn:  # the pool's only connection, just used for acme
        assert conn.execute("SELECT current_user, current_setting('cargotrace.customer_id', true), "
                            "(SELECT count(*) FROM demands)").fetchone() in ((API_ROLE, "", 0), (API_ROLE, None, 0))


# Path parameter → the value naming globex's resource (or one of staff-only scope).
OTHERS = {"external_ref": "SO-G1", "exception_id": "{globex_exception}", "vehicle_id": "TRK-G",
          "customer_id": "globex", "id": "{globex_exception}", "delivery_id": "1", "subscription_id": "1",
          "site_id": "wh-sh1", "door_id": "door-03", "kpi": "fulfilment", "gateway_id": "gw-TRK-G"}
MISSING = {"external_ref": "SO-NOPE", "exception_id": "999999", "vehicle_id": "TRK-NOPE", "customer_id": "nope",
           "id": "999999", "delivery_id": "999999", "subscription_id": "999999", "site_id": "nope",
           "door_id": "nope", "kpi": "fulfilment", "gateway_id": "nope"}
PUBLIC_BY_TOKEN = ("/v1/shared/",)  # the token is the credential: whoever holds it may read
# A valid body where the route needs one: an invalid one would be refused before the id is looked at.
BODIES = {("POST", "/v1/shipments/{external_ref}/feedback"): {"kind": "rating", "rating": 5},
          ("PUT", "/v1/docks/{site_id}/{door_id}/assignment"): {"vehicle_id": "TRK-G"}}


def id_routes() -> list[tuple[str, str]]:
    paths = create_app(Settings(database_url="postgresql://unused")).openapi()["paths"]
    return sorted((method.upper(), path) for path, methods in paths.items()
                  if "{" in path and not path.startswith(PUBLIC_BY_TOKEN) for method in methods)


def fill(path: str, values: dict[str, str], world: World) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in values, f"add a value for the path parameter `{name}` to this test"
        return values[name].format(globex_exception=world.exception_ids["globex"])
    return re.sub(r"{(\w+)}", value, path)


@pytest.mark.parametrize(("method", "path"), id_routes())
def test_every_endpoint_with_another_customers_ids_answers_as_if_they_did_not_exist(
        world: World, client: TestClient, method: str, path: str) -> None:
    body, params = BODIES.get((method, path), {}), {"from": "2026-01-01T00:00Z", "to": "2026-01-02T00:00Z"}
    theirs = world.call(client, method, fill(path, OTHERS, world), "acme", json=body, params=params)
    missing = world.call(client, method, fill(path, MISSING, world), "acme", json=body, params=params)
    assert theirs.status_code in (403, 404), theirs.text  # 403 only where the role may not use the route at all
    assert (theirs.status_code, theirs.json()["title"]) == (missing.status_code, missing.json()["title"])
    assert "globex" not in theirs.text.lower() and "SO-G1" not in theirs.text


@pytest.mark.parametrize(("key", "expected"), [(None, 401), ("acme", 403), ("crm", 403), ("dispatcher", 200)])
def test_roles_on_dispatcher_routes(world: World, client: TestClient, key: str | None, expected: int) -> None:
    for path in ("/v1/exceptions", "/v1/vehicles", f"/v1/exceptions/{world.exception_ids['acme']}"):
        assert world.call(client, "GET", path, key).status_code == expected


def test_rate_limits_hold_per_key(world: World) -> None:
    with TestClient(create_app(Settings(database_url=world.db_url, api_rate_limit_per_minute=5))) as client:
        codes = [world.call(client, "GET", "/v1/shipments/SO-A1", "acme").status_code for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        limited = world.call(client, "GET", "/v1/shipments/SO-A1", "acme")
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.headers["content-type"] == "application/problem+json"
        assert world.call(client, "GET", "/v1/shipments/SO-G1", "globex").status_code == 200  # another key's budget


@pytest.fixture
def login_role(world: World) -> Iterator[str]:
    """A login role of the API's own, as production runs it: a member of cargotrace_api, nothing more."""
    name = f"ct_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN IN ROLE {API_ROLE}")
    yield name
    with psycopg.connect(world.db_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE {name}")


def test_the_api_works_under_its_own_login_role(world: World, login_role: str) -> None:
    api_url = world.db_url.replace("postgres@", f"{login_role}@", 1)
    with TestClient(create_app(Settings(database_url=world.db_url, api_database_url=api_url))) as client:
        assert world.call(client, "GET", "/v1/shipments/SO-A1", "acme").json()["external_ref"] == "SO-A1"
        assert world.call(client, "GET", "/v1/shipments/SO-G1", "acme").status_code == 404
        assert len(world.call(client, "GET", "/v1/exceptions", "dispatcher").json()["exceptions"]) == 2
        with client.app.state.pool.connection() as conn:
            assert conn.execute("SELECT session_user, (SELECT count(*) FROM demands)").fetchone() == (login_role, 0)


@pytest.fixture
def replica_url(world: World) -> Iterator[str]:
    """A stand-in for a read replica: a copy of the database taken now, which later writes do not reach."""
    name = f"ct_replica_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{world.db_url.rsplit("/", 1)[1]}"')
    yield world.db_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(ADMIN_PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_reads_go_to_the_replica_and_writes_to_the_primary(world: World, replica_url: str) -> None:
    with psycopg.connect(replica_url) as conn:  # the replica says something the primary does not
        conn.execute("UPDATE demands SET status = 'in_transit' WHERE external_ref = 'SO-A1'")
    settings = Settings(database_url=world.db_url, read_database_url=replica_url)
    with TestClient(create_app(settings)) as client:
        assert world.call(client, "GET", "/v1/shipments/SO-A1", "acme").json()["status"] == "in_transit"
        acknowledged = world.call(client, "POST", f"/v1/exceptions/{world.exception_ids['acme']}/acknowledge",
                                  "dispatcher")
        assert acknowledged.json()["state"] == "acknowledged"  # answered from the primary it wrote to
        listed = world.call(client, "GET", "/v1/exceptions?state=acknowledged", "dispatcher").json()
        assert listed["exceptions"] == []  # the replica has not seen that write
    with psycopg.connect(world.db_url) as conn:
        assert conn.execute("SELECT status FROM demands WHERE external_ref = 'SO-A1'").fetchone() == ("pending",)
