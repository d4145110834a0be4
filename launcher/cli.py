"""The `cargotrace` command: one entry point for every process of the system."""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from common import logs
from common.failures import Failure, exit_code, listening_socket, naming
from common.stopping import stop_on_signals
from launcher import master_commands
from storage.vocabulary import ROLES

if TYPE_CHECKING:
    from common.settings import Settings

# Commands an edge box runs (`pip install 'cargotrace[gateway]'`); the others need the central extra.
EDGE_COMMANDS = ("gateway", "config")
PROJECT = ("common", "device_drivers", "firmware_configs", "gateway", "storage", "ingest", "crm_link", "tracking_api",
           "launcher")


def get_settings() -> Settings:
    from common.settings import get_settings as settings  # pydantic-settings: central only, not on an edge box

    return settings()


def _required(name: str, looks_like: str) -> str:
    url = getattr(get_settings(), name)
    if not url:
        raise Failure(f"CARGOTRACE_{name.upper()} is not set: set it to {looks_like}")
    return url


def _database_url() -> str:
    return _required("database_url", "a PostgreSQL URL, e.g. postgresql://user@host:5432/cargotrace")


def _mqtt_url() -> str:
    return _required("mqtt_url", "the broker's URL, e.g. mqtt://user:password@host:1883")


def cmd_up(args: argparse.Namespace) -> int:
    from launcher.up import up

    return up(get_settings(), demo=args.demo, fresh=args.fresh, pace=args.pace)


def cmd_gateway(args: argparse.Namespace) -> int:
    from gateway.runner import run

    if not args.config:
        sys.exit("error: --config FILE is required to run a gateway")
    run(args.config)
    return 0


def cmd_gateway_check(args: argparse.Namespace) -> int:
    from gateway.check import check

    if not args.config:
        sys.exit("error: --config FILE is required to check a gateway")
    return check(args.config, args.seconds)


def cmd_gateway_provision(args: argparse.Namespace) -> int:
    from pathlib import Path

    from firmware_configs.provision import Request, provision

    database_url = None if args.no_register else _database_url_if_set()
    if args.kind == "fleet" and not database_url:
        raise Failure("a fleet gateway's terminals come from the master data: set CARGOTRACE_DATABASE_URL")
    req = Request(args.id, args.kind, args.broker, site=args.site or "",
                  doors=tuple(d for d in (args.doors or "").split(",") if d), vehicle=args.vehicle or "",
                  region=args.region, terminals=_terminals(database_url) if args.kind == "fleet" else ())
    with ExitStack() as stack:
        if database_url:  # registered in one transaction with the rest: a refusal leaves nothing behind
            stack.enter_context(_registered(database_url, req))
        try:
            done = provision(req, Path(args.password_file), Path(args.acl), Path(args.profile_dir))
        except ValueError as exc:
            sys.exit(f"error: {exc}")
    registered = "registered in the master data" if database_url else (
        "not registered in the master data (CARGOTRACE_DATABASE_URL is not set)" if not args.no_register else "")
    print(f"profile {done.profile} {'written' if done.profile_created else 'kept (exists)'}; "
          f"broker user {args.id} set in {args.password_file} (reload Mosquitto: kill -HUP)"
          f"{'; ' + registered if registered else ''}", file=sys.stderr)
    print("The password follows on stdout, once: put it in the box's password_file (mode 0600).", file=sys.stderr)
    print(done.password)
    return 0


def _database_url_if_set() -> str | None:
    try:
        return get_settings().database_url
    except ModuleNotFoundError:  # an edge box: no central settings, no master data to register in
        return None


def _terminals(database_url: str | None) -> tuple[tuple[str, str], ...]:
    """(telematics id, vehicle) of every vehicle that has one: what a fleet gateway serves."""
    import psycopg

    with psycopg.connect(database_url or "") as conn:
        return tuple(conn.execute("SELECT telematics_id, id FROM vehicles WHERE telematics_id IS NOT NULL "
                                  "ORDER BY id").fetchall())


