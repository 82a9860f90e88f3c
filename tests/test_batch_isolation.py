"""A record a detector stage fails on is found and dead-lettered; the rest of its batch is processed once
each in order, and an outage of Redis or the broker is waited out with the batch whole, dead-lettering
nothing. Pure batch logic: the stages and sinks are in memory."""

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from antifraud import metrics
from antifraud.alerts.models import Alert, Entity
from antifraud.events.models import CallRecord
from streams import batch
from streams.batch import DLQ_DETAIL, DLQ_OFFSET, DLQ_REASON, Outcome, Record, process_batch
from tests.test_alert_model import make_alert
from tests.test_event_models import record

TOPIC = "antifraud.call-records"
POISON = "poison-call"


class Captured:
    """A sink that keeps what it is sent (value and headers), acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict[str, bytes]]] = []

    async def send(self, *, key: bytes | None, value: bytes, headers: Any = None) -> "asyncio.Future[None]":
        self.sent.append((value, dict(headers or [])))
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked


class Stage:
    """Alerts on every call and stores its id at the flush; raises on the poison call (or always, ``error``)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.flushed: list[str] = []
        self.error = error

    async def __call__(self, events: Sequence[CallRecord]) -> Outcome:
        if self.error is not None:
            raise self.error
        if any(e.event_id == POISON for e in events):
            raise KeyError("13800138000")  # the message may carry personal data: it must not leak

        async def flush() -> None:
            self.flushed.extend(e.event_id for e in events)

        alerts: list[Alert] = [make_alert(entity=Entity(kind="phone", value=e.event_id)) for e in events]
        return Outcome(alerts=alerts, flush_state=flush)


def _sent(cause: Exception) -> ProducerSendError:
    """The broker's error as Faust's producer raises it."""
    error = ProducerSendError(f"Error while sending: {cause!r}")
    error.__cause__ = cause
    return error


def records(ids: Sequence[str]) -> list[Record]:
    return [Record(TOPIC, 3, 100 + n, b"k", record(CallRecord, event_id=event_id)) for n, event_id in enumerate(ids)]


def run(batch: list[Record], stage: Stage, dead: Captured, alerts: Captured) -> Outcome:
    return asyncio.run(process_batch(batch, CallRecord, [stage], alerts_sink=alerts, dead_letter_sink=dead))


@pytest.mark.parametrize("where", [0, 3, 6])
def test_the_record_a_stage_fails_on_is_dead_lettered_and_the_rest_processed_once_in_order(where: int) -> None:
    ids = [f"call-{n}" for n in range(7)]
    ids[where] = POISON
    batch = records(ids)
    stage, dead, alerts = Stage(), Captured(), Captured()
    before = metrics.DEAD_LETTERS.labels(topic=TOPIC, reason="processing_failed")._value.get()

    outcome = run(batch, stage, dead, alerts)

    good = [i for i in ids if i != POISON]
    assert stage.flushed == good, "every other record flushed exactly once, in order"
    assert len(outcome.alerts) == len(good) and len({v for v, _ in alerts.sent}) == len(good)
    [(value, headers)] = dead.sent
    assert value == batch[where].value, "the original bytes"
    assert headers[DLQ_REASON] == b"processing_failed" and headers[DLQ_OFFSET] == str(100 + where).encode()
    detail = headers[DLQ_DETAIL].decode()
    assert detail.startswith("KeyError at test_batch_isolation.py:") and "13800138000" not in detail
    assert metrics.DEAD_LETTERS.labels(topic=TOPIC, reason="processing_failed")._value.get() == before + 1


