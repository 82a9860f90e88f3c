"""Records on the alerts topic that are not alerts: a running worker dead-letters each exactly once (with
the reason and the original key and bytes), and goes on folding cases past them."""

from collections.abc import Callable

import orjson

from antifraud.case.models import case_id_for
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess, metric_sum
from streams import topics
from streams.checkpoint import DLQ_DETAIL, DLQ_OFFSET, DLQ_PARTITION, DLQ_REASON, DLQ_TOPIC
from streams.io import EventProducer
from tests.conftest import wait_for
from tests.kafka_helpers import read_all
from tests.test_case import ACCOUNT, alert
from tests.test_forwarding_worker import with_cases

KEY = ACCOUNT.value.encode()
"""Every record on one key, so one partition: the good alert comes after the broken ones for both agents."""
MALFORMED = b'{"alert_id": "0f", "detector": "mule_acc'
NOT_AN_ALERT = orjson.dumps(
    {**alert("mule_account", entity=ACCOUNT, minutes=5).model_dump(mode="json"), "score": "high"}
)


def test_unreadable_alert_records_are_dead_lettered_once_and_the_alerts_agent_carries_on(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    good = alert("mule_account", entity=ACCOUNT)
    producer = EventProducer(stack.kafka_bootstrap)
    for value in (MALFORMED, NOT_AN_ALERT, good.model_dump_json().encode()):
        producer.send_raw(topics.ALERTS, KEY, value)
    producer.flush()
    producer.close()

    case_id = case_id_for(ACCOUNT, "mule")
    wait_for(
        lambda: with_cases(stack, lambda cases: cases.redis.hlen(f"case:{case_id}:alerts")) == 1,
        what="the good alert in its case",
    )

    dead = read_all(stack.kafka_bootstrap, topics.DEAD_LETTERS)
    assert sorted(r.value for r in dead) == sorted([MALFORMED, NOT_AN_ALERT]), "each once, bytes as produced"
    assert all(r.key == KEY for r in dead)
    headers = {r.value: dict(r.headers) for r in dead}
    assert headers[MALFORMED][DLQ_REASON] == b"malformed_json"
    assert headers[NOT_AN_ALERT][DLQ_REASON] == b"schema_violation"
    assert b"score" in headers[NOT_AN_ALERT][DLQ_DETAIL] and b"high" not in headers[NOT_AN_ALERT][DLQ_DETAIL]
    for record in dead:
        assert headers[record.value][DLQ_TOPIC] == topics.ALERTS.encode()
        assert headers[record.value][DLQ_PARTITION].isdigit() and headers[record.value][DLQ_OFFSET].isdigit()
    assert int(headers[MALFORMED][DLQ_OFFSET]) + 1 == int(headers[NOT_AN_ALERT][DLQ_OFFSET])
    assert metric_sum(worker.scrape(), "antifraud_dead_letters_total", topic=topics.ALERTS) == 2