@contextmanager
def _registered(database_url: str, req: Any) -> Iterator[None]:
    """The gateway in the master data, committed only if what follows succeeds."""
    import psycopg

    from crm_link import master_data
    from crm_link.master_records import Gateway

    record = {"dock": lambda: Gateway(kind="dock", site_id=req.site,
                                      read_points=[f"{req.site}/{door}" for door in req.doors]),
              "truck": lambda: Gateway(kind="vehicle", vehicle_id=req.vehicle),
              "fleet": lambda: Gateway(kind="fleet")}[req.kind]()
    with psycopg.connect(database_url) as conn:
        try:
            master_data.put(conn, "gateways", req.gateway_id, record)
        except master_data.Invalid as exc:
            raise Failure(f"{req.gateway_id}: the master data refuses it: {exc} (add the site, its doors or the "
                          f"vehicle first: cargotrace sites add / cargotrace vehicles add)") from None
        yield
        conn.commit()


def _broker_url() -> str:
    return _required("broker_url", "the NATS cluster's nodes, e.g. nats://nats-1:4222,nats://nats-2:4222,"
                                   "nats://nats-3:4222")


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.worker import run

    _database_url()
    if not get_settings().broker_url:  # the clustered broker instead of MQTT
        _mqtt_url()
    run(get_settings())
    return 0


def cmd_broker_init(args: argparse.Namespace) -> int:
    import asyncio

    from ingest.jetstream import init

    print(asyncio.run(init(_broker_url(), args.replicas, get_settings().ingest_ack_wait_s)))
    return 0


def cmd_crm_run(args: argparse.Namespace) -> int:
    from crm_link.worker import run

    _database_url()
    run(get_settings())
    return 0


def cmd_crm_webhooks(args: argparse.Namespace) -> int:
    from crm_link import outbox

    _database_url()
    stop = threading.Event()
    stop_on_signals(stop)
    outbox.run(get_settings(), stop)
    return 0


def cmd_crm_import(args: argparse.Namespace) -> int:
    from pathlib import Path

    import psycopg

    from crm_link.bulk_import import import_file

    path = Path(args.file)
    fmt = args.format or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    with psycopg.connect(_database_url()) as conn:
        report = import_file(conn, path, fmt, args.customer,
                             lambda n: print(f"\rrecords: {n}", end="", file=sys.stderr, flush=True))
    print(file=sys.stderr)
    for error in report.errors:
        print(error, file=sys.stderr)
    print(f"created {report.created}, updated or unchanged {report.updated_or_unchanged}, "
          f"refused {len(report.errors)}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from tracking_api.app import create_app

    settings = get_settings()
    _database_url()
    host, port = args.host or settings.api_host, args.port or settings.api_port
    if settings.api_metrics_listen:  # checked before the app starts: a failing startup is a traceback
        metrics_host, metrics_port = settings.api_metrics_listen.rsplit(":", 1)
        listening_socket(metrics_host, int(metrics_port), "CARGOTRACE_API_METRICS_LISTEN").close()
    # Bound here, not by uvicorn, which logs a taken port as a bare errno and exits 1.
    sock = listening_socket(host, port, "--port (or CARGOTRACE_API_PORT)")
    # Live streams stay open until the client leaves: give them a few seconds, then stop anyway.
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="info",
                            timeout_graceful_shutdown=5, forwarded_allow_ips=settings.api_forwarded_allow_ips)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from launcher.simulate import simulate, simulate_jt808, simulate_teltonika

    if args.jt808:
        accepted = simulate_jt808(args.jt808, args.phone, args.period)
        print(f"terminal {args.phone}: {accepted} reports accepted")
        return 0
    if args.teltonika:
        taken = simulate_teltonika(args.teltonika, args.imei, args.period)
        print(f"tracker {args.imei}: {taken} records taken")
        return 0
    simulate(args.gateway_id, args.broker, Path(args.data_dir), args.site, args.vehicle, args.tags, args.period,
             password_file=args.password_file, metrics_listen=args.metrics_listen)
    return 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from storage.migrate import migrate

    applied = migrate(_database_url())
    print(f"applied: {', '.join(applied)}" if applied else "database is up to date")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    from storage.failover import hosts, state

    states = [state(url) for url in hosts(args.url or _database_url())]
    for s in states:
        print(f"{s.host}: {s.role}, {s.detail}")
    primaries = sum(s.role == "primary" for s in states)
    if primaries != 1:
        print(f"warning: {primaries} primaries among {len(states)} hosts: writers need exactly one "
              "(promote a standby, or fence the old primary)", file=sys.stderr)
    return 0 if primaries == 1 else 1


