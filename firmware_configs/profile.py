"""A gateway's profile: its identity and broker, its readers (antennas → read points) and its GPS."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from common.failures import Failure
from device_drivers.rfid import protocol, protocols
from device_drivers.rfid.protocol import Inventory
from firmware_configs.profile_checks import Problem, describe, file_problems, power_outside, power_problems

# Per region: the UHF band the module hops in (MHz, for the error message and the docs) and the
# highest conducted read power it may use (dBm). The M6e Nano and Micro top out at 27-30 dBm
# conducted; the regulatory radiated limits (4 W EIRP in NA, 2 W ERP in EU) leave room for antenna gain.
REGIONS: dict[str, tuple[str, float]] = {
    "NA": ("902-928", 30.0), "EU": ("865.6-867.6", 30.0), "IN": ("865-867", 30.0), "JP": ("916.8-920.8", 30.0),
    "PRC": ("920.5-924.5", 30.0), "KR": ("917-920.8", 30.0), "AU": ("920-926", 30.0), "NZ": ("921.5-928", 30.0),
}
MIN_DBM = 5.0
READ_POWER = "read_power"  # the error type of a read power outside the region's limits
BROKER_URL = re.compile(r"^mqtts?://[^\s/?#]+/?$")
ReadPoint = Field(pattern=r"^[A-Za-z0-9._-]{1,64}/[A-Za-z0-9._-]{1,64}$", description="site_id/door_id")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Smoothing(_Strict):
    absent_s: float = Field(2.0, gt=0, description="a passage ends when the tag was not read for this long")
    max_hold_s: float = Field(60.0, gt=0, description="a tag parked in the field is re-reported this often")
    min_reads: int = Field(2, ge=1, description="fewer raw reads in a passage are stray reads")
    min_rssi_dbm: float = Field(-80.0, le=0, description="a passage whose peak is weaker is a stray read")


class GpsFilter(_Strict):
    max_hdop: float = Field(5.0, gt=0)
    max_speed_kmh: float = Field(250.0, gt=0, description="implied speed between fixes above this is a jump")
    stationary_kmh: float = Field(3.0, ge=0)
    stationary_period_s: float = Field(60.0, gt=0, description="at most one fix per period while stationary")
    moving_period_s: float = Field(10.0, gt=0)
    heading_change_deg: float = Field(15.0, gt=0)
    distance_m: float = Field(100.0, gt=0)
    gap_s: float = Field(10.0, gt=0, description="no fix for this long is reported as a receiver gap")
    max_ahead_s: float = Field(3600.0, gt=0, description="a fix this far ahead of both the last fix and the "
                                                          "gateway's clock is a receiver fault, dropped")
    reanchor_after: int = Field(10, ge=2, description="this many fixes in a row behind the last accepted one: "
                                                      "its time was the fault, the track starts again from them")


class Gateway(_Strict):
    id: str = Field(pattern=r"^[a-z0-9-]{1,64}$")
    broker: str | list[str] = Field("mqtt://127.0.0.1:1883", description="the broker's URL; or, for a cluster, "
                                    "its nodes' URLs, tried in order (each after the one before failed, waiting "
                                    "longer each round)")
    password_file: str | None = None
    tls_ca_file: str | None = None
    outbox: str = "var/outbox.sqlite"
    outbox_max_events: int = Field(2_000_000, ge=1000)
    keep_acked_s: float = Field(30.0, ge=0, description="events the broker acknowledged stay this long and are "
                                "sent again after a reconnect: a broker that crashed before saving them gets them "
                                "back (keep it above the broker's autosave_interval)")
    held_max_events: int = Field(200_000, ge=100, description="while the outbox's disk refuses writes, events "
                                 "wait in memory up to this many; past it GPS fixes go, cargo never")
    metrics_listen: str | None = Field(None, pattern=r"^[0-9a-zA-Z.:-]+:[0-9]{1,5}$",
                                       description="host:port of /metrics and /healthz; off when unset")
    batch_events: int = Field(500, ge=1, le=5000)
    batch_bytes: int = Field(256_000, ge=1024, le=1_000_000)
    smoothing: Smoothing = Smoothing()
    gps_filter: GpsFilter = GpsFilter()

    @field_validator("broker")
    @classmethod
    def _broker_urls(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("a list of brokers names at least one")
        for url in urls:
            if not BROKER_URL.match(url):
                raise ValueError(f"{url!r} is no broker URL: mqtt://HOST:PORT or mqtts://HOST:PORT")
        return value

    @property
    def brokers(self) -> list[str]:
        """The broker URLs in the order they are tried."""
        return [self.broker] if isinstance(self.broker, str) else list(self.broker)


class Antenna(_Strict):
    port: int = Field(ge=1, le=16)
    read_point: str = ReadPoint
    side: Literal["outer", "inner"] | None = None
    power_dbm: float = 27.0


class Llrp(_Strict):
    """How an LLRP reader inventories; the gateway sets it on every connection."""

    session: int = Field(1, ge=0, le=3, description="Gen2 session: 1 for portals (a tag answers again within "
                                                  "seconds), 2 or 3 to hold quiet tags longer")
    search_mode: Literal["dual_target", "single_target"] = Field(
        "dual_target", description="dual_target reads tags in both inventory states; single_target reads each "
        "tag once per dwell (large static populations)")
    tag_population: int = Field(32, ge=1, le=16384, description="how many tags the reader expects in its field")
    report_every_tags: int = Field(1, ge=1, le=65535, description="a report per this many tags (1: at once)")
    keepalive_s: float = Field(10.0, ge=1, le=600, description="the reader's keepalive period; three missed "
                                                               "keepalives close the connection")


class Reader(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    protocol: str
    port: str = Field(description="a device path or a pyserial URL (loop://, socket://host:port); an LLRP "
                                  "reader: socket://HOST:5084")
    baud: int = 115200
    region: str = "EU"
    antennas: list[Antenna] = Field(min_length=1)
    llrp: Llrp | None = Field(None, description="inventory settings of an LLRP reader")

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if value not in protocols():
            raise ValueError(f"protocol {value!r} is not one of: {', '.join(protocols())}")
        return value

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in REGIONS:
            raise ValueError(f"region {value!r} is not one of: {', '.join(REGIONS)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> Reader:
        for antenna in self.antennas:
            if problem := power_outside(antenna.power_dbm, self.region, REGIONS, MIN_DBM):
                raise PydanticCustomError(READ_POWER, "antenna {port}: power {problem}",
                                          {"port": antenna.port, "problem": problem})
        if len({a.port for a in self.antennas}) != len(self.antennas):
            raise ValueError("antenna ports must be unique")
        converses = protocol(self.protocol).converse is not None
        if converses and not re.fullmatch(r"socket://[0-9A-Za-z.:\[\]-]+:[0-9]{1,5}", self.port):
            raise ValueError(f"an {self.protocol} reader's port is socket://HOST:PORT (port 5084 as a rule)")
        if self.llrp is not None and self.protocol != "llrp":
            raise ValueError(f"an llrp section belongs to an llrp reader, not to {self.protocol}")
        return self

    def inventory(self) -> Inventory:
        low, high = REGIONS[self.region][0].split("-")
        return Inventory(region=self.region, band_mhz=(float(low), float(high)),
                         power_dbm={a.port: a.power_dbm for a in self.antennas}, **(self.llrp or Llrp()).model_dump())


class Gps(_Strict):
    source: Literal["nmea", "gpsd"] = Field("nmea", description="nmea: a receiver's serial port; gpsd: the "
                                            "gpsd that shares it, at port socket://HOST:2947")
    port: str
    baud: int = 9600
    vehicle: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")


class Jt808(_Strict):
    """A JT/T 808 platform endpoint: the fleet's terminals connect to this gateway over TCP."""

    listen: str = Field("0.0.0.0:7611", pattern=r"^[0-9a-zA-Z.:-]+:[0-9]{1,5}$", description="host:port")
    versions: list[Literal[2013, 2019]] = Field([2013, 2019], min_length=1)
    require_authentication: bool = Field(True, description="refuse reports from terminals that did not "
                                                             "authenticate on their connection")
    secret: str = Field("", description="mixed into the authentication codes handed out at registration")
    terminals: dict[str, str] = Field(min_length=1, description="terminal phone number → vehicle id")

    @field_validator("terminals")
    @classmethod
    def _numbers_and_vehicles(cls, value: dict[str, str]) -> dict[str, str]:
        for phone, vehicle in value.items():
            if not (phone.isdigit() and len(phone) <= 20):
                raise ValueError(f"terminal {phone!r}: a phone number is 1 to 20 digits")
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", vehicle):
                raise ValueError(f"terminal {phone}: vehicle {vehicle!r} must match [A-Za-z0-9._-]{{1,64}}")
        return value


