"""Detector stages: each binds a pure detector to its Redis state store."""

from collections.abc import Sequence

from antifraud.state.call_fanout import CallFanoutStore
from antifraud.events.models import CallRecord
from antifraud.thresholds import CallFanoutThresholds
from detectors import call_fanout
from streams.batch import Outcome


class CallFanoutStage:
    def __init__(self, store: CallFanoutStore, limits: CallFanoutThresholds) -> None:
        self.store = store
        self.limits = limits

    async def __call__(self, calls: Sequence[CallRecord]) -> Outcome:
        prior = await self.store.load({call.caller for call in calls})
        result = call_fanout.detect(calls, prior, self.limits)
        return Outcome(alerts=result.alerts, flush_state=lambda: self.store.apply(result.changes))
