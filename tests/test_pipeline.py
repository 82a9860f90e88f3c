"""The batch pipeline (pure: hand-written stages, no I/O): results independent of how the stream is cut
into batches, timers run in event-time order, a record a stage fails on isolated, outages not."""

import asyncio
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from faust.exceptions import ProducerSendError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import CallRecord, Event
from antifraud.state.store import Staged
from streams import pipeline as pipeline_module
from streams.pipeline import BatchPipeline, BatchResult, StageResult, SystemicFailure, is_outage
from streams.records import Input, Item, Record, Timer
from streams.topics import INPUT_TOPICS

T0 = 1_772_400_000.0
DELAY = 30.0
TOPIC = INPUT_TOPICS["call_record"]


def event_alert(detector: str, phone: str, event: Event, feature: str, value: float) -> Alert:
    """A test stage's alert on ``phone``, triggered by ``event``: its feature reached ``value``."""
    return Alert.create(
        detector=detector,
        entity=Entity(kind="phone", value=phone),
        trigger=event.event_id,
        window_start=event.event_time,
        window_end=event.event_time,
        severity="low",
        score=1.0,
        reasons=[Reason(feature=feature, value=value, threshold=value)],
        evidence_event_ids=[event.event_id],
        audience=[Audience(kind="police")],
    )


class Counts:
    """A store in memory: calls per caller (the pipeline applies the stage's changes between pieces)."""

    def __init__(self) -> None:
        self.state: dict[str, int] = {}
        self.staged: dict[str, int] = {}

    def apply(self, change: Any) -> None:
        key, value = change
        self.staged[key] = value

    def get(self, key: str) -> int:
        return self.staged.get(key, self.state.get(key, 0))

    def queue(self, pipe: Any) -> None:
        pass

    def committed(self) -> None:
        self.state.update(self.staged)
        self.staged.clear()

    def discard(self) -> None:
        self.staged.clear()

    def forget(self) -> None:
        self.discard()


class NothingToRead:
    """A stage whose state is all in memory: nothing to read before a batch."""

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        pass


class ThirdCall(NothingToRead):
    """Alerts on a caller's third call and sets a timer an hour later; fails on a call to 99999."""

    name = "third-call"
    kinds = frozenset({"call_record"})
    timer_kinds = frozenset({"follow"})

    def __init__(self) -> None:
        self.counts = Counts()
        self.stores = (self.counts,)
        self.followed: list[float] = []

    async def run(self, items: Sequence[Item]) -> StageResult:
        result = StageResult()
        seen: dict[str, int] = {}
        for item in items:
            if isinstance(item, Timer):
                self.followed.append(item.at)
                continue
            call = item.event
            if call.callee == "99999":
                raise ValueError("a call nothing expected")
            count = seen.get(call.caller, self.counts.get(call.caller)) + 1
            seen[call.caller] = count
            result.changes.append(Staged(self.counts, (call.caller, count)))
            if count == 3:
                result.alerts.append(event_alert("third_call", call.caller, call, "calls", 3))
                result.timers.append(Timer(item.at + 3600, TOPIC, call.caller, "follow", "", f"f-{call.event_id}"))
        return result


def call(n: int, seconds: float, caller: str = "13800000001", callee: str = "13900000001") -> Input:
    event = CallRecord(
        event_id=f"c{n}",
        event_time=datetime.fromtimestamp(T0 + seconds, timezone.utc),
        caller=caller,
        callee=callee,
        start=datetime.fromtimestamp(T0 + seconds, timezone.utc),
        duration_s=5,
        cell_id="c1",
        imei="860000000000001",
    )
    return Input.of(event, Record(TOPIC, 0, n, caller.encode(), b"{}"))


def pipeline(stage: ThirdCall) -> BatchPipeline:
    return BatchPipeline([stage], DELAY, lambda timer: (TOPIC, 0))


def run_in_batches(calls: list[Input], size: int) -> tuple[list[str], list[BatchResult]]:
    stage = ThirdCall()
    pipe = pipeline(stage)
    ids: list[str] = []
    results: list[BatchResult] = []
    stored: list[Timer] = []
    since = -math.inf
    for start in range(0, len(calls), size):
        batch = calls[start : start + size]
        bound = calls[start + size].at if start + size < len(calls) else math.nextafter(batch[-1].at, math.inf)
        due = [t for t in stored if t.at < bound]
        result = asyncio.run(pipe.run(batch, due, bound, since))
        stage.counts.committed()
        stored = [t for t in stored if t not in due] + result.timers_out
        ids += [a.alert_id for a in result.outcome.alerts]
        results.append(result)
        since = bound
    return ids, results


