"""The topics (names in ``antifraud/topics.py``, re-exported here for the stream layer), and creating them."""

from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from antifraud.topics import (  # noqa: F401 - re-exported: the stream layer names topics from here
    ALERTS,
    ALL_TOPICS,
    AUDIT_ANCHORS,
    CREDIT_BLACKLIST,
    DEAD_LETTERS,
    FORWARDING,
    FREEZE_REQUESTS,
    HOLDS,
    INPUT_TOPICS,
    INTERCEPTIONS,
    VICTIM_WARNINGS,
)


def ensure_topics(bootstrap: str, partitions: int, names: Iterable[str] = ALL_TOPICS) -> None:
    """Create the topics that do not exist yet (producers may start before the worker)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names if n not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
