"""Gateway throughput on one core: raw reads through decode → smoothing → outbox → publish (QoS 1,
until every PUBACK), against decoding alone measured in the same run.

    python -m bench.gateway [--tags 2000] [--reads-per-tag 20] [--broker mqtt://127.0.0.1:1883]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_drivers.rfid import decoder_for
from device_drivers.rfid import mercury as enc
from firmware_configs.profile import GatewayProfile
from gateway.runner import Gateway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--reads-per-tag", type=int, default=20)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    args = parser.parse_args()

    frames = [enc.tag_record_frame(f"3074257BF7194E40{t:08X}", 1 + r % 2, -40 - r % 30)
              for r in range(args.reads_per_tag) for t in range(args.tags)]
    blob = b"".join(frames)
    raw = len(frames)

    start = time.perf_counter()
    decoder = decoder_for("thingmagic-mercury", "door-03")
    reads = [r for i in range(0, len(blob), 4096) for r in decoder.feed(blob[i:i + 4096])]
    decode_s = time.perf_counter() - start
    assert len(reads) == raw

    with tempfile.TemporaryDirectory() as folder:
        gateway_id = f"bench-{uuid.uuid4().hex[:8]}"
        profile = GatewayProfile.model_validate({
            "gateway": {"id": gateway_id, "broker": args.broker, "outbox": str(Path(folder) / "outbox.sqlite")},
            "readers": [{"name": "door-03", "protocol": "thingmagic-mercury", "port": "loop://",
                         "antennas": [{"port": 1, "read_point": "wh-sh1/door-03", "side": "outer"},
                                      {"port": 2, "read_point": "wh-sh1/door-03", "side": "inner"}]}]})
        gateway = Gateway(profile)
        gateway.publisher.start()
        gateway.publisher.connected.wait(10)

        start = time.perf_counter()
        decoder = decoder_for("thingmagic-mercury", "door-03")
        for i in range(0, len(blob), 4096):
            for read in decoder.feed(blob[i:i + 4096]):
                gateway._take("door-03", read, [], read.read_at)
        smoothed_s = time.perf_counter() - start
        # Every passage ends: what the loop does when the tags leave the field.
        observations = gateway.smoother.due(datetime.now(UTC) + timedelta(hours=1))
        t0 = time.perf_counter()
        gateway.outbox.append_many([("rfid", o, False) for o in observations])
        outbox_s = time.perf_counter() - t0
        while gateway.outbox.depth():
            gateway.publisher.pump()
            time.sleep(0.001)
        total_s = time.perf_counter() - start
        gateway.publisher.stop()

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"raw reads              {raw:,} ({args.tags:,} tags × {args.reads_per_tag} reads)")
    print(f"decode alone           {raw / decode_s:12,.0f} raw reads/s")
    print(f"decode + smoothing     {raw / smoothed_s:12,.0f} raw reads/s")
    print(f"end to end (PUBACKed)  {raw / total_s:12,.0f} raw reads/s   time vs decode alone {total_s / decode_s:.2f}x")
    print(f"outbox append          {outbox_s / len(observations) * 1e6:12,.1f} µs per event ({len(observations):,} "
          f"observations in one transaction)")
    print(f"peak RSS               {rss_mb:12,.1f} MB")


if __name__ == "__main__":
    main()
