"""The merge of a worker's input partitions by event time (pure: no I/O, the clock passed in)."""

import math

from antifraud.events.codec import InvalidEvent
from streams.merge import Merger, TopicPartition
from streams.records import Input, Pending, Record, Rejected

CALLS: TopicPartition = ("antifraud.call-records", 0)
TRANSFERS: TopicPartition = ("antifraud.bank-transfers", 1)
IDLE = 1.0


def inputs(tp: TopicPartition, times: list[float], first_offset: int = 0) -> list[Pending]:
    """Records of ``tp`` at event times ``times`` (the merge looks only at times and positions)."""
    return [Input(at, None, Record(tp[0], tp[1], first_offset + n, b"k", b"{}"), "test") for n, at in enumerate(times)]


def merger(*partitions: TopicPartition) -> Merger:
    merge = Merger(idle_seconds=IDLE)
    merge.assign(partitions or (CALLS, TRANSFERS), now=0.0)
    return merge


def positions(items: list[Pending]) -> list[tuple[float, str, int]]:
    return [(i.at, i.record.topic, i.record.offset) for i in items]


def test_records_leave_in_event_time_order_across_partitions_and_in_offset_order_within_one() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [1, 4, 6, 9]), now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [2, 3, 7, 10]), now=0.0)

    assert merge.bound(now=0.0) == 9, "each partition holds the bound back at the newest it delivered"
    taken = merge.take(merge.bound(now=0.0), limit=100, now=0.0)

    assert [i.at for i in taken.items] == [1, 2, 3, 4, 6, 7]
    assert taken.bound == 9
    assert merge.size(CALLS) == 1 and merge.size(TRANSFERS) == 1 and merge.waiting() == 2


def test_records_of_one_time_keep_a_fixed_order_whatever_order_they_were_pushed_in() -> None:
    one, other = merger(), merger()
    one.push(CALLS, inputs(CALLS, [5, 5]), now=0.0)
    one.push(TRANSFERS, inputs(TRANSFERS, [5]), now=0.0)
    other.push(TRANSFERS, inputs(TRANSFERS, [5]), now=0.0)
    other.push(CALLS, inputs(CALLS, [5, 5]), now=0.0)

    first = positions(one.take(6, 100, now=0.0).items)
    assert first == positions(other.take(6, 100, now=0.0).items)
    assert [o for _, t, o in first if t == CALLS[0]] == [0, 1]


def test_a_partition_that_has_not_caught_up_holds_the_bound_back_at_its_newest_record() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [1, 5, 20]), now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [2]), now=0.0)
    merge.polled(CALLS, caught_up=True, safe=2)
    merge.polled(TRANSFERS, caught_up=False, safe=20)

    assert merge.bound(now=10.0) == 2, "the transfers behind may still bring anything from 2 on"
    taken = merge.take(merge.bound(now=10.0), 100, now=10.0)
    assert [i.at for i in taken.items] == [1]

    merge.push(TRANSFERS, inputs(TRANSFERS, [8, 12], first_offset=1), now=10.0)
    assert merge.bound(now=10.0) == 12
    assert [i.at for i in merge.take(12, 100, now=10.0).items] == [2, 5, 8]


def test_a_partition_with_nothing_to_deliver_holds_the_bound_back_until_it_has_caught_up() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [3, 7]), now=0.0)
    merge.polled(CALLS, caught_up=False, safe=-math.inf)
    merge.polled(TRANSFERS, caught_up=False, safe=-math.inf)
    assert merge.bound(now=100.0) == -math.inf, "a partition not read yet may hold anything"
    assert merge.take(merge.bound(now=100.0), 100, now=100.0).items == []

    # Caught up with the broker: it holds the bound only at what the calls had delivered before that poll.
    merge.polled(TRANSFERS, caught_up=True, safe=7)
    assert merge.bound(now=0.5) == 7
    assert [i.at for i in merge.take(7, 100, now=0.5).items] == [3]


def test_an_idle_caught_up_partition_stops_holding_the_bound_back_after_idle_seconds() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [3, 7]), now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [4]), now=0.0)
    merge.polled(CALLS, caught_up=True, safe=-math.inf)
    merge.polled(TRANSFERS, caught_up=True, safe=-math.inf)

    assert merge.bound(now=IDLE / 2) == 4 and not merge.idle(now=IDLE / 2)
    assert merge.bound(now=IDLE) == math.inf and merge.idle(now=IDLE)
    assert [i.at for i in merge.take(merge.bound(now=IDLE), 100, now=IDLE).items] == [3, 4, 7]

    # A partition that delivers again is no longer idle, and holds the bound back at what it delivered.
    merge.push(TRANSFERS, inputs(TRANSFERS, [9], first_offset=1), now=5.0)
    assert not merge.idle(now=5.0 + IDLE / 2)
    assert merge.bound(now=5.0 + IDLE / 2) == 7, "the calls hold it back at their newest, 7"
    assert merge.bound(now=5.0 + IDLE) == math.inf


