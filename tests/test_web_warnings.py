"""Live branch warnings: the fan-out (pure) and the server-sent event stream over the real broker."""

import asyncio
import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from redis.asyncio import Redis

from antifraud.alerts.models import Alert, Audience, Entity, Reason
from antifraud.config import ConfigError
from antifraud.stack.embedded import Endpoints
from antifraud.web.warnings import CounterWarning, RecentWarnings, WarningHub, deliver, load_atm_branches, places
from streams.topics import ALERTS
from tests.web_helpers import BRANCH, OTHER_BRANCH, as_user, serve, web_client

AT = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)


def alert(account: str, *audience: Audience, at: datetime = AT) -> Alert:
    return Alert.create(
        detector="transfer_risk",
        entity=Entity(kind="account", value=account),
        trigger="pay-1",
        window_start=at,
        window_end=at,
        severity="critical",
        score=1.0,
        reasons=[Reason(feature="blacklisted_payee", value=1, threshold=1)],
        evidence_event_ids=["pay-1"],
        audience=list(audience) or [Audience(kind="branch", id=BRANCH)],
    )


def test_an_alert_goes_to_the_branches_and_atms_of_its_audience_only() -> None:
    both = alert(
        "6222000000000666",
        Audience(kind="branch", id=BRANCH),
        Audience(kind="atm", id="atm-7"),
        Audience(kind="police"),
        Audience(kind="bank_risk"),
    )
    assert places(both) == {BRANCH, "atm-7"}
    hub = WarningHub()
    with hub.subscribe(BRANCH) as mine, hub.subscribe(OTHER_BRANCH) as theirs, hub.subscribe("atm-7") as atm:
        assert hub.publish(CounterWarning.of(both)) == 2
        shown = CounterWarning.of(both)
        assert mine.get_nowait() == shown and atm.get_nowait() == shown and theirs.empty()
    assert hub.subscriber_count() == 0


def test_an_atm_warning_reaches_the_counter_of_the_branch_that_owns_the_atm(tmp_path: Path) -> None:
    registry = tmp_path / "atms.json"
    registry.write_text(json.dumps({"atm-7": BRANCH}))
    owners = load_atm_branches(registry)
    at_the_atm = alert("6222000000000666", Audience(kind="atm", id="atm-7"))
    assert places(at_the_atm) == {"atm-7"} and places(at_the_atm, owners) == {"atm-7", BRANCH}
    hub = WarningHub(owners=owners)
    with hub.subscribe(BRANCH) as counter, hub.subscribe(OTHER_BRANCH) as elsewhere:
        assert hub.publish(CounterWarning.of(at_the_atm)) == 1
        assert counter.get_nowait().alert_id == at_the_atm.alert_id and elsewhere.empty()
    assert hub.places(at_the_atm) == {"atm-7", BRANCH}, "kept for the branch too: its teller can escalate it"

    registry.write_text(json.dumps(["atm-7"]))
    with pytest.raises(ConfigError, match="must be a JSON object of ATM id -> branch id"):
        load_atm_branches(registry)
    assert load_atm_branches(None) == {}


def test_a_repeated_alert_is_pushed_once() -> None:
    hub = WarningHub(recent=2)
    first, second, third = (alert(f"622200000000066{i}") for i in range(3))
    with hub.subscribe(BRANCH) as queue:
        assert [hub.publish(CounterWarning.of(a)) for a in (first, first, second, third)] == [1, 0, 1, 1]
        assert queue.qsize() == 3


def test_recent_warnings_are_shared_by_processes_kept_across_restarts_bounded_and_newest_first(
    redis_url: str,
) -> None:
    """Two web processes (two stores over one Redis) read the same alerts off the topic; a third, started
    later, shows what they kept. Newest first as read: an alert of an older event time read last (a worker
    catching up) is the newest warning, not trimmed at once."""
    times = [AT + timedelta(minutes=m) for m in (5, 1, 9, 3)]
    read = [alert(f"622200000000066{i}", at=at) for i, at in enumerate(times)]
    atm = alert("6222000000000670", Audience(kind="atm", id="atm-7"), at=AT + timedelta(minutes=7))

    async def body() -> None:
        client = Redis.from_url(redis_url)
        try:
            one, two = RecentWarnings(client, size=3), RecentWarnings(client, size=3)
            hub_one, hub_two = WarningHub(), WarningHub(owners={"atm-7": BRANCH})
            with hub_one.subscribe(BRANCH) as pushed:
                for item in read:
                    await deliver(hub_one, one, item)
                    await deliver(hub_two, two, item)  # the same alert, kept once
                    assert await one.find(BRANCH, pushed.get_nowait().alert_id) is not None, "kept before pushed"
            await deliver(hub_two, two, atm)
            later = RecentWarnings(Redis.from_url(redis_url), size=3)
            kept = [w.alert_id for w in await later.recent(BRANCH)]
            assert kept == [atm.alert_id, read[3].alert_id, read[2].alert_id], "the last three read, newest first"
            assert [w.alert_id for w in await later.recent("atm-7")] == [atm.alert_id]
            assert await later.find(BRANCH, read[1].alert_id) is None, "the first ones went as more came"
            assert atm.window_end < read[2].window_end, "the ATM's alert is older by event time, and kept"
            assert (await later.find(BRANCH, atm.alert_id)) == CounterWarning.of(atm)
            await later.redis.aclose()
        finally:
            await client.aclose()

    asyncio.run(body())