class Teltonika(_Strict):
    """A Teltonika endpoint (Codec 8 / 8 Extended over TCP): the fleet's trackers connect to this gateway."""

    listen: str = Field("0.0.0.0:5027", pattern=r"^[0-9a-zA-Z.:-]+:[0-9]{1,5}$", description="host:port")
    devices: dict[str, str] = Field(min_length=1, description="tracker IMEI → vehicle id")

    @field_validator("devices")
    @classmethod
    def _imeis_and_vehicles(cls, value: dict[str, str]) -> dict[str, str]:
        for imei, vehicle in value.items():
            if not (imei.isdigit() and len(imei) == 15):
                raise ValueError(f"device {imei!r}: an IMEI is 15 digits")
            if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", vehicle):
                raise ValueError(f"device {imei}: vehicle {vehicle!r} must match [A-Za-z0-9._-]{{1,64}}")
        return value


class GatewayProfile(_Strict):
    gateway: Gateway
    readers: list[Reader] = []
    gps: Gps | None = None
    jt808: Jt808 | None = None
    teltonika: Teltonika | None = None
    version: str = Field("", description="filled with a hash of the file when loaded")

    @model_validator(mode="after")
    def _has_devices(self) -> GatewayProfile:
        if not self.readers and self.gps is None and self.jt808 is None and self.teltonika is None:
            raise ValueError("a gateway needs at least one reader, a gps, or a jt808 or teltonika endpoint")
        return self


