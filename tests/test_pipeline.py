"""The batch pipeline (pure: hand-written stages, no I/O): results independent of how the stream is cut
into batches, timers run in event-time order, a record a stage fails on isolated, outages not."""

import asyncio
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.events.models import CallRecord
from antifraud.state.store import Staged
from streams.pipeline import BatchPipeline, BatchResult, StageResult
from streams.records import Input, Item, Record, Timer
from streams.topics import INPUT_TOPICS

T0 = 1_772_400_000.0
DELAY = 30.0
TOPIC = INPUT_TOPICS["call_record"]


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


class ThirdCall:
    """Alerts on a caller's third call and sets a timer an hour later; fails on a call to 99999."""

    name = "third-call"
    kinds = frozenset({"call_record"})
    timer_kinds = frozenset({"follow"})

    def __init__(self) -> None:
        self.counts = Counts()
        self.stores = (self.counts,)
        self.followed: list[float] = []

    async def prefetch(self, inputs: Sequence[Input], timers: Sequence[Timer], bound: float) -> None:
        pass

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
                result.alerts.append(Alert.create(
                    detector="third_call", entity=Entity(kind="phone", value=call.caller), trigger=call.event_id,
                    window_start=call.event_time, window_end=call.event_time, severity="low", score=1.0,
                    reasons=[Reason(feature="calls", value=3, threshold=3)], evidence_event_ids=[call.event_id],
                    audience=[Audience(kind="police")]))
                result.timers.append(Timer(item.at + 3600, TOPIC, call.caller, "follow", "", f"f-{call.event_id}"))
        return result


def call(n: int, seconds: float, caller: str = "13800000001", callee: str = "13900000001") -> Input:
    event = CallRecord(event_id=f"c{n}", event_time=datetime.fromtimestamp(T0 + seconds, timezone.utc),
                       caller=caller, callee=callee, start=datetime.fromtimestamp(T0 + seconds, timezone.utc),
                       duration_s=5, cell_id="c1", imei="860000000000001")
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
        batch = calls[start:start + size]
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