CALLS = [call(n, 20 * n, caller=f"1380000000{n % 3}") for n in range(12)]


@pytest.mark.parametrize("size", [1, 5, 7, len(CALLS)])
def test_the_same_alerts_however_the_stream_is_cut_into_batches(size: int) -> None:
    ids, _ = run_in_batches(CALLS, size)
    whole, _ = run_in_batches(CALLS, len(CALLS))
    assert len(whole) == 3 and ids == whole


def test_a_timer_due_before_the_bound_runs_in_the_batch_and_a_later_one_is_stored() -> None:
    stage = ThirdCall()
    calls = [call(n, 10 * n) for n in range(3)]
    later = asyncio.run(pipeline(stage).run(calls, [], T0 + 100))
    assert [t.at for t in later.timers_out] == [T0 + 20 + 3600] and stage.followed == []
    stage = ThirdCall()
    within = asyncio.run(pipeline(stage).run(calls, [], T0 + 7200))
    assert within.timers_out == [] and stage.followed == [T0 + 20 + 3600]


def test_a_record_a_stage_fails_on_is_dead_lettered_alone_and_the_rest_runs() -> None:
    calls = [call(0, 0), call(1, 10), call(2, 20, callee="99999"), call(3, 30), call(4, 40)]
    result = asyncio.run(pipeline(ThirdCall()).run(calls, [], T0 + 100))
    [dead] = result.dead_letters
    assert (dead.record.offset, dead.error.kind) == (2, "processing_failed")
    assert "ValueError" in dead.error.detail and "99999" not in dead.error.detail
    assert [a.trigger for a in result.outcome.alerts] == ["c3"], "the third call that went through alerts"
    assert result.offsets == {(TOPIC, 0): 5}, "the offsets move past every record, the failed one too"


def test_an_outage_fails_the_batch_whole() -> None:
    class Down(ThirdCall):
        async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
            raise RedisConnectionError("redis away")

    with pytest.raises(RedisConnectionError):
        asyncio.run(pipeline(Down()).run([call(0, 0)], [], T0 + 100))


def test_a_record_older_than_the_last_bound_is_late_and_still_processed() -> None:
    result = asyncio.run(pipeline(ThirdCall()).run([call(0, 0)], [], T0 + 100, since=T0 + 50))
    assert result.late == {TOPIC: 1} and result.consumed == {TOPIC: 1}


# -- what one entity tells another, the delay later -------------------------------------------------


class Tells(NothingToRead):
    """A call tells its callee, ``DELAY`` later (a timer sent to the callee's entity); a caller who has been
    called twice before it calls alerts. The result depends on the delay being kept exactly, whatever the
    batches."""

    name = "tells"
    kinds = frozenset({"call_record"})
    timer_kinds = frozenset({"called"})

    def __init__(self) -> None:
        self.called = Counts()
        self.stores = (self.called,)

    async def run(self, items: Sequence[Item]) -> StageResult:
        result = StageResult()
        seen: dict[str, int] = {}
        for item in items:
            if isinstance(item, Timer):
                count = seen.get(item.key, self.called.get(item.key)) + 1
                seen[item.key] = count
                result.changes.append(Staged(self.called, (item.key, count)))
                continue
            call = item.event
            if seen.get(call.caller, self.called.get(call.caller)) >= 2:
                result.alerts.append(event_alert("called_back", call.caller, call, "called", 2))
            result.timers.append(
                Timer(item.at + DELAY, TOPIC, call.callee, "called", call.caller, f"called-{call.event_id}")
            )
        return result


NUMBERS = [f"1380000010{n}" for n in range(4)]
CHAIN = [
    call(n, 10 * n + (5 if n % 5 == 0 else 0), caller=NUMBERS[n % 4], callee=NUMBERS[(n * 3 + 1) % 4])
    for n in range(23)
]


def run_cut(calls: list[Input], size: int, end: float) -> tuple[list[str], list[Timer], list[Timer]]:
    """``calls`` through a :class:`Tells` stage in batches of ``size`` (bounds cut as the merge cuts them, the
    last at ``end``), timers stored between batches as the checkpoint stores them: the alert ids, the stored
    timers run, and those left at the end."""
    stage = Tells()
    pipe = BatchPipeline([stage], DELAY, lambda timer: (TOPIC, 0))
    ids: list[str] = []
    ran: list[Timer] = []
    stored: list[Timer] = []
    since = -math.inf
    for start in range(0, len(calls), size):
        batch = calls[start : start + size]
        bound = calls[start + size].at if start + size < len(calls) else end
        due = [t for t in stored if t.at < bound]
        result = asyncio.run(pipe.run(batch, due, bound, since))
        stage.called.committed()
        assert result.timers_done == due
        ran += due
        stored = [t for t in stored if t not in due] + result.timers_out
        ids += [a.alert_id for a in result.outcome.alerts]
        since = bound
    return ids, ran, stored