def cmd_db_promote(args: argparse.Namespace) -> int:
    from storage.failover import promote

    print(promote(args.url, args.wait, args.keep_synchronous))
    print("writers with a multi-host URL and target_session_attrs=read-write reconnect to it by themselves")
    return 0


def cmd_db_restore(args: argparse.Namespace) -> int:
    from pathlib import Path

    from storage.restore import RestoreError, restore

    dump = Path(args.dump)
    with naming("the dump file", dump):
        dump.open("rb").close()  # pg_restore would say only that it is not an archive
    try:
        restore(_database_url(), dump)
    except RestoreError as exc:
        sys.exit(f"error: {exc}")
    print(f"restored {args.dump}; the correlator's cursors re-derived for this cluster")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    import psycopg

    from tracking_api.keys import create_key

    if (args.role == "customer") != bool(args.customer):
        sys.exit("error: --customer ID is required for role customer and only for it")
    try:
        with psycopg.connect(_database_url()) as conn:
            key = create_key(conn, args.role, args.customer, label=args.label)
    except psycopg.errors.ForeignKeyViolation:
        sys.exit(f"error: no customer {args.customer!r}: create the customer first")
    print(key)
    print("Store this key now: it is shown only once.", file=sys.stderr)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    import psycopg

    from tracking_api.keys import revoke_key

    with psycopg.connect(_database_url()) as conn:
        found = revoke_key(conn, args.prefix)
    if not found:
        sys.exit(f"error: no active key with prefix {args.prefix!r}")
    print(f"revoked {args.prefix}")
    return 0


def cmd_config_validate(args: argparse.Namespace) -> int:
    from firmware_configs import validate_file

    errors = validate_file(args.file, check_files=not args.no_files)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        return 1
    print(f"{args.file}: ok")
    return 0


