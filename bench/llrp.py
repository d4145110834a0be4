"""LLRP tag reports per second: a simulated reader streams RO_ACCESS_REPORTs over TCP to the gateway's
device thread (the LLRP session on a pyserial socket:// port, exactly as a gateway runs a reader), which
decodes them into tag reads on the gateway's queue. Baselines in the same run: the same bytes received
raw on a socket (no decoding), and the decoder alone on the bytes in memory.

    python -m bench.llrp [--tags 400000] [--per-report 100]
"""

from __future__ import annotations

import argparse
import queue
import socket
import threading
import time
from typing import Any

from device_drivers.llrp_simulator import LlrpReader
from device_drivers.rfid import llrp
from device_drivers.rfid.llrp_session import LlrpSession
from device_drivers.rfid.protocol import Inventory
from device_drivers.types import TagRead
from gateway.devices import DeviceReader

CHUNK = 65536


def stream(tags: int, per_report: int) -> bytes:
    """Reports as a reader sends them: portal tags on two antennas, seen now."""
    now_us = time.time_ns() // 1000
    data = [llrp.tag_report_data(f"3034257BF7194E40{n:08X}", 1 + n % 2, -50 - n % 20, now_us, 1 + n % 16)
            for n in range(per_report)]
    report = llrp.ro_access_report(1, data)
    return report * (tags // per_report)


def in_memory(data: bytes) -> float:
    decoder = llrp.LlrpDecoder("door")
    start, n = time.perf_counter(), 0
    for i in range(0, len(data), CHUNK):
        n += len(decoder.feed(data[i:i + CHUNK]))
    return n / (time.perf_counter() - start)


def raw_socket(data: bytes) -> float:
    """Seconds to receive the bytes on a plain socket; returned as the tag rate they would carry."""
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: server.accept()[0].sendall(data), daemon=True).start()
    with socket.create_connection(server.getsockname()) as client:
        start, got = time.perf_counter(), 0
        while got < len(data):
            got += len(client.recv(CHUNK))
        elapsed = time.perf_counter() - start
    server.close()
    return elapsed


def through_gateway(data: bytes, tags: int) -> float:
    reader = LlrpReader()
    out: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    inventory = Inventory(region="PRC", band_mhz=(920.5, 924.5), power_dbm={1: 30.0, 2: 30.0})
    device = DeviceReader("door", f"socket://{reader.address}", 0, lambda: LlrpSession("door", inventory), out, stop)
    device.start()
    try:
        if not reader.started.wait(30):
            raise SystemExit("the simulated reader was not configured")
        start = time.perf_counter()
        threading.Thread(target=reader.send, args=(data,), daemon=True).start()
        n = 0
        while n < tags:
            n += isinstance(out.get(timeout=60)[1], TagRead)
        return n / (time.perf_counter() - start)
    finally:
        stop.set()
        device.join(5)
        reader.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=400_000)
    parser.add_argument("--per-report", type=int, default=100)
    args = parser.parse_args()
    data = stream(args.tags, args.per_report)
    tags = args.tags // args.per_report * args.per_report
    print(f"{tags} TagReportData in reports of {args.per_report}: {len(data) / 1e6:.1f} MB")
    memory = in_memory(data)
    raw = tags / raw_socket(data)
    gateway = through_gateway(data, tags)
    print(f"decoder alone, in memory:            {memory:10,.0f} tags/s")
    print(f"raw bytes on a socket (baseline):    {raw:10,.0f} tags/s")
    print(f"gateway device thread + LLRP session: {gateway:10,.0f} tags/s  "
          f"= {gateway / memory:.2f}x the decoder alone, {gateway / raw:.3f}x the raw socket")


if __name__ == "__main__":
    main()
