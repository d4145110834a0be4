"""`cargotrace config apply`: a profile's reader settings as the reader's own command frames, sent and
each answer checked."""

from __future__ import annotations

import time

import serial

from device_drivers.framing import StreamDecoder
from device_drivers.rfid import protocol
from device_drivers.rfid.protocol import Command, CommandRefused
from device_drivers.types import TagRead
from firmware_configs.profile import GatewayProfile, Reader

ANSWER_TIMEOUT_S = 2.0


def commands(reader: Reader) -> list[Command]:
    """The frames that put a reader into the profile's configuration, in the order it needs them."""
    return protocol(reader.protocol).configure(reader.region, {a.port: a.power_dbm for a in reader.antennas})


def apply_reader(reader: Reader, port: serial.SerialBase) -> list[str]:
    """Send every command and wait for its answer; raise the protocol's CommandRefused on the first
    refusal. Returns what was set."""
    spoken = protocol(reader.protocol)
    decoder = spoken.decoder(reader.name)
    done = []
    for command in commands(reader):
        port.write(command.frame)
        deadline = time.monotonic() + ANSWER_TIMEOUT_S
        status = None
        while status is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{reader.name}: no answer to '{command.what}' within {ANSWER_TIMEOUT_S} s")
            decoder.feed(port.read(max(1, port.in_waiting)))
            status = _answer(decoder, command.answer)
        if status != 0:
            raise spoken.refused(command.answer, status)
        done.append(command.what)
    return done


def _answer(decoder: StreamDecoder[TagRead], command: int) -> int | None:
    while decoder.responses:
        got, status, _ = decoder.responses.popleft()
        if got == command:
            return status
    return None


def apply_profile(profile: GatewayProfile) -> dict[str, list[str]]:
    applied = {}
    for reader in profile.readers:
        if protocol(reader.protocol).converse is not None:
            applied[reader.name] = ["the gateway configures it on every connection"]
            continue
        with serial.serial_for_url(reader.port, baudrate=reader.baud, timeout=0.2) as port:
            try:
                applied[reader.name] = apply_reader(reader, port)
            except CommandRefused as exc:  # which reader refused, for a profile with several
                raise CommandRefused(exc.command, exc.status, f"{reader.name}: {exc}") from exc
    return applied