def test_a_warning_is_pushed_even_when_redis_cannot_keep_it() -> None:
    """A teller must see the warning now; marking it waits for Redis."""

    async def body() -> None:
        nowhere = RecentWarnings(Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5))
        hub = WarningHub()
        with hub.subscribe(BRANCH) as pushed:
            assert await deliver(hub, nowhere, alert("6222000000000666")) == 1
            assert pushed.qsize() == 1
        await nowhere.redis.aclose()

    asyncio.run(body())


def test_a_stalled_subscriber_loses_its_oldest_warnings_not_the_newest() -> None:
    hub = WarningHub(queue_size=2)
    alerts = [alert(f"622200000000066{i}") for i in range(3)]
    with hub.subscribe(BRANCH) as queue:
        for a in alerts:
            hub.publish(CounterWarning.of(a))
        assert [queue.get_nowait().alert_id, queue.get_nowait().alert_id] == [a.alert_id for a in alerts[1:]]


def test_a_warning_says_its_reasons_in_a_tellers_words_and_keeps_unknown_ones_as_given() -> None:
    called = alert("6222000000000666").model_copy(
        update={
            "reasons": [
                Reason(feature="call_before_hours_max", value=0.5, threshold=3),
                Reason(feature="payee_flagged_by_card_trade", value=1.2, threshold=0),
                Reason(feature="held_amount_yuan", value=12345.5, threshold=0),
                Reason(feature="some_new_feature", value=7, threshold=5),
                Reason(feature="score", value=1.2, threshold=0.9),
            ]
        }
    )
    assert CounterWarning.of(called).explanations == [
        "a listed or flagged number called the payer 0.5 h ago",
        "since the transfer was held, the payee was flagged (card trade)",
        "¥12,345.50 of this customer's are held for that payee",
        "some_new_feature 7",
    ]


def produce_alert(endpoints: Endpoints, item: Alert) -> None:
    producer = KafkaProducer(bootstrap_servers=endpoints.kafka_bootstrap)
    producer.send(ALERTS, key=item.entity.value.encode(), value=item.model_dump_json().encode())
    producer.flush()
    producer.close()


def test_a_branch_stream_gets_its_alert_from_the_topic_and_not_another_branchs(stack: Endpoints) -> None:
    mine = alert("6222000000000666")
    theirs = alert("6222000000000777", Audience(kind="branch", id=OTHER_BRANCH))
    received: list[tuple[str, str, dict]] = []
    subscribed = threading.Event()

    async def listen(base_url: str) -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            async with client.stream(
                "GET", f"/api/places/{BRANCH}/warnings/stream", headers=as_user("teller")
            ) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                fields: dict[str, str] = {}
                async for line in stream.aiter_lines():
                    if line.startswith(": subscribed"):
                        subscribed.set()
                    elif line and not line.startswith(":"):
                        key, _, value = line.partition(": ")
                        fields[key] = value
                    elif not line and "data" in fields:
                        received.append((fields["event"], fields["id"], json.loads(fields["data"])))
                        return

    with serve(stack) as base_url:
        listener = threading.Thread(target=asyncio.run, args=(listen(base_url),))
        listener.start()
        assert subscribed.wait(20)
        produce_alert(stack, theirs)
        produce_alert(stack, mine)
        listener.join(30)
        assert received == [("warning", mine.alert_id, json.loads(CounterWarning.of(mine).model_dump_json()))]
        recent = httpx.get(f"{base_url}/api/places/{BRANCH}/warnings", headers=as_user("teller")).json()
        assert [a["alert_id"] for a in recent] == [mine.alert_id]


def test_a_teller_cannot_read_or_stream_another_branchs_warnings(stack: Endpoints) -> None:
    with web_client(stack) as client:
        for path in (f"/api/places/{OTHER_BRANCH}/warnings", f"/api/places/{OTHER_BRANCH}/warnings/stream"):
            refused = client.get(path, headers=as_user("teller"))
            assert refused.status_code == 403
            assert refused.json()["detail"] == f"a teller of branch {BRANCH} may not see branch {OTHER_BRANCH}"
        assert client.get(f"/api/places/{OTHER_BRANCH}/warnings", headers=as_user("other_teller")).json() == []
        assert client.get(f"/api/places/{OTHER_BRANCH}/warnings", headers=as_user("analyst")).status_code == 200
