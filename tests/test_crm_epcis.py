"""EPCIS 2.0 export, validated against GS1's JSON Schema with format checking (no network)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import psycopg
import pytest
from fastapi.testclient import TestClient
from referencing import Registry, Resource

from common.settings import Settings
from tests.api_world import World, build
from tracking_api.app import create_app


def _formats() -> jsonschema.FormatChecker:
    """Draft 7 formats, with a JSON-LD blank node id (`_:name`, as in the standard's own examples) as a URI."""
    checker = jsonschema.FormatChecker()
    plain_uri = checker.checkers["uri"][0]
    checker.checks("uri")(lambda value: not isinstance(value, str) or value.startswith("_:") or plain_uri(value))
    return checker


def _validator(corpora: Path) -> jsonschema.Draft7Validator:
    folder = corpora / "epcis"
    schemas = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    registry = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in schemas if "$id" in s)
    root = json.loads((folder / "EPCIS-JSON-Schema.json").read_text())
    return jsonschema.Draft7Validator(root, registry=registry, format_checker=_formats())


@pytest.fixture(scope="module")
def validator(corpora: Path) -> jsonschema.Draft7Validator:
    return _validator(corpora)


@pytest.fixture
def world(db_url: str) -> World:
    return build(db_url)


@pytest.fixture
def client(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=world.db_url))) as c:
        yield c


def test_the_validator_accepts_the_standard_examples(validator: jsonschema.Draft7Validator, corpora: Path) -> None:
    examples = sorted((corpora / "epcis").glob("Example_*.jsonld"))
    assert len(examples) == 3
    for path in examples:
        validator.validate(json.loads(path.read_text()))


def test_the_validator_rejects_the_invalid_corpus(validator: jsonschema.Draft7Validator, corpora: Path) -> None:
    invalid = sorted((corpora / "epcis" / "openepcis-invalid").glob("*.json"))
    assert len(invalid) == 15
    for path in invalid:
        assert not validator.is_valid(json.loads(path.read_text())), path.name


def _timeline(world: World) -> None:
    """SO-A1 loaded at a door with an SGLN, departed, arrived at a site without a GLN, delivered."""
    with psycopg.connect(world.db_url) as conn:
        conn.execute("UPDATE read_points SET sgln = 'urn:epc:id:sgln:0614141.00001.3' WHERE id = 'wh-sh1/door-03'")
        conn.execute("UPDATE sites SET gln = 'urn:epc:id:sgln:0614141.00001.0' WHERE id = 'wh-sh1'")
        demand = conn.execute("SELECT id FROM demands WHERE external_ref = 'SO-A1'").fetchone()[0]
        for status, minutes, place in (("loading", 0, "wh-sh1/door-03"), ("loaded", 5, "wh-sh1/door-03"),
                                       ("in_transit", 20, None), ("arrived", 90, "dc-pd"),
                                       ("delivered", 100, "dc-pd/door-01")):
            conn.execute("INSERT INTO shipment_events (demand_id, status, ts, biz_step, place) "
                         "VALUES (%s, %s, '2026-03-01T08:00:00+08:00'::timestamptz + %s * interval '1 minute', "
                         "'x', %s)", (demand, status, minutes, place))


def test_export_validates_and_maps_the_timeline(world: World, client: TestClient,
                                                validator: jsonschema.Draft7Validator) -> None:
    _timeline(world)
    r = world.call(client, "GET", "/v1/shipments/SO-A1/epcis", "acme")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/ld+json")
    document = r.json()
    validator.validate(document)
    events = document["epcisBody"]["eventList"]
    assert [e["bizStep"] for e in events] == ["loading", "loading", "departing", "arriving", "receiving"]
    assert all(e["action"] == "OBSERVE" and e["epcList"] == [world.epc["acme"]] for e in events)
    assert events[0]["eventTime"] == "2026-03-01T00:00:00.000Z" and events[0]["eventTimeZoneOffset"] == "+00:00"
    assert events[0]["readPoint"] == {"id": "urn:epc:id:sgln:0614141.00001.3"}
    assert events[0]["bizLocation"] == {"id": "urn:epc:id:sgln:0614141.00001.0"}
    assert events[2]["bizLocation"] == {"id": "urn:epc:id:sgln:0614141.00001.0"}  # departing from the origin
    assert events[3]["bizLocation"] == {"id": "urn:cargotrace:location:dc-pd"}  # no GLN: the fallback
    assert events[4]["readPoint"] == {"id": "urn:cargotrace:location:dc-pd/door-01"}
    assert len({e["eventID"] for e in events}) == 5


def test_other_customers_shipment_is_404(world: World, client: TestClient) -> None:
    assert world.call(client, "GET", "/v1/shipments/SO-G1/epcis", "acme").status_code == 404
    assert world.call(client, "GET", "/v1/shipments/SO-G1/epcis?customer_id=acme", "acme").status_code == 404
    assert world.call(client, "GET", "/v1/shipments/SO-G1/epcis?customer_id=globex", "crm").status_code == 200


def test_a_shipment_not_started_is_an_empty_valid_document(world: World, client: TestClient,
                                                           validator: jsonschema.Draft7Validator) -> None:
    document = world.call(client, "GET", "/v1/shipments/SO-G1/epcis", "globex").json()
    validator.validate(document)
    assert document["epcisBody"]["eventList"] == []
