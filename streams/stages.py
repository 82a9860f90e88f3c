"""Detector stages: each binds a pure detector to its Redis state store.

``build_stages`` is the one place that says which detectors consume which event
kind; the worker (``streams/app.py``) and the offline runner
(``streams/offline.py``) both use it.
"""

from collections.abc import Sequence

from redis.asyncio import Redis

from antifraud.events.models import CallRecord
from antifraud.state.call_fanout import CallFanoutStore
from antifraud.thresholds import CallFanoutThresholds, Thresholds
from detectors import call_fanout
from streams.batch import Outcome, Stage


class CallFanoutStage:
    def __init__(self, store: CallFanoutStore, limits: CallFanoutThresholds) -> None:
        self.store = store
        self.limits = limits

    async def __call__(self, calls: Sequence[CallRecord]) -> Outcome:
        prior = await self.store.load({call.caller for call in calls})
        result = call_fanout.detect(calls, prior, self.limits)
        return Outcome(alerts=result.alerts, flush_state=lambda: self.store.apply(result.changes))


def build_stages(redis: Redis, thresholds: Thresholds) -> dict[str, list[Stage]]:
    """Event kind -> the detector stages that consume it, in the order they run."""
    fanout = thresholds.call_fanout
    return {
        "call_record": [CallFanoutStage(CallFanoutStore(redis, window_seconds=fanout.window_seconds), fanout)],
    }

