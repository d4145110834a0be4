"""Provision a new gateway in one step: its broker account and its profile (what an operator does when
a dock door group or a truck is added). Provisioning an existing gateway again rotates its password
and keeps its profile."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from common.failures import naming
from firmware_configs.broker_credentials import acl_problems, new_password, write_user
from firmware_configs.profile import Gateway, validate_file

Kind = Literal["dock", "truck", "fleet"]
IMEI_DIGITS = 15  # a telematics id this long is a tracker's IMEI (Teltonika); others are JT/T 808 phone numbers


@dataclass(frozen=True)
class Request:
    gateway_id: str
    kind: Kind
    broker: str
    site: str = ""
    doors: tuple[str, ...] = ()
    vehicle: str = ""
    region: str = "PRC"
    terminals: tuple[tuple[str, str], ...] = ()  # fleet: (telematics id, vehicle) from the master data


@dataclass(frozen=True)
class Provisioned:
    password: str
    profile: Path
    profile_created: bool


def profile_data(req: Request) -> dict[str, object]:
    """A profile in the shape of firmware_configs/profiles/*.yaml; device paths are the usual ones and
    are edited on the box when they differ."""
    gateway: dict[str, object] = {"id": req.gateway_id, "broker": req.broker,
                                  "password_file": f"/etc/cargotrace/{req.gateway_id}.password",
                                  "outbox": f"/var/lib/cargotrace/{req.gateway_id}.outbox.sqlite"}
    if req.broker.startswith("mqtts://"):
        gateway["tls_ca_file"] = "/etc/cargotrace/ca.crt"
    if req.kind == "dock":
        if not req.site or not req.doors:
            raise ValueError("a dock gateway needs --site and --doors")
        readers = [{"name": door, "protocol": "thingmagic-mercury", "port": f"/dev/serial/by-id/usb-{door}",
                    "region": req.region,
                    "antennas": [{"port": 1, "read_point": f"{req.site}/{door}", "side": "outer", "power_dbm": 27},
                                 {"port": 2, "read_point": f"{req.site}/{door}", "side": "inner", "power_dbm": 27}]}
                   for door in req.doors]
        return {"gateway": gateway, "readers": readers}
    if req.kind == "fleet":
        return {"gateway": gateway, **fleet_endpoints(dict(req.terminals))}
    if not req.vehicle:
        raise ValueError("a truck gateway needs --vehicle")
    # Low power in the trailer: read the load, not the cargo on the dock beside the truck.
    trailer = f"{req.vehicle.lower()}/trailer"
    return {"gateway": gateway, "gps": {"port": "/dev/ttyACM0", "baud": 9600, "vehicle": req.vehicle},
            "readers": [{"name": "trailer", "protocol": "thingmagic-mercury", "port": "/dev/ttyUSB0",
                         "region": req.region,
                         "antennas": [{"port": 1, "read_point": trailer, "power_dbm": 20},
                                      {"port": 2, "read_point": trailer, "power_dbm": 20}]}]}


def fleet_endpoints(terminals: dict[str, str]) -> dict[str, object]:
    """The endpoints a fleet's terminals report to: JT/T 808 for phone numbers, Teltonika for IMEIs."""
    if not terminals:
        raise ValueError("no vehicle has a telematics id: give them one first (cargotrace vehicles add ID "
                         "--telematics-id NUMBER)")
    jt808 = {t: v for t, v in terminals.items() if len(t) != IMEI_DIGITS}
    teltonika = {t: v for t, v in terminals.items() if len(t) == IMEI_DIGITS}
    return {**({"jt808": {"listen": "0.0.0.0:7611", "terminals": jt808}} if jt808 else {}),
            **({"teltonika": {"listen": "0.0.0.0:5027", "devices": teltonika}} if teltonika else {})}


def provision(req: Request, password_file: Path, acl_file: Path, profile_dir: Path) -> Provisioned:
    """Check the id and the ACL, write the profile (unless it exists) and set a new broker password.
    Raises ValueError, before writing anything, when the gateway could not be provisioned safely."""
    Gateway(id=req.gateway_id, broker=req.broker)  # the id and broker URL rules of the profile
    with naming("the broker ACL (--acl)", acl_file):
        problems = acl_problems(acl_file.read_text(), req.gateway_id)
    if problems:
        raise ValueError("; ".join(problems))
    profile = profile_dir / f"{req.gateway_id}.yaml"
    created = not profile.exists()
    if created:
        text = (f"# Gateway {req.gateway_id} ({req.kind}), made by `cargotrace gateway provision`.\n"
                + yaml.safe_dump(profile_data(req), sort_keys=False))
        tmp = profile.with_name(f".{profile.name}.new")
        with naming("the profile folder (--profile-dir)", profile_dir):
            tmp.write_text(text)
        errors = validate_file(tmp)
        if errors:
            tmp.unlink()
            raise ValueError("\n".join(errors))
        os.replace(tmp, profile)
    elif errors := validate_file(profile):
        raise ValueError("the existing profile is invalid:\n" + "\n".join(errors))
    password = new_password()
    with naming("the broker password file (--password-file)", password_file):
        write_user(password_file, req.gateway_id, password)
    return Provisioned(password, profile, created)