def _load_yaml(path: Path) -> tuple[object, yaml.Node | None]:
    text = path.read_text()
    return yaml.safe_load(text), yaml.compose(text)


class ProfileError(Failure, ValueError):
    """A profile that does not validate: every problem, one a line."""


def load_profile(path: str | Path) -> GatewayProfile:
    """Parse and validate a profile; raises ProfileError with every problem in the message."""
    errors = validate_file(path)
    if errors:
        raise ProfileError("\n".join(errors))
    data, _ = _load_yaml(Path(path))
    version = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
    return GatewayProfile.model_validate({**data, "version": version})  # type: ignore[dict-item]


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location, as deep as it exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def validate_file(path: str | Path, check_files: bool = False) -> list[str]:
    """Every problem of a profile as 'file:line: field: message' lines, in the order of the file; empty
    when valid. `check_files`: also that the files it names can be opened (on the box that runs it)."""
    path = Path(path)
    try:
        data, root = _load_yaml(path)
    except OSError as exc:
        return [f"{path}: cannot read: {exc.strerror}"]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return [f"{path}:{mark.line + 1 if mark else '?'}: not valid YAML: {exc}"]
    if not isinstance(data, dict):
        return [f"{path}:1: a profile is a mapping with gateway, readers and gps"]
    problems: list[Problem] = []
    try:
        GatewayProfile.model_validate(data)
    except ValidationError as exc:  # read power is reported per antenna below, even beside other errors
        problems += [(err["loc"], describe(err)) for err in exc.errors() if err["type"] != READ_POWER]
    problems += power_problems(data, REGIONS, MIN_DBM)
    if check_files:
        problems += file_problems(data)
    lines = [(_line_of(root, loc), loc, message) for loc, message in problems]
    return [f"{path}:{line or '?'}: {'.'.join(map(str, loc)) or '(profile)'}: {message}"
            for line, loc, message in sorted(lines, key=lambda p: p[0] or 0)]