def cmd_config_apply(args: argparse.Namespace) -> int:
    from device_drivers.rfid.protocol import CommandRefused
    from firmware_configs import load_profile
    from firmware_configs.apply import apply_profile

    try:
        applied = apply_profile(load_profile(args.file))
    except (ValueError, TimeoutError, OSError, CommandRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for reader, steps in applied.items():
        print(f"{reader}: {', '.join(steps) or 'nothing to configure'}")
    return 0


def cmd_deploy_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from launcher.deploy_init import AlreadyThere, init

    try:
        written = init(Path(args.dir), args.host or ["mqtt.cargotrace.internal", "localhost", "127.0.0.1"])
    except AlreadyThere as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    print(f"next: give each gateway {Path(args.dir) / 'mosquitto/certs/ca.crt'} (its tls_ca_file) and its password "
          f"(`cargotrace gateway provision ID`); keep ca.key offline once the certificates are made")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cargotrace", description="Cargo and truck tracking for a 3PL.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="a traceback instead of the one-line error")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="json: one JSON object per line, for log shippers")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str,
            into: argparse._SubParsersAction = sub) -> argparse.ArgumentParser:
        p = into.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        return p

    p = add("up", cmd_up, "run the whole system in one process tree (embedded services when no URLs are set)")
    p.add_argument("--demo", action="store_true",
                   help="add simulated dock-door readers and a truck, sample customers and demand records")
    p.add_argument("--fresh", action="store_true",
                   help="start from nothing: delete the data folder first (embedded database, broker store, logs)")
    p.add_argument("--pace", type=float, default=1.0, help=argparse.SUPPRESS)  # a faster demo, for tests

    p = add("gateway", cmd_gateway, "run an edge gateway from its profile")
    p.add_argument("--config", metavar="FILE", help="gateway profile (YAML)")
    gateway_sub = p.add_subparsers(dest="gateway_command", metavar="COMMAND")
    p = add("check", cmd_gateway_check, "bring-up: check the profile, the broker login and what the devices read "
            "for some seconds (nothing is published), then a verdict", gateway_sub)
    p.add_argument("--config", metavar="FILE", help="gateway profile (YAML)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to read (default 10)")
    p = add("provision", cmd_gateway_provision, "create a gateway's broker password and its profile in one step "
            "(again for an existing gateway: a new password, the profile kept)", gateway_sub)
    p.add_argument("id", help="gateway id [a-z0-9-]{1,64}, also its MQTT user name")
    p.add_argument("--kind", choices=("dock", "truck", "fleet"), default="dock",
                   help="fleet: an endpoint for the telematics terminals of every vehicle in the master data")
    p.add_argument("--site", help="dock: the site id of its read points (e.g. wh-sh1)")
    p.add_argument("--doors", help="dock: comma-separated door ids, one reader each (e.g. door-03,door-04)")
    p.add_argument("--vehicle", help="truck: the fleet id (e.g. TRK-042)")
    p.add_argument("--region", default="PRC", help="the readers' RF region (see firmware_configs/profile.py)")
    p.add_argument("--broker", default="mqtts://mqtt.cargotrace.internal:8883", help="broker URL the box uses")
    p.add_argument("--password-file", default="deploy/mosquitto/cargotrace.passwd", metavar="FILE",
                   help="Mosquitto password file to add the user to (created if missing)")
    p.add_argument("--acl", default="deploy/mosquitto/cargotrace.acl", metavar="FILE",
                   help="the broker's ACL, checked to confine the new user to its own topics")
    p.add_argument("--profile-dir", default="firmware_configs/profiles", metavar="DIR")
    p.add_argument("--no-register", action="store_true",
                   help="do not register it in the master data (done when CARGOTRACE_DATABASE_URL is set)")

    add("ingest", cmd_ingest, "consume gateway messages from MQTT (or the NATS cluster's JetStream consumer, "
        "when CARGOTRACE_BROKER_URL is set) into the database")
    api = add("api", cmd_api, "serve the tracking API and web pages")
    api.add_argument("--host", help="bind address (default from settings)")
    api.add_argument("--port", type=int, help="port (default from settings)")

    p = add("simulate", cmd_simulate, "run a gateway fed by a simulated dock door and truck (no hardware needed)")
    p.add_argument("--gateway-id", default="sim-gateway", help="its id and MQTT user name")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="broker URL")
    p.add_argument("--password-file", metavar="FILE", help="the gateway's broker password (from gateway provision)")
    p.add_argument("--site", default="sim", help="site id of its door (read point SITE/door-01)")
    p.add_argument("--vehicle", default="SIM-001", help="the simulated truck's fleet id")
    p.add_argument("--tags", type=int, default=3, help="pallets per passage through the door")
    p.add_argument("--period", type=float, default=10.0, metavar="SECONDS", help="time between passages")
    p.add_argument("--data-dir", default="var/simulate", metavar="DIR", help="where its profile and outbox live")
    p.add_argument("--metrics-listen", metavar="HOST:PORT", help="serve the gateway's /metrics and /healthz")
    p.add_argument("--jt808", metavar="HOST:PORT", help="instead: a JT/T 808 terminal driving the demo route "
                   "against this platform (a gateway's jt808 endpoint); --period is then between reports")
    p.add_argument("--phone", default="013912345678", help="the simulated terminal's phone number (its identity)")
    p.add_argument("--teltonika", metavar="HOST:PORT", help="instead: a Teltonika tracker driving the demo route "
                   "against a gateway's teltonika endpoint; --period is then between records")
    p.add_argument("--imei", default="356307042441013", help="the simulated tracker's IMEI (its identity)")

    crm = sub.add_parser("crm", help="the CRM link", description="the CRM link")
    crm_sub = crm.add_subparsers(dest="crm_command", required=True, metavar="COMMAND")
    add("run", cmd_crm_run, "correlate observations and fixes with demand records", crm_sub)
    add("webhooks", cmd_crm_webhooks, "send queued webhooks and notifications (also inside crm run)", crm_sub)
    p = add("import", cmd_crm_import, "import demand records from CSV or JSON lines (bad rows reported, "
            "good rows committed; exit 1 when any row was refused)", crm_sub)
    p.add_argument("file", help="the file (columns and fields: docs/crm.md)")
    p.add_argument("--customer", help="owner of rows without a customer_id column (and the only one allowed)")
    p.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file name (.jsonl: JSON lines)")

    db = sub.add_parser("db", help="database administration", description="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    add("migrate", cmd_db_migrate, "apply pending schema migrations (idempotent)", db_sub)
    p = add("status", cmd_db_status, "each host of the (multi-host) database URL: primary, standby or unreachable, "
            "with the standbys' replication state; exit 1 unless exactly one primary", db_sub)
    p.add_argument("--url", help="default: CARGOTRACE_DATABASE_URL")
    p = add("promote", cmd_db_promote, "promote a standby to primary once the old primary is dead or fenced "
            "(pg_promote), waiting until it accepts writes", db_sub)
    p.add_argument("url", help="the standby's own URL (one host)")
    p.add_argument("--wait", type=int, default=60, metavar="SECONDS", help="how long promotion may take (default 60)")
    p.add_argument("--keep-synchronous", action="store_true",
                   help="keep synchronous_standby_names: commits wait until a standby it names is attached")
    p = add("restore", cmd_db_restore, "restore a pg_dump (custom format) into an empty database, of this "
            "cluster or a new one: roles first, the correlator's cursors re-derived after", db_sub)
    p.add_argument("dump", help="the file of pg_dump --format=custom")

    broker = sub.add_parser("broker", help="the clustered broker (NATS JetStream)",
                            description="the clustered broker (NATS JetStream)")
    broker_sub = broker.add_subparsers(dest="broker_command", required=True, metavar="COMMAND")
    p = add("init", cmd_broker_init, "create ingest's durable consumer on the cluster's MQTT message stream, "
            "before any gateway publishes (idempotent; CARGOTRACE_BROKER_URL names the nodes)", broker_sub)
    p.add_argument("--replicas", type=int, default=3, choices=(1, 3, 5),
                   help="replicas of the stream when this creates it (default 3: one node may fail)")

    keys = sub.add_parser("keys", help="API keys", description="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    p = add("create", cmd_keys_create, "create an API key and print it once", keys_sub)
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--customer", metavar="ID", help="the customer a customer key is bound to")
    p.add_argument("--label", default="", help="a note for whom the key is")
    p = add("revoke", cmd_keys_revoke, "revoke an API key by its public prefix", keys_sub)
    p.add_argument("prefix")

    deploy = sub.add_parser("deploy", help="installation", description="installation")
    deploy_sub = deploy.add_subparsers(dest="deploy_command", required=True, metavar="COMMAND")
    p = add("init", cmd_deploy_init, "write a new installation's secrets: database and ingest passwords, the "
            "broker's CA and certificate, its password file (never over existing ones)", deploy_sub)
    p.add_argument("--dir", default="deploy", help="the deployment folder (default: deploy)")
    p.add_argument("--host", action="append", metavar="NAME_OR_IP",
                   help="a name or address the broker is reached at, for its certificate (repeat; default: "
                        "mqtt.cargotrace.internal, localhost, 127.0.0.1)")

    master_commands.add_commands(sub, add, _database_url)

    config = sub.add_parser("config", help="device and site profiles", description="device and site profiles")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    p = add("validate", cmd_config_validate, "validate a profile and report every error", config_sub)
    p.add_argument("--no-files", action="store_true",
                   help="skip checking the files it names (for a profile written for another box)")
    p.add_argument("file")
    p = add("apply", cmd_config_apply, "send a profile's settings to its readers and check each answer", config_sub)
    p.add_argument("file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.verbose, args.log_format == "json")
    try:
        return exit_code(lambda: args.func(args), args.debug)
    except ModuleNotFoundError as exc:
        if not exc.name or exc.name.split(".")[0] in PROJECT:
            raise
        extra = "gateway" if args.command in EDGE_COMMANDS else "central"
        sys.exit(f"error: `cargotrace {args.command}` needs the {extra} extra: pip install 'cargotrace[{extra}]' "
                 f"(no module {exc.name})")


if __name__ == "__main__":
    sys.exit(main())
