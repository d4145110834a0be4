"""UHF/LF RFID reader protocols, by the name a profile gives them (`protocol: thingmagic-mercury`).

This table is the one place that lists them: a new protocol is its module (decoder, command encoder,
configuration steps, error type, built into a `ReaderProtocol`) and one line here.
"""

from __future__ import annotations

from device_drivers.framing import StreamDecoder
from device_drivers.rfid import em4100, epc_lines, llrp_session, mercury, r2000
from device_drivers.rfid.protocol import ReaderProtocol
from device_drivers.types import TagRead

PROTOCOLS: dict[str, ReaderProtocol] = {p.name: p for p in (
    mercury.PROTOCOL,
    r2000.PROTOCOL,
    em4100.PROTOCOL,
    epc_lines.PROTOCOL,
    llrp_session.PROTOCOL,
)}


def protocols() -> list[str]:
    return sorted(PROTOCOLS)


def protocol(name: str) -> ReaderProtocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown RFID protocol {name!r}; known: {', '.join(protocols())}") from None


def decoder_for(name: str, reader: str = "") -> StreamDecoder[TagRead]:
    """A fresh stream decoder of the named reader protocol."""
    return protocol(name).decoder(reader)
