"""What a gateway and a profile need of a reader protocol, as one record per protocol.

The gateway and `config apply` speak to every reader through this record only: its stream decoder,
the bytes it must hear before it streams, the command frames that configure it and its error for a
refused command. A new protocol is one module that builds its record, and one line in the registry
(`device_drivers/rfid/__init__.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from device_drivers.framing import StreamDecoder
from device_drivers.types import TagRead


@dataclass(frozen=True, slots=True)
class Command:
    """One host → reader frame and the command code the reader's answer to it carries."""

    what: str  # for people: "read power 27 dBm"
    frame: bytes
    answer: int


class CommandRefused(Exception):
    """The reader answered a command with a refusal."""

    def __init__(self, command: int, status: int, text: str) -> None:
        self.command, self.status = command, status
        super().__init__(text)


# The settings a profile asks of a reader: its RF region and the read power (dBm) of each antenna port.
Configure = Callable[[str, Mapping[int, float]], list[Command]]


def no_configuration(region: str, power_dbm: Mapping[int, float]) -> list[Command]:
    return []


@dataclass(frozen=True, slots=True)
class Inventory:
    """What a profile asks of a reader that the host configures on every connection (LLRP)."""

    region: str
    band_mhz: tuple[float, float]  # the region's UHF band
    power_dbm: Mapping[int, float]  # per antenna port, the ports to read with
    session: int = 1  # Gen2 session: 1 forgets a tag's flag within seconds, 2 and 3 hold it longer
    search_mode: Literal["dual_target", "single_target"] = "dual_target"
    tag_population: int = 32
    report_every_tags: int = 1
    keepalive_s: float = 10.0


@runtime_checkable
class Conversation(Protocol):
    """A reader the host talks with over a connection: `feed` what it sent, write what `outgoing` returns.
    Either raises CommandRefused or an OSError when the connection must start over."""

    def feed(self, data: bytes) -> list[TagRead]: ...

    def outgoing(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ReaderProtocol:
    name: str  # as a profile names it: `protocol: thingmagic-mercury`
    decoder: Callable[[str], StreamDecoder[TagRead]]  # a fresh stream decoder for the named reader
    configure: Configure = no_configuration
    start: bytes = b""  # what the reader must hear, once opened, before it streams reads
    refused: Callable[[int, int], CommandRefused] = lambda command, status: CommandRefused(
        command, status, f"the reader refused command 0x{command:02X} with status 0x{status:04X}")
    # For readers configured on every connection: the conversation that configures one and streams its reads
    converse: Callable[[str, Inventory], Conversation] | None = None
