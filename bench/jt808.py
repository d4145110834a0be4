"""JT/T 808 endpoint throughput: location reports decoded, stored in the outbox and answered per second
with many terminals connected, against decoding the same frames alone (same run), and the endpoint's
memory per connected terminal.

The endpoint and the gateway's loop run in this process; the terminals are asyncio connections in a second
process, each sending its reports back to back and reading every answer.

    python -m bench.jt808 [--terminals 500] [--reports 200]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_drivers import jt808 as j
from firmware_configs.profile import GatewayProfile
from gateway.jt808_server import Jt808Server
from gateway.runner import Gateway


def phone(n: int) -> str:
    return f"0139{n:08d}"


def reports(n: int, count: int) -> bytes:
    start = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    return b"".join(j.frame(j.Header(j.LOCATION, phone(n), i), j.location_body(j.Location(
        (), 0, True, 31.2 + i / 1e3, 121.4 + n / 1e4, 10, 40.0, 90, start + timedelta(seconds=10 * i),
        {"satellites": 11, "mileage_km": 1000.0 + i}))) for i in range(count))


def _rss_kb() -> int:
    return int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmRSS:")))


async def _terminals(port: int, terminals: int, count: int, connected: multiprocessing.Event,
                     go: multiprocessing.Event) -> None:
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(terminals)]
    connected.set()
    await asyncio.to_thread(go.wait)

    async def drive(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reports(n, count))
        await writer.drain()
        decoder, answered = j.Jt808Decoder(), 0
        while answered < count:
            answered += len(decoder.feed(await reader.read(65536)))
        writer.close()

    await asyncio.gather(*(drive(n, r, w) for n, (r, w) in enumerate(streams)))


def _client(port: int, terminals: int, count: int, connected: multiprocessing.Event,
            go: multiprocessing.Event) -> None:
    asyncio.run(_terminals(port, terminals, count, connected, go))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--terminals", type=int, default=500)
    parser.add_argument("--reports", type=int, default=200, help="per terminal")
    args = parser.parse_args()
    total = args.terminals * args.reports

    blob = b"".join(reports(n, args.reports) for n in range(min(args.terminals, 50)))
    start = time.perf_counter()
    decoded = [j.location(m.body) for m in j.Jt808Decoder().feed(blob)]
    decode_rate = len(decoded) / (time.perf_counter() - start)

    stop = threading.Event()
    with tempfile.TemporaryDirectory() as folder:
        # A real gateway's loop (track filter, outbox) without its broker: the endpoint answers a report
        # once the loop has stored it, as in production.
        profile = GatewayProfile.model_validate({
            "gateway": {"id": "bench", "broker": "mqtt://127.0.0.1:9", "outbox": f"{folder}/outbox.sqlite",
                        "outbox_max_events": 10 * total},
            "jt808": {"listen": "127.0.0.1:0", "require_authentication": False,
                      "terminals": {phone(n): f"TRK-{n:04d}" for n in range(args.terminals)}}})
        gateway = Gateway(profile)
        assert profile.jt808 is not None
        server = Jt808Server(profile.jt808, "bench", gateway.queue, stop)
        server.start()
        server.listening.wait(10)
        answered = threading.Event()

        def loop() -> None:
            while not answered.is_set():
                gateway.step(datetime.now(UTC))

        rss_before = _rss_kb()
        connected, go = multiprocessing.Event(), multiprocessing.Event()
        client = multiprocessing.Process(target=_client, args=(server.port, args.terminals, args.reports, connected,
                                                               go))
        client.start()
        connected.wait(60)
        time.sleep(1)  # the endpoint accepts the last connections
        per_terminal_kb = (_rss_kb() - rss_before) / args.terminals
        looper = threading.Thread(target=loop)
        start = time.perf_counter()
        go.set()
        looper.start()
        client.join()
        elapsed = time.perf_counter() - start
        answered.set()
        looper.join()
        stored = gateway.outbox.depth()
        gateway.outbox.close()
    stop.set()
    rate = total / elapsed
    print(f"terminals connected                {args.terminals}")
    print(f"location reports                   {total:,} ({args.reports} per terminal, answered one by one)")
    print(f"decode alone (same frames)         {decode_rate:12,.0f} reports/s")
    print(f"endpoint: decoded, stored, answered {rate:10,.0f} reports/s   {rate / decode_rate:.2f}x decode alone")
    print(f"fixes in the outbox                {stored:12,} (the rest thinned by the track filter)")
    print(f"memory per connected terminal      {per_terminal_kb:12,.1f} kB")


if __name__ == "__main__":
    main()
