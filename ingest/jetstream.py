"""Where the clustered broker keeps the gateways' messages, and ingest's durable consumer on them.

NATS's MQTT listener stores every QoS 1 PUBLISH in the JetStream stream `$MQTT_msgs` under the subject
`$MQTT.msgs.<subject>` (topic `a/b/c` → subject `a.b.c`) and sends the PUBACK only once that store is
acknowledged by the stream's replicas (server/mqtt.go, mqttInitiateMsgDelivery / mqttProcessPub). The
stream has interest retention: a message no consumer is interested in is removed at once, and one that
consumers are interested in goes when all of them acknowledged it. So ingest's durable consumer must
exist before the first gateway publishes, or the first messages are PUBACKed and dropped:
`cargotrace broker init` creates the stream (as the server would, if it does not exist yet) and the
consumer. See docs/ingest.md for the references.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

from common.contract import NATS_SUBJECTS
from common.failures import RETRY_LOG_EVERY_S, Failure, cause, unreachable

log = logging.getLogger(__name__)

STREAM = "$MQTT_msgs"  # the server's name, mqttStreamName
STORED_PREFIX = "$MQTT.msgs."  # mqttStreamSubjectPrefix
CONSUMER = "cargotrace-ingest"
FILTER = STORED_PREFIX + NATS_SUBJECTS
# Messages out to all workers together and not yet acknowledged; past it the cluster sends no more.
MAX_ACK_PENDING = 20_000
# JetStream's error codes of a cluster still forming: no peers for placement yet, temporarily unavailable
FORMING = {10005, 10008}
REMEDY = "check CARGOTRACE_BROKER_URL and that at least two of the three nodes run"


def servers(broker_url: str) -> list[str]:
    """The node URLs of CARGOTRACE_BROKER_URL (comma-separated nats:// or tls:// URLs)."""
    return [u.strip() for u in broker_url.split(",") if u.strip()]


async def connect(broker_url: str, attempts: int = 2, **options: object) -> nats.NATS:
    """A connection to whichever node answers first, each tried `attempts` more times (-1: for ever, saying
    why at most every 30 s); a Failure naming the nodes and the last cause when none does."""
    last: list[Exception] = []
    logged_at = -RETRY_LOG_EVERY_S

    async def failed(exc: Exception) -> None:  # nats-py's default logs a traceback every attempt
        nonlocal logged_at
        last[:] = [exc]
        if attempts < 0 and time.monotonic() - logged_at >= RETRY_LOG_EVERY_S:
            logged_at = time.monotonic()
            log.warning("%s; retrying", unreachable("a NATS node", broker_url, cause(exc), REMEDY))

    try:
        return await nats.connect(servers(broker_url), connect_timeout=2, reconnect_time_wait=0.5,  # type: ignore[arg-type]
                                  max_reconnect_attempts=attempts, error_cb=failed, **options)
    except (OSError, nats.errors.NoServersError, nats.errors.TimeoutError) as exc:
        raise Failure(unreachable("the NATS cluster", broker_url, cause((last or [exc])[0]), REMEDY)) from None


def stream_config(replicas: int) -> api.StreamConfig:
    """`$MQTT_msgs` as the server makes it (mqttCreateAccountSessionManager)."""
    return api.StreamConfig(name=STREAM, subjects=[STORED_PREFIX + ">"], storage=api.StorageType.FILE,
                            retention=api.RetentionPolicy.INTEREST, num_replicas=replicas)


def consumer_config(ack_wait_s: float) -> api.ConsumerConfig:
    # Replicas are the stream's (no override: the server's notes call overrides on interest streams
    # problematic); never given up on (max_deliver unset), never expiring (a durable without
    # inactive_threshold).
    return api.ConsumerConfig(durable_name=CONSUMER, filter_subject=FILTER, deliver_policy=api.DeliverPolicy.ALL,
                              ack_policy=api.AckPolicy.EXPLICIT, ack_wait=ack_wait_s,
                              max_ack_pending=MAX_ACK_PENDING)


@dataclass(frozen=True)
class Initialised:
    stream_created: bool
    consumer_created: bool
    replicas: int
    waiting: int  # messages the consumer holds for ingest

    def __str__(self) -> str:
        return (f"stream {STREAM} {'created' if self.stream_created else 'found'} (interest retention, "
                f"{self.replicas} replicas); consumer {CONSUMER} {'created' if self.consumer_created else 'kept'}, "
                f"{self.waiting} messages waiting for ingest")


async def consumer_exists(js: JetStreamContext) -> bool:
    """True when ingest's consumer is there; False when the cluster does not answer (ask again); a Failure
    saying what to run when it answers that there is none."""
    try:
        await js.consumer_info(STREAM, CONSUMER)
        return True
    except (TimeoutError, nats.js.errors.ServiceUnavailableError):
        return False
    except nats.js.errors.NotFoundError:
        raise Failure(f"the NATS cluster has no consumer {CONSUMER} on {STREAM}: run `cargotrace broker init` "
                      f"(before the gateways publish: until it exists, what they send is dropped)") from None


async def init(broker_url: str, replicas: int, ack_wait_s: float, patience_s: float = 60.0) -> Initialised:
    """Create the stream if the server has not, and ingest's consumer; changes nothing that exists. A cluster
    still forming (no leader yet, peers not yet known for placement) is asked again for `patience_s`."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return await _init(broker_url, replicas, ack_wait_s)
        except (TimeoutError, nats.js.errors.ServiceUnavailableError) as exc:
            if time.monotonic() > deadline:
                raise Failure(f"the NATS cluster at {broker_url} does not answer JetStream requests ({cause(exc)}): "
                              f"{REMEDY} (a cluster needs two of three nodes to elect its leaders)") from None
        except nats.js.errors.APIError as exc:
            if exc.err_code not in FORMING or time.monotonic() > deadline:
                raise Failure(f"the NATS cluster refused: {exc.description} (code {exc.err_code}): {REMEDY}") from None
        await asyncio.sleep(1)


async def _init(broker_url: str, replicas: int, ack_wait_s: float) -> Initialised:
    nc = await connect(broker_url)
    try:
        js = nc.jetstream(timeout=10)
        try:
            info = await js.stream_info(STREAM)
            stream_created = False
        except nats.js.errors.NotFoundError:
            info = await js.add_stream(stream_config(replicas))
            stream_created = True
        if info.config.retention != api.RetentionPolicy.INTEREST:
            raise Failure(f"stream {STREAM} has {info.config.retention} retention, not interest: it was not made "
                          f"by a NATS MQTT listener; remove it (nats stream rm) and run broker init again")
        try:
            consumer = await js.consumer_info(STREAM, CONSUMER)
            consumer_created = False
        except nats.js.errors.NotFoundError:
            consumer = await js.add_consumer(STREAM, consumer_config(ack_wait_s))
            consumer_created = True
        return Initialised(stream_created, consumer_created, info.config.num_replicas or 1,
                           consumer.num_pending + consumer.num_ack_pending)
    finally:
        await nc.close()
