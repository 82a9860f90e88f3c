"""``antifraud simulate --kafka`` against the real (embedded) broker: every event on its
kind's topic, keyed by the entity the topic is partitioned on."""

import gzip
from collections import Counter
from pathlib import Path

import pytest

from antifraud.events.codec import decode_any
from antifraud.stack.embedded import Endpoints
from streams.topics import INPUT_TOPICS
from tests.kafka_helpers import read_all
from tests.test_simulator_cli import simulate_cli

pytestmark = pytest.mark.integration


def test_events_go_to_their_topics_keyed_by_partition_key(stack: Endpoints, tmp_path: Path) -> None:
    out = tmp_path / "city.jsonl.gz"
    truth = tmp_path / "elsewhere.truth.json"
    assert (
        simulate_cli(
            "--people",
            "150",
            "--days",
            "0.25",
            "--kafka",
            stack.kafka_bootstrap,
            "-o",
            str(out),
            "--truth",
            str(truth),
            "-q",
        )
        == 0
    )
    assert truth.is_file() and (tmp_path / "elsewhere.cells.json").is_file()
    written = [decode_any(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
    expected = Counter(e.kind for e in written)
    assert len(expected) >= 5
    for kind, topic in INPUT_TOPICS.items():
        records = read_all(stack.kafka_bootstrap, topic, settle=0.5)
        assert len(records) == expected.get(kind, 0), topic
        for record in records:
            event = decode_any(record.value)
            assert event.kind == kind
            assert record.key == event.partition_key().encode()
