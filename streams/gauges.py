"""Gauges of state that no batch moves on its own: consumer lag, holds, cases.

A worker timer (``streams/app.py``) calls :func:`refresh` every few seconds. Each
source is read on its own: one that fails (the broker unreachable, Redis busy) is
logged and counted in ``antifraud_gauge_refresh_errors_total{source}`` and keeps
its last values, while the others still refresh. Every replica reports the same
figures (they read shared state), so dashboards take the ``max`` over instances.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from antifraud import metrics
from antifraud.case.service import CaseService
from antifraud.clock import utcnow
from antifraud.holds.service import HoldLedger
from antifraud.lag import LagReader

log = logging.getLogger(__name__)

INTERVAL_S = 5.0
"""How often the worker refreshes these gauges: well under Prometheus's 15 s scrape interval."""
OVERDUE_GRACE_S = 60.0
"""A held hold counts as overdue this long (plus the wall-clock lag) after its due time: the release
tick runs every second or so, and a hold due moments ago is not late yet."""


async def refresh_lag(reader: LagReader) -> None:
    for offsets in await reader.read():
        labels = {"topic": offsets.topic, "partition": str(offsets.partition)}
        metrics.CONSUMER_LAG.labels(**labels).set(offsets.lag)
        metrics.END_OFFSET.labels(**labels).set(offsets.end)
        if offsets.committed is not None:
            metrics.COMMITTED_OFFSET.labels(**labels).set(offsets.committed)


async def refresh_holds(ledger: HoldLedger, clock: Literal["event", "wall"], lag_s: float) -> None:
    """Holds by state, and held ones due in the next hour or overdue by the ledger's clock: the wall
    clock when it releases by it (``ANTIFRAUD_HOLD_CLOCK=wall``), else the event-time watermark, so a
    replay of old transfers does not read as thousands of overdue holds."""
    for state, count in (await ledger.counts()).items():
        metrics.HOLDS.labels(state=state).set(count)
    now = utcnow() if clock == "wall" else await ledger.watermark()
    if now is None:  # no transfer seen yet
        metrics.HOLDS_DUE_NEXT_HOUR.set(0)
        metrics.HOLDS_OVERDUE.set(0)
        return
    due_by_now = await ledger.due_within(0, since=now)
    metrics.HOLDS_DUE_NEXT_HOUR.set(await ledger.due_within(3600, since=now) - due_by_now)
    metrics.HOLDS_OVERDUE.set(await ledger.due_within(-(lag_s + OVERDUE_GRACE_S), since=now))


async def refresh_cases(cases: CaseService) -> None:
    for state, count in (await cases.counts()).items():
        metrics.CASES.labels(state=state).set(count)


async def refresh(sources: Mapping[str, Callable[[], Awaitable[None]]]) -> None:
    """Run every source's refresh; a failure is counted under its name and does not stop the rest."""
    for source, refresh_one in sources.items():
        errors = metrics.GAUGE_REFRESH_ERRORS.labels(source=source)  # exported at 0 from the first refresh on
        try:
            await refresh_one()
        except Exception as error:  # noqa: BLE001 - a timer that raised would stop the worker
            errors.inc()
            log.warning("gauge refresh of %s failed: %s", source, type(error).__name__)  # its text may quote data