@pytest.mark.parametrize("size", [1, 7, len(CHAIN)])
def test_what_an_entity_is_told_the_delay_later_does_not_depend_on_the_batches(size: int) -> None:
    end = CHAIN[-1].at + 1
    ids, _, left = run_cut(CHAIN, size, end)
    whole, _, whole_left = run_cut(CHAIN, len(CHAIN), end)
    assert len(whole) >= 3, "the chain of calls makes callers that were called twice call back"
    assert ids == whole
    assert sorted(t.timer_id for t in left) == sorted(t.timer_id for t in whole_left)
    assert all(t.at >= end for t in left), "only timers due at or after the last bound are left"


def test_a_timer_told_to_an_entity_this_worker_does_not_own_is_stored_for_its_owner() -> None:
    stage = Tells()
    mine, theirs = CHAIN[0].event.callee, CHAIN[1].event.callee
    owns = {mine: (TOPIC, 0)}
    pipe = BatchPipeline([stage], DELAY, lambda timer: owns.get(timer.key))
    result = asyncio.run(pipe.run(CHAIN[:2], [], T0 + 3600))
    assert [t.key for t in result.timers_out] == [theirs], "due before the bound, but another worker's entity"
    assert stage.called.staged == {mine: 1}, "the owned one ran in the batch"


class Pieces(NothingToRead):
    """Keeps the items of each run: the pieces the pipeline cut."""

    name = "pieces"
    kinds = frozenset({"call_record"})
    timer_kinds: frozenset[str] = frozenset()
    stores = ()

    def __init__(self) -> None:
        self.runs: list[list[float]] = []

    async def run(self, items: Sequence[Item]) -> StageResult:
        self.runs.append([item.at - T0 for item in items])
        return StageResult()


def test_a_batch_runs_in_pieces_no_longer_than_the_delay() -> None:
    stage = Pieces()
    calls = [call(n, s) for n, s in enumerate([0, 10, 29, 30, 45, 59.5, 95, 100])]
    asyncio.run(BatchPipeline([stage], DELAY, lambda timer: None).run(calls, [], T0 + 110))
    assert stage.runs == [[0, 10, 29], [30, 45, 59.5], [95, 100]]


def test_a_batch_with_a_record_at_or_past_its_bound_is_refused() -> None:
    """Its pieces could never reach that record: the caller cut the batch wrong, and says so."""
    calls = [call(n, s) for n, s in enumerate([0, 10, 50])]
    with pytest.raises(ValueError, match="older than its bound"):
        asyncio.run(BatchPipeline([Pieces()], DELAY, lambda timer: None).run(calls, [], T0 + 50))


def test_the_cross_entity_delay_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BatchPipeline([ThirdCall()], 0, lambda timer: None)


def test_two_stages_cannot_run_timers_of_one_kind() -> None:
    with pytest.raises(ValueError):
        BatchPipeline([ThirdCall(), ThirdCall()], DELAY, lambda timer: None)


# -- failures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", [0, 3, 6])
def test_the_record_a_stage_fails_on_is_the_only_one_dead_lettered_wherever_it_is(where: int) -> None:
    calls = [call(n, 10 * n, callee="99999" if n == where else "13900000001") for n in range(7)]
    stage = ThirdCall()
    result = asyncio.run(pipeline(stage).run(calls, [], T0 + 100))
    assert [(d.record.offset, d.error.kind) for d in result.dead_letters] == [(where, "processing_failed")]
    assert result.dead_letters[0].record == calls[where].record, "the original record, its bytes and position"
    assert result.dead_letters[0].error.detail.startswith("ValueError at test_pipeline.py:")
    assert stage.counts.staged == {"13800000001": 6}, "every other call counted once, the failed one not"
    assert result.offsets == {(TOPIC, 0): 7} and result.consumed == {TOPIC: 7}


def test_a_redis_error_the_data_causes_is_dead_lettered_not_retried() -> None:
    class Wrongtype(ThirdCall):
        async def run(self, items: Sequence[Item]) -> StageResult:
            if any(isinstance(i, Input) and i.event.callee == "99999" for i in items):
                raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
            return await super().run(items)

    calls = [call(0, 0), call(1, 10, callee="99999"), call(2, 20)]
    result = asyncio.run(pipeline(Wrongtype()).run(calls, [], T0 + 100))
    assert [(d.record.offset, d.error.detail.split(" at ")[0]) for d in result.dead_letters] == [(1, "ResponseError")]


