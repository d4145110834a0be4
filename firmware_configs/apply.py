"""`cargotrace config apply`: a profile's reader settings as the reader's own command frames, sent and
each answer checked."""

from __future__ import annotations

import time
from dataclasses import dataclass

import serial

from device_drivers.rfid import decoder_for, r2000
from device_drivers.rfid import mercury_encoder as mercury
from device_drivers.rfid.mercury import STATUS_OK, ModuleError
from firmware_configs.profile import GatewayProfile, Reader

ANSWER_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Step:
    what: str
    frame: bytes


def commands(reader: Reader) -> list[Step]:
    """The frames that put a reader into the profile's configuration, in the order it needs them."""
    if reader.protocol == "thingmagic-mercury":
        # The module has one read power for all ports; the profile's highest is applied (and checked).
        power = max(a.power_dbm for a in reader.antennas)
        return [Step(f"region {reader.region}", mercury.set_region(reader.region)),
                Step("protocol Gen2", mercury.set_gen2_protocol()),
                Step(f"antenna {reader.antennas[0].port}", mercury.set_antenna(reader.antennas[0].port)),
                Step(f"read power {power} dBm", mercury.set_read_power(power))]
    if reader.protocol == "impinj-r2000":
        power = round(max(a.power_dbm for a in reader.antennas))
        return [Step(f"output power {power} dBm", r2000.set_output_power(power)),
                Step(f"work antenna {reader.antennas[0].port}", r2000.set_work_antenna(reader.antennas[0].port))]
    return []  # EM4100 and line readers take no configuration


def apply_reader(reader: Reader, port: serial.SerialBase) -> list[str]:
    """Send every command and wait for its answer; raise on the first refusal. Returns what was set."""
    decoder = decoder_for(reader.protocol, reader.name)
    done = []
    for step in commands(reader):
        port.write(step.frame)
        opcode = step.frame[2] if reader.protocol == "thingmagic-mercury" else step.frame[3]
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        answer = None
        while answer is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{reader.name}: no answer to '{step.what}' within {ANSWER_TIMEOUT_S} s")
            decoder.feed(port.read(max(1, port.in_waiting)))
            answer = _answer(decoder, opcode)
        if answer != STATUS_OK:
            raise ModuleError(opcode, answer)
        done.append(step.what)
    return done


def _answer(decoder: object, opcode: int) -> int | None:
    responses = decoder.responses  # type: ignore[attr-defined]
    while responses:
        got, status, _ = responses.popleft()
        if got == opcode:
            return status
    return None


def apply_profile(profile: GatewayProfile) -> dict[str, list[str]]:
    applied = {}
    for reader in profile.readers:
        with serial.serial_for_url(reader.port, baudrate=reader.baud, timeout=0.2) as port:
            applied[reader.name] = apply_reader(reader, port)
    return applied
