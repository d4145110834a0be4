"""UHF/LF RFID reader protocols, registered by name so a profile can say `protocol: thingmagic-mercury`."""

from __future__ import annotations

from collections.abc import Callable

from device_drivers.framing import StreamDecoder
from device_drivers.types import TagRead

_REGISTRY: dict[str, Callable[[str], StreamDecoder[TagRead]]] = {}


def register(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        _REGISTRY[name] = cls
        return cls

    return deco


def protocols() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def decoder_for(name: str, reader: str = "") -> StreamDecoder[TagRead]:
    """A fresh stream decoder of the named reader protocol."""
    _load_all()
    try:
        return _REGISTRY[name](reader)
    except KeyError:
        raise ValueError(f"unknown RFID protocol {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def _load_all() -> None:
    # Each protocol module registers itself on import.
    from device_drivers.rfid import em4100, epc_lines, mercury, r2000  # noqa: F401
