"""A partition's log that ends before what the worker has read: a short report right after a broker
restart is not a loss; a log that stays short is."""

from streams.loop import SHORT_LOG_SECONDS, ShortLogs

TP = ("calls", 0)


def test_a_log_short_for_a_moment_then_whole_again_is_not_lost() -> None:
    logs = ShortLogs()
    assert not logs.lost(TP, 30, 40, now=100.0)
    assert not logs.lost(TP, 70, 40, now=101.0), "the broker reports the whole log again"
    assert not logs.lost(TP, 30, 40, now=100.0 + SHORT_LOG_SECONDS), "short again: the clock starts over"


def test_a_log_that_stays_short_is_lost() -> None:
    logs = ShortLogs()
    assert not logs.lost(TP, 0, 40, now=100.0)
    assert not logs.lost(TP, 0, 40, now=100.0 + SHORT_LOG_SECONDS / 2)
    assert logs.lost(TP, 0, 40, now=100.0 + SHORT_LOG_SECONDS)


def test_a_log_that_ends_where_the_worker_read_to_is_whole() -> None:
    assert not ShortLogs().lost(TP, 40, 40, now=0.0)


def test_a_partition_forgotten_starts_over() -> None:
    logs = ShortLogs()
    logs.lost(TP, 0, 40, now=100.0)
    logs.forget(TP)
    assert not logs.lost(TP, 0, 40, now=100.0 + SHORT_LOG_SECONDS)
    assert not logs.lost(("calls", 1), 0, 40, now=100.0 + SHORT_LOG_SECONDS), "per partition"