def test_an_outage_is_waited_out_with_the_batch_whole_and_dead_letters_nothing(monkeypatch: pytest.MonkeyPatch
                                                                              ) -> None:
    class Outage(Stage):
        """Redis refuses the first two tries."""

        failures = 2

        async def __call__(self, events: Sequence[CallRecord]) -> Outcome:
            if self.failures:
                self.failures -= 1
                raise RedisConnectionError("Connection refused")
            return await super().__call__(events)

    monkeypatch.setattr(batch, "RETRY_FIRST_SECONDS", 0.01)
    stage, dead, alerts = Outage(), Captured(), Captured()
    retries = metrics.BATCH_RETRIES.labels(topic=TOPIC)
    before = retries._value.get()
    run(records(["call-0", "call-1"]), stage, dead, alerts)
    assert stage.flushed == ["call-0", "call-1"] and dead.sent == [] and len(alerts.sent) == 2
    assert retries._value.get() == before + 2


def test_an_error_that_is_not_an_outage_is_not_retried() -> None:
    async def broken() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        asyncio.run(batch.until_through(broken, TOPIC))


@pytest.mark.parametrize(("error", "outage"), [
    (RedisConnectionError("Connection refused"), True),
    (RedisTimeoutError("Timeout reading from socket"), True),
    (ReadOnlyError("You can't write against a read only replica."), True),
    (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
    (DataError("Invalid input of type: 'NoneType'"), False),
    (_sent(KafkaConnectionError("connection refused")), True),
    (_sent(KafkaTimeoutError("Failed to update metadata")), True),
    (_sent(MessageSizeTooLargeError()), False),
    (TimeoutError(), True),
    (KeyError("x"), False),
])
def test_only_redis_the_broker_or_the_network_failing_is_an_outage(error: Exception, outage: bool) -> None:
    assert batch.is_outage(error) is outage


def test_a_redis_error_caused_by_the_record_is_dead_lettered_not_retried() -> None:
    class Wrongtype(Stage):
        async def __call__(self, events: Sequence[CallRecord]) -> Outcome:
            if any(e.event_id == POISON for e in events):
                raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
            return await super().__call__(events)

    stage, dead, alerts = Wrongtype(), Captured(), Captured()
    run(records(["call-0", POISON, "call-2"]), stage, dead, alerts)
    assert stage.flushed == ["call-0", "call-2"]
    assert [h[DLQ_DETAIL].decode().split(" at ")[0] for _, h in dead.sent] == ["ResponseError"]


def test_when_every_record_fails_alone_the_partition_stops_instead_of_dead_lettering_the_stream(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment whose stage fails on every call but the first: a few dead letters, then the topic waits,
    and its retries (which get the first call through again) dead-letter nothing more."""

    class BrokenButTheFirst(Stage):
        async def __call__(self, events: Sequence[CallRecord]) -> Outcome:
            if any(e.event_id != "call-0" for e in events):
                raise KeyError("threshold")
            return await super().__call__(events)

    monkeypatch.setattr(batch, "SYSTEMIC_AFTER", 3)
    monkeypatch.setattr(batch, "RETRY_FIRST_SECONDS", 0.01)
    monkeypatch.setattr(batch, "_failing_in_a_row", {})
    stage, dead, alerts = BrokenButTheFirst(), Captured(), Captured()
    retries = metrics.BATCH_RETRIES.labels(topic=TOPIC)
    before = retries._value.get()

    async def stalls() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(process_batch(records([f"call-{n}" for n in range(8)]), CallRecord, [stage],
                                                 alerts_sink=alerts, dead_letter_sink=dead), timeout=0.5)

    asyncio.run(stalls())
    assert retries._value.get() > before + 1, "retried, not given up"
    assert len(dead.sent) == 3, "the first few are dead-lettered once, then the topic waits"
    assert stage.flushed == ["call-0"]


def test_a_batch_that_fails_only_together_is_processed_record_by_record() -> None:
    class Together(Stage):
        async def __call__(self, events: Sequence[CallRecord]) -> Outcome:
            if len(events) > 1:
                raise ValueError("only fails in company")
            return await super().__call__(events)

    stage, dead, alerts = Together(), Captured(), Captured()
    run(records(["call-0", "call-1", "call-2"]), stage, dead, alerts)
    assert stage.flushed == ["call-0", "call-1", "call-2"] and dead.sent == []
