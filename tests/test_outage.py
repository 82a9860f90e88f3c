"""Redis going away and coming back under a running worker: the batch it was on is retried (its offsets
wait) until Redis answers, then the worker carries on, without a restart and without dead-lettering
anything for the outage."""

from collections.abc import Callable
from datetime import timedelta

from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from streams import topics
from tests.conftest import wait_for
from tests.kafka_helpers import read_all
from tests.redis_helpers import AofRedis, aof_redis  # noqa: F401 - the fixture
from tests.test_case_durability import stack  # noqa: F401 - the fixture: the broker with this test's Redis
from tests.test_holds import T0, hold_id_for
from tests.test_holds_integration import read_ledger, transfers
from tests.test_pipeline_integration import produce, ready

TRANSFERS = topics.INPUT_TOPICS["bank_transfer"]


def input_retries(worker: WorkerProcess) -> float:
    """Retries of the input loop's steps (all but the alerts agent's, labelled by its topic)."""
    samples = worker.scrape()
    return metric_sum(samples, "antifraud_batch_retries_total") - metric_sum(
        samples, "antifraud_batch_retries_total", topic=topics.ALERTS
    )


def test_a_redis_outage_delays_a_batch_and_loses_nothing(
    stack: Endpoints,
    aof_redis: AofRedis,
    start_worker: Callable[..., WorkerProcess],  # noqa: F811
) -> None:
    first, during, after = transfers("outage", T0, 3, timedelta(minutes=1))
    ids = {t.event_id: hold_id_for(t.event_id) for t in (first, during, after)}
    worker = ready(start_worker, stack)
    produce(stack, [first])
    wait_for(
        lambda: read_ledger(stack, {ids[first.event_id]}).states[ids[first.event_id]] == "held", what="the first hold"
    )

    aof_redis.crash()
    produce(stack, [during])
    # The input loop waits on Redis (reading the batch's timers, writing its checkpoint) and retries.
    wait_for(lambda: input_retries(worker) >= 2, what="the batch retried")
    consumed = metric_sum(worker.scrape(), "antifraud_events_consumed_total", topic=TRANSFERS)
    assert consumed == 1, "a record counts as consumed once its batch is committed"
    aof_redis.start()

    produce(stack, [after])
    wait_for(
        lambda: set(read_ledger(stack, set(ids.values())).states.values()) == {"held"},
        timeout=90,
        what="every hold made once Redis is back",
    )
    assert worker.proc.poll() is None, "the same worker, not a restart"
    assert metric_sum(worker.scrape(), "antifraud_events_consumed_total", topic=TRANSFERS) == 3
    assert metric_sum(worker.scrape(), "antifraud_dead_letters_total") == 0
    assert read_all(stack.kafka_bootstrap, topics.DEAD_LETTERS) == []
