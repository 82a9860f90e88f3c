"""Phishing SMS as a pure function: each kind of look-alike link, genuine bank texts staying quiet,
senders reaching many receivers, quiet periods and replay."""

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pytest

from antifraud.events.models import SmsRecord
from antifraud.thresholds import PhishingSmsThresholds, load_thresholds
from detectors.phishing_sms import DETECTOR, DomainJudge, Verdict, detect, edits, fold
from detectors.window import WindowResult
from tests.windowing import replay_checks, run_batches

LIMITS = PhishingSmsThresholds(
    window_seconds=86400,
    min_receivers=3,
    max_edits=1,
    min_brand_length=4,
    official_domains=["icbc.com.cn", "ccb.com", "boc.cn", "10086.cn", "12123.gov.cn", "chinatax.gov.cn"],
    listed_domains=["evil.example"],
    max_tracked=1000,
)
JUDGE = DomainJudge(LIMITS)
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
SENDER = "17100000001"


def sms(
    n: int, at: float, link: str | None = "1cbc.com.cn", sender: str = SENDER, receiver: str | None = None
) -> SmsRecord:
    return SmsRecord(
        event_id=f"sms-{sender[-2:]}-{n:04d}",
        event_time=T0 + timedelta(seconds=at),
        sender=sender,
        receiver=receiver or f"1390000{n:04d}",
        cell_id="cell-1",
        link_domains=[link] if link else [],
    )


def run(texts: Sequence[SmsRecord]) -> WindowResult:
    return detect(texts, {}, JUDGE, LIMITS)


@pytest.mark.parametrize(
    ("domain", "verdict"),
    [
        ("1cbc.com.cn", Verdict("look-alike", "icbc.com.cn", 0)),
        ("ch1natax.gov.cn", Verdict("look-alike", "chinatax.gov.cn", 0)),
        ("b0c.cn", Verdict("look-alike", "boc.cn", 0)),
        ("ccbb.com", Verdict("typo", "ccb.com", 1)),
        ("121233.gov.cn", Verdict("typo", "12123.gov.cn", 1)),
        ("icbc-verify.example", Verdict("brand", "icbc.com.cn", 0)),
        ("10086-jf.top", Verdict("brand", "10086.cn", 0)),
        ("ccb-secure.com", Verdict("brand", "ccb.com", 0)),
        ("xn--icb-6ed.com.cn", Verdict("punycode", "icbc.com.cn", 0)),
        ("login.evil.example", Verdict("listed", "evil.example", 0)),
        ("ICBC.com.cn.", None),
        ("mybank.icbc.com.cn", None),
        ("etax.chinatax.gov.cn", None),
        ("example.com", None),
        ("accbook.com", None),
    ],
)
def test_domains_are_judged(domain: str, verdict: Verdict | None) -> None:
    assert JUDGE.judge(domain) == verdict


def test_edit_distance_counts_an_adjacent_swap_once_and_stops_at_the_limit() -> None:
    assert edits("icbc", "ibcc", 2) == 1
    assert edits("icbc", "icbc", 1) == 0
    assert edits("icbc", "xxxxxx", 1) == 2


def test_fold_reads_look_alike_characters_alike() -> None:
    assert fold("crnbch1na.com") == fold("cmbchina.com")
    assert fold("bankc0rnm") == fold("bankcomm")


def test_packaged_official_domains_are_genuine() -> None:
    packaged = load_thresholds().phishing_sms
    judge = DomainJudge(packaged)
    assert all(judge.judge(d) is None for d in packaged.official_domains)


def test_sender_reaching_three_receivers_with_look_alike_links_alerts() -> None:
    result = run([sms(1, 0), sms(2, 60, "ccbb.com"), sms(3, 120)])
    [alert] = result.alerts
    assert alert.detector == DETECTOR and alert.entity.kind == "phone" and alert.entity.value == SENDER
    assert [(r.feature, r.value, r.threshold) for r in alert.reasons] == [
        ("phishing_receivers_86400s", 3, 3),
        ("link 1cbc.com.cn look-alike of icbc.com.cn", 0, 1),
        ("link ccbb.com typo of ccb.com", 1, 1),
    ]
    assert alert.evidence_event_ids == ["sms-01-0001", "sms-01-0002", "sms-01-0003"]


def test_genuine_bank_texts_stay_quiet() -> None:
    assert run([sms(i, i * 10, "icbc.com.cn", sender="95588") for i in range(50)]).alerts == []


def test_texts_without_links_stay_quiet() -> None:
    assert run([sms(i, i * 10, None) for i in range(50)]).alerts == []


def test_one_forwarded_link_stays_quiet() -> None:
    assert run([sms(1, 0), sms(2, 10)]).alerts == []


def test_many_texts_to_the_same_receiver_count_once() -> None:
    assert run([sms(i, i * 10, receiver="13900000001") for i in range(10)]).alerts == []


def test_receivers_outside_the_window_do_not_count() -> None:
    assert run([sms(1, 0), sms(2, 50000), sms(3, 100000)]).alerts == []


def test_quiet_for_the_window_then_a_new_alert() -> None:
    day = [sms(i, i * 60) for i in range(10)]
    next_day = [sms(100 + i, 90000 + i * 60) for i in range(3)]
    alerts, _ = run_batches(lambda b, p: detect(b, p, JUDGE, LIMITS), [day, next_day])
    assert len(alerts) == 2


def test_replay_safety() -> None:
    replay_checks(lambda b, p: detect(b, p, JUDGE, LIMITS), [sms(i, i * 30) for i in range(6)])


def test_invalid_thresholds_are_rejected() -> None:
    with pytest.raises(ValueError, match="official_domains"):
        PhishingSmsThresholds.model_validate({**LIMITS.model_dump(), "official_domains": []})