def test_a_partition_fetched_but_not_caught_up_never_counts_as_idle() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [3]), now=0.0)
    merge.polled(CALLS, caught_up=True, safe=-math.inf)
    merge.polled(TRANSFERS, caught_up=False, safe=3)
    assert not merge.idle(now=1000.0)
    assert merge.bound(now=1000.0) == -math.inf


def test_the_limit_cuts_at_a_clean_event_time_boundary() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [1, 2, 2, 3]), now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [2, 4]), now=0.0)

    taken = merge.take(10, limit=2, now=0.0)

    assert [i.at for i in taken.items] == [1, 2, 2, 2], "every record of the time the limit is reached at comes"
    assert taken.bound == 3, "the bound reached: every record older than 3 is in the batch"
    rest = merge.take(10, limit=100, now=0.0)
    assert [i.at for i in rest.items] == [3, 4] and rest.bound == 10


def test_the_limit_reached_exactly_at_the_last_record_below_the_bound_keeps_the_bound() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [1, 2, 8]), now=0.0)
    taken = merge.take(5, limit=2, now=0.0)
    assert [i.at for i in taken.items] == [1, 2] and taken.bound == 5


def test_a_late_record_is_still_taken_in_the_next_batch() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [1]), now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [5, 9]), now=0.0)
    first = merge.take(6, 100, now=0.0)
    assert [i.at for i in first.items] == [1, 5] and first.bound == 6

    # A producer behind the others sends a call older than the bound already processed.
    merge.push(CALLS, inputs(CALLS, [2, 7], first_offset=1), now=1.0)
    second = merge.take(10, 100, now=1.0)
    assert positions(second.items) == [(2, CALLS[0], 1), (7, CALLS[0], 2), (9, TRANSFERS[0], 1)]


def test_a_partition_keeps_its_offset_order_even_when_a_later_offset_is_older() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [6, 2]), now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [4, 9]), now=0.0)
    taken = merge.take(10, 100, now=0.0)
    assert [(i.at, i.record.offset) for i in taken.items] == [(4, 0), (6, 0), (2, 1), (9, 1)]


def test_a_rejected_record_leaves_right_after_the_record_before_it() -> None:
    merge = merger()
    calls = inputs(CALLS, [1, 5])
    bad = Rejected(1, Record(CALLS[0], CALLS[1], 2, b"k", b"{"), InvalidEvent("malformed_json", "EOF"))
    merge.push(CALLS, [*calls, bad, *inputs(CALLS, [8], first_offset=3)], now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [3, 9]), now=0.0)

    taken = merge.take(9, 100, now=0.0)
    assert [(i.at, i.record.offset, isinstance(i, Rejected)) for i in taken.items if i.record.topic == CALLS[0]] == [
        (1, 0, False),
        (5, 1, False),
        (1, 2, True),
        (8, 3, False),
    ], "a partition's records stay in offset order"
    assert merge.bound(now=0.0) == 8, "a rejected record moves no partition's time"


def test_revoking_a_partition_drops_its_records_and_its_hold_on_the_bound() -> None:
    merge = merger()
    merge.push(CALLS, inputs(CALLS, [1, 30]), now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [2, 3]), now=0.0)

    merge.revoke([TRANSFERS])
    merge.push(TRANSFERS, inputs(TRANSFERS, [4], first_offset=2), now=0.0)  # a fetch that was in flight

    assert merge.partitions == frozenset({CALLS})
    assert merge.size(TRANSFERS) == 0 and merge.waiting() == 2
    assert merge.bound(now=0.0) == 30
    assert [i.record.topic for i in merge.take(30, 100, now=0.0).items] == [CALLS[0]]


def test_low_is_the_oldest_waiting_record_or_the_bound() -> None:
    merge = merger()
    assert merge.low(now=0.0) == -math.inf, "nothing read yet: anything may come"
    merge.push(CALLS, inputs(CALLS, [4, 6]), now=0.0)
    merge.push(TRANSFERS, inputs(TRANSFERS, [5]), now=0.0)
    assert merge.low(now=0.0) == 4
    merge.take(5, 100, now=0.0)
    assert merge.low(now=0.0) == 5, "the transfer at 5 is still to be taken"
