"""The deployment files cannot be run here (no container engine), so they are checked against the
code: every command they run is one the CLI accepts, every setting they set is one the settings
object knows, every configuration file they mount exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from common.settings import Settings
from firmware_configs import validate_file
from firmware_configs.broker_credentials import acl_problems
from launcher.cli import build_parser

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
# Secrets the operator creates on the host; never in the repository.
OPERATOR_CREATED = {"./mosquitto/cargotrace.passwd", "./mosquitto/certs", "./secrets/db_password",
                    "./secrets/sim_gateway_password"}


def _env(service: dict) -> dict[str, str]:
    env = {}
    for file in service.get("env_file", []):
        for line in (DEPLOY / file).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, _, value = line.partition("=")
                env[key] = value
    env.update(service.get("environment", {}))
    return env


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if s.get("command", [""])[0] == "cargotrace"])
def test_every_cargotrace_command_is_accepted_by_the_cli(name: str) -> None:
    args = build_parser().parse_args(SERVICES[name]["command"][1:])  # exits on an unknown flag
    assert callable(args.func)


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if "env_file" in s or "environment" in s])
def test_every_setting_is_one_the_settings_object_knows(name: str) -> None:
    known = {f"CARGOTRACE_{field.upper()}" for field in Settings.model_fields}
    ours = {key for key in _env(SERVICES[name]) if key.startswith("CARGOTRACE_")}
    assert ours <= known, ours - known


def test_every_mounted_configuration_file_exists() -> None:
    sources = {v.split(":")[0] for s in SERVICES.values() for v in s.get("volumes", []) if v.startswith("./")}
    sources |= {s["file"] for s in COMPOSE.get("secrets", {}).values()}
    assert sources - OPERATOR_CREATED, "no configuration files mounted?"
    for source in sources - OPERATOR_CREATED:
        assert (DEPLOY / source).exists(), source
    assert (DEPLOY / "Dockerfile").exists()


def test_the_gateway_unit_runs_a_valid_profile_with_a_command_the_cli_accepts() -> None:
    unit = (DEPLOY / "systemd" / "cargotrace-gateway@.service").read_text()
    command = shlex.split(re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE).group(1))
    assert command[0].endswith("/cargotrace")
    profile = Path(__file__).resolve().parent.parent / "firmware_configs" / "profiles" / "dock-wh-sh1.yaml"
    args = build_parser().parse_args([a.replace("/etc/cargotrace/%i.yaml", str(profile)) for a in command[1:]])
    assert validate_file(args.config) == []


def test_the_broker_configuration_keeps_the_no_loss_settings() -> None:
    settings = dict(line.split(None, 1) for line in (DEPLOY / "mosquitto" / "cargotrace.d" / "no-loss.conf")
                    .read_text().splitlines() if line.strip() and not line.startswith("#"))
    assert settings["max_queued_messages"] == "0" and settings["persistence"] == "true"
    assert int(settings["max_inflight_messages"]) >= 1000
    main_conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in main_conf and "acl_file" in main_conf


def _commands(*prefix: str) -> dict[str, list[str]]:
    return {n: s["command"] for n, s in SERVICES.items() if s.get("command", [])[:len(prefix)] == list(prefix)}


def test_ingest_runs_as_one_worker_with_a_plain_subscription_under_its_own_broker_user() -> None:
    """Mosquitto 2.0 loses a shared group's messages across a restart; client ids are user names, so a
    second worker would need a user of its own (and the ACL a section for it)."""
    (worker,) = [_env(SERVICES[n]) for n in _commands("cargotrace", "ingest") if "profiles" not in SERVICES[n]]
    assert "CARGOTRACE_INGEST_SHARED_GROUP" not in worker
    user = urlparse(worker["CARGOTRACE_MQTT_URL"]).username
    assert f"user {user}\ntopic read cargotrace/v1/#" in (DEPLOY / "mosquitto" / "cargotrace.acl").read_text()
    identity = (DEPLOY / "mosquitto" / "cargotrace.d" / "identity.conf").read_text()
    assert re.search(r"^use_username_as_clientid true$", identity, re.M)
    assert "include_dir /etc/mosquitto/cargotrace.d" in (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()


def test_api_replicas_sit_behind_the_proxy_on_the_port_they_serve() -> None:
    (name, command), = _commands("cargotrace", "api").items()
    assert SERVICES[name]["deploy"]["replicas"] >= 2
    port = build_parser().parse_args(command[1:]).port
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert re.search(rf"server {name}:{port};", nginx) and "proxy_pass http://cargotrace_api;" in nginx
    assert name in SERVICES["proxy"]["depends_on"]


def test_every_long_running_process_serves_the_health_its_healthcheck_asks() -> None:
    for name, command in _commands("cargotrace").items():
        if command[1] in ("db", "keys", "config", "gateway", "broker"):  # one-shot commands
            continue
        args = build_parser().parse_args(command[1:])
        env = _env(SERVICES[name])
        listen = getattr(args, "metrics_listen", None) or next(
            (v for k, v in env.items() if k.endswith("_METRICS_LISTEN")), None)
        assert listen, f"{name} serves no /metrics"
        settings_key = {"ingest": "INGEST", "crm": "CRM", "api": "API"}.get(command[1])
        assert settings_key is None or f"CARGOTRACE_{settings_key}_METRICS_LISTEN" in env, name
        probe = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert f":{listen.rsplit(':', 1)[1]}/healthz" in probe, name


def test_the_simulated_gateway_is_a_gateway_the_acl_confines() -> None:
    (name, command), = _commands("cargotrace", "simulate").items()
    args = build_parser().parse_args(command[1:])
    assert acl_problems((DEPLOY / "mosquitto" / "cargotrace.acl").read_text(), args.gateway_id) == []
    secret = SERVICES[name]["secrets"][0]
    assert args.password_file == f"/run/secrets/{secret}" and secret in COMPOSE["secrets"]


CLUSTER = {name: s for name, s in SERVICES.items() if "cluster" in s.get("profiles", [])}
NODES = {name: s for name, s in CLUSTER.items() if s["image"].startswith("nats:")}


def test_the_cluster_profile_runs_three_nats_nodes_on_the_shipped_file_with_every_value_it_asks() -> None:
    conf = (DEPLOY / "nats" / "cargotrace.conf").read_text()
    asked = set(re.findall(r"\$(NATS_[A-Z0-9_]+)", conf))
    assert len(NODES) == 3 and asked
    for service in NODES.values():
        assert "./nats/cargotrace.conf:/etc/nats/cargotrace.conf:ro" in service["volumes"]
        assert service["command"] == ["-c", "/etc/nats/cargotrace.conf"]
        assert set(service["environment"]) == asked
        routes = {v for k, v in service["environment"].items() if k.startswith("NATS_ROUTE_")}
        assert routes == {f"nats-route://{name}:6222" for name in NODES}
    assert len({s["environment"]["NATS_NAME"] for s in NODES.values()}) == 3
    assert re.search(r"^\s*stream_replicas: 3$", conf, re.M)


def test_cluster_ingest_workers_start_after_broker_init_and_name_every_node() -> None:
    (init,) = [n for n, s in CLUSTER.items() if s.get("command") == ["cargotrace", "broker", "init"]]
    (workers,) = [n for n, s in CLUSTER.items() if s.get("command") == ["cargotrace", "ingest"]]
    assert CLUSTER[workers]["depends_on"][init] == {"condition": "service_completed_successfully"}
    assert CLUSTER[workers]["deploy"]["replicas"] >= 2
    urls = {_env(CLUSTER[n])["CARGOTRACE_BROKER_URL"] for n in (init, workers)}
    assert urls == {",".join(f"nats://{name}:4222" for name in NODES)}
    assert Settings(broker_url=urls.pop()).broker_url
