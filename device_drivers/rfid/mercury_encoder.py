"""Frames of the Mercury protocol built by the host (commands) and, for simulators, by the module."""

from __future__ import annotations

from device_drivers.rfid import mercury as m

FULL_METADATA = 0x01FF  # every field: reads, RSSI, antenna, frequency, timestamp, phase, protocol, data, GPIO
GEN2 = 0x05


def _frame(body: bytes) -> bytes:
    if len(body) - 1 > 0xFF + 3:
        raise ValueError("frame data longer than 255 bytes")
    return bytes([m.HEADER]) + body + m.crc16(body).to_bytes(2, "big")


def command(opcode: int, data: bytes = b"") -> bytes:
    """Host → module: 0xFF, len, opcode, data, CRC."""
    if len(data) > 0xFF:
        raise ValueError("command data longer than 255 bytes")
    return _frame(bytes([len(data), opcode]) + data)


def response(opcode: int, data: bytes = b"", status: int = m.STATUS_OK) -> bytes:
    """Module → host: 0xFF, len, opcode, status, data, CRC."""
    if len(data) > 0xFF:
        raise ValueError("response data longer than 255 bytes")
    return _frame(bytes([len(data), opcode]) + status.to_bytes(2, "big") + data)


def set_region(region: str) -> bytes:
    try:
        return command(m.OP_SET_REGION, bytes([m.REGIONS[region]]))
    except KeyError:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(m.REGIONS)}") from None


def set_read_power(dbm: float) -> bytes:
    """Read power in dBm, sent in centi-dBm."""
    return command(m.OP_SET_READ_TX_POWER, round(dbm * 100).to_bytes(2, "big", signed=True))


def set_antenna(port: int) -> bytes:
    """Transmit and receive on this antenna port (monostatic)."""
    return command(m.OP_SET_ANTENNA_PORT, bytes([port, port]))


def set_gen2_protocol() -> bytes:
    return command(m.OP_SET_TAG_PROTOCOL, (GEN2).to_bytes(2, "big"))


def start_continuous_read() -> bytes:
    # Multi-protocol tag op: stream Gen2 reads (search flags 0x001B, 1000 ms on) with full metadata.
    return command(m.OP_MULTI_PROTOCOL_TAG_OP, bytes.fromhex("00000122000005072210001B03E801FF"))


def stop_continuous_read() -> bytes:
    return command(m.OP_MULTI_PROTOCOL_TAG_OP, bytes.fromhex("000002"))


def tag_record_frame(epc_hex: str, antenna: int, rssi_dbm: int, frequency_khz: int = 915_250,
                     timestamp_ms: int = 0, phase: int = 0, reads: int = 1) -> bytes:
    """A streaming tag-read frame exactly as the module sends it (opcode 0x22, full metadata)."""
    epc = bytes.fromhex(epc_hex)
    pc = ((len(epc) // 2) << 11).to_bytes(2, "big")  # PC word: EPC length in 16-bit words
    tag = pc + epc + m.crc16(epc).to_bytes(2, "big")
    record = (bytes([reads]) + rssi_dbm.to_bytes(1, "big", signed=True) + bytes([(antenna << 4) | antenna])
              + frequency_khz.to_bytes(3, "big") + timestamp_ms.to_bytes(4, "big") + phase.to_bytes(2, "big")
              + bytes([GEN2]) + b"\x00\x00" + b"\x0f" + (len(tag) * 8).to_bytes(2, "big") + tag)
    data = bytes([0x10]) + (0x001B).to_bytes(2, "big") + FULL_METADATA.to_bytes(2, "big") + b"\x01" + record
    return response(m.OP_READ_TAG_ID_MULTIPLE, data)