def test_a_batch_that_fails_only_once_it_reaches_a_record_dead_letters_that_record_and_keeps_what_came_before() -> None:
    class FromTheThird(ThirdCall):
        """Fails on any piece that holds the call at offset 2 or later (a state the data leads to)."""

        async def run(self, items: Sequence[Item]) -> StageResult:
            if any(isinstance(i, Input) and i.record.offset == 2 for i in items):
                raise KeyError("13800138000")
            return await super().run(items)

    calls = [call(n, 10 * n) for n in range(5)]
    result = asyncio.run(pipeline(FromTheThird()).run(calls, [], T0 + 100))
    [dead] = result.dead_letters
    assert dead.record.offset == 2 and "13800138000" not in dead.error.detail
    assert [a.trigger for a in result.outcome.alerts] == ["c3"]


def test_when_record_after_record_fails_alone_the_fault_is_systemic(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment whose stage fails on every call but the first: a few are isolated, then the batch fails
    whole as an outage does (retried, alerting) instead of dead-lettering the stream."""

    class BrokenButTheFirst(ThirdCall):
        async def run(self, items: Sequence[Item]) -> StageResult:
            if any(isinstance(i, Input) and i.record.offset > 0 for i in items):
                raise KeyError("threshold")
            return await super().run(items)

    monkeypatch.setattr(pipeline_module, "SYSTEMIC_AFTER", 3)
    pipe = pipeline(BrokenButTheFirst())
    with pytest.raises(SystemicFailure) as raised:
        asyncio.run(pipe.run([call(n, 10 * n) for n in range(8)], [], T0 + 100))
    assert is_outage(raised.value), "waited out and retried, not isolated"
    assert "KeyError" in str(raised.value) and "threshold" not in str(raised.value)
    with pytest.raises(SystemicFailure):  # tried again, it stops at once: no more dead letters
        asyncio.run(pipe.run([call(n, 10 * n) for n in range(8)], [], T0 + 100))


def test_a_batch_that_goes_through_resets_the_count_of_failures_in_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "SYSTEMIC_AFTER", 3)
    pipe = pipeline(ThirdCall())
    for batch in range(3):
        calls = [call(10 * batch + n, 100 * batch + 10 * n, callee="99999" if n else "13900000001") for n in range(3)]
        result = asyncio.run(pipe.run(calls, [], T0 + 100 * batch + 50))
        assert len(result.dead_letters) == 2, "two failures, then a record that went through"


def test_a_stage_failing_on_a_stored_timer_alone_is_systemic() -> None:
    class FailsOnTimers(ThirdCall):
        async def run(self, items: Sequence[Item]) -> StageResult:
            if any(isinstance(i, Timer) for i in items):
                raise IndexError("no record is to blame")
            return await super().run(items)

    timer = Timer(T0 + 5, TOPIC, "13800000001", "follow", "", "f-x")
    with pytest.raises(SystemicFailure):
        asyncio.run(pipeline(FailsOnTimers()).run([], [timer], T0 + 100))
    with pytest.raises(SystemicFailure):
        asyncio.run(pipeline(FailsOnTimers()).run([call(0, 0), call(1, 10)], [timer], T0 + 100))


def _sent(cause: Exception) -> ProducerSendError:
    """A broker error as Faust's producer raises it (the alerts agent produces its dead letters through Faust)."""
    error = ProducerSendError(f"Error while sending: {cause!r}")
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (RedisConnectionError("Connection refused"), True),
        (RedisTimeoutError("Timeout reading from socket"), True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"), False),
        (DataError("Invalid input of type: 'NoneType'"), False),
        (KafkaConnectionError("connection refused"), True),
        (KafkaTimeoutError("Failed to update metadata"), True),
        (MessageSizeTooLargeError(), False),
        (TimeoutError(), True),
        (ConnectionRefusedError(), True),
        (SystemicFailure("every record fails alone"), True),
        (KeyError("x"), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_redis_the_broker_or_the_network_failing_is_an_outage(error: Exception, outage: bool) -> None:
    assert is_outage(error) is outage


@pytest.mark.parametrize("cause", [KafkaConnectionError("connection refused"), KafkaTimeoutError("metadata")])
def test_a_broker_error_raised_through_faust_is_an_outage(cause: Exception) -> None:
    assert is_outage(_sent(cause))


def test_a_message_too_large_raised_through_faust_is_not_an_outage() -> None:
    assert not is_outage(_sent(MessageSizeTooLargeError()))
