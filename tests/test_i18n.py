"""The interface's two languages: every text the pages ask for exists in both, with the same placeholders,
and every value the API sends that the pages name (a status, a severity, a detector...) has its words.

The pages name a text by key: ``data-i18n`` and ``data-i18n-placeholder`` in the HTML, ``data-title`` on the
body, ``t("key")`` in the scripts, and ``t(`prefix.${value}`)`` for a value of the API, whose values come from
the models here. The reasons are said by the catalogs beside ``antifraud/alerts/explain.py``, on the server and
in the browser alike.
"""

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from antifraud.alerts.explain import CATALOGS, DECIMALS, LANGUAGES, PLACEHOLDER, explain
from antifraud.alerts.models import EntityKind, Severity
from antifraud.case.followups import FollowUpKind, FollowUpState
from antifraud.case.models import SCENARIO_BY_DETECTOR, STATUSES, Action, TimelineEntry
from antifraud.credit.models import ListingState, Move, ObjectionState
from antifraud.events.models import BankTransfer
from antifraud.forwarding.models import DeliveryState, Target
from antifraud.holds.models import HUMAN_MOVES, HoldState
from antifraud.thresholds import ReasonCode, RepairCondition
from antifraud.web.check import Decision
from antifraud.web.pages import STATIC
from antifraud.web.principal import Role
from antifraud.web.warnings import HandlingState

ROOT = Path(__file__).resolve().parent.parent / "antifraud"
TEXTS = {language: json.loads((STATIC / "i18n" / f"{language}.json").read_text()) for language in LANGUAGES}
REASONS = {language: json.loads((CATALOGS / f"{language}.json").read_text()) for language in LANGUAGES}
PAGES = sorted(STATIC.glob("*.html"))
SCRIPTS = sorted(STATIC.glob("*.js"))

VOCABULARIES: dict[str, tuple[str, ...]] = {
    "status": STATUSES,
    "severity": get_args(Severity),
    "kind": (*get_args(EntityKind), "credit_code"),
    "detector": tuple(SCENARIO_BY_DETECTOR),
    "scenario": tuple(set(SCENARIO_BY_DETECTOR.values())),
    "channel": get_args(BankTransfer.model_fields["channel"].annotation),
    "decision": tuple(Decision),
    "role": tuple(Role),
    "hold.state": get_args(HoldState),
    "hold.move": tuple(HUMAN_MOVES),
    "delivery.state": get_args(DeliveryState),
    "target": get_args(Target),
    "listing.state": get_args(ListingState),
    "objection.state": get_args(ObjectionState),
    "reason_code": get_args(ReasonCode),
    "condition": get_args(RepairCondition),
    "handling": get_args(HandlingState),
    "timeline.kind": get_args(TimelineEntry.model_fields["kind"].annotation),
    "followup": get_args(FollowUpKind),
    "followup.state": get_args(FollowUpState),
    "audit": (  # what a case's timeline shows: the actions on it, its deliveries and follow-ups, its holds' moves
        *(f"case.{action}" for action in (*get_args(Action), "expired")),
        *(f"delivery.{what}" for what in ("delivered", "failed", "retry")),
        *(f"followup.{what}" for what in (*get_args(FollowUpKind), "failed", "retry")),
        *(f"hold.{what}" for what in (*get_args(HoldState), "payee_flagged")),
        *(f"blacklist.{move}" for move in (*get_args(Move), "purged")),  # a listing's history
    ),
}
"""Each prefix a script builds keys with, and the values the API can send for it."""


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)", text))


def _keys_named_by_the_pages() -> set[str]:
    keys: set[str] = set()
    for page in PAGES:
        keys |= set(re.findall(r'data-(?:i18n|i18n-placeholder|title)="([\w.]+)"', page.read_text()))
    for script in SCRIPTS:
        keys |= set(re.findall(r'\bt\("([\w.]+)"', script.read_text()))
    return keys


def _prefixes_built_by_the_scripts() -> set[str]:
    found: set[str] = set()
    for script in SCRIPTS:
        found |= set(re.findall(r"\bt\(`([\w.]+)\.\$\{", script.read_text()))
    return found


def test_both_languages_have_the_same_texts_with_the_same_placeholders() -> None:
    chinese, english = TEXTS["zh-CN"], TEXTS["en"]
    assert chinese.keys() == english.keys()
    for key in chinese:
        assert _placeholders(chinese[key]) == _placeholders(english[key]), key
    for part in ("reasons", "units"):
        assert REASONS["zh-CN"][part].keys() == REASONS["en"][part].keys(), part
        for key, text in REASONS["zh-CN"][part].items():
            assert _placeholders(text) == _placeholders(REASONS["en"][part][key]), key


def test_the_chinese_texts_are_chinese() -> None:
    """A key copied across untranslated would pass the key test: every Chinese text that has letters has
    Chinese characters too, except names that are the same in both (ATM, HTTP, SMS...)."""
    same_in_both = {"app.name", "app.other_language", "counter.atm", "col.atm", "channel.atm"}
    untranslated = [
        key
        for key, text in TEXTS["zh-CN"].items()
        if key not in same_in_both
        and re.search(r"[A-Za-z]{3}", re.sub(r"\{\w+\}", "", text))
        and not re.search(r"[\u4e00-\u9fff]", text)
    ]
    assert not untranslated


def test_every_text_a_page_names_exists() -> None:
    named = _keys_named_by_the_pages()
    assert len(named) > 100, "the pattern that finds the keys no longer matches the pages"
    assert named - TEXTS["en"].keys() == set()


def test_every_value_the_api_sends_has_its_words() -> None:
    assert _prefixes_built_by_the_scripts() <= VOCABULARIES.keys(), "a script builds keys of an unknown prefix"
    for prefix, values in VOCABULARIES.items():
        missing = {f"{prefix}.{value}" for value in values} - TEXTS["en"].keys()
        assert not missing, prefix


def test_every_unit_a_reason_uses_rounds_and_is_labelled() -> None:
    for language in LANGUAGES:
        used = {
            m.group(2) or "count" for text in REASONS[language]["reasons"].values() for m in PLACEHOLDER.finditer(text)
        }
        assert used <= REASONS[language]["units"].keys() <= DECIMALS.keys(), language


@pytest.mark.parametrize(
    ("feature", "value", "english", "chinese"),
    [
        ("call_before_hours_max", 0.17, "called the payer 0.2 h ago", "0.2 小时前"),
        ("amount_multiple", 9.2374, "the amount is 9.2 times", "9.2 倍"),
        ("structuring_share", 0.834, "(83% of it)", "83%"),
        ("held_amount_yuan", 12345.5, "¥12,345.50 of this customer's", "¥12,345.50"),
        ("payee_fan_in_payers", 5.0, "from 5 payers", "5 个付款人"),
        ("new_payee", 1.0, "never paid this account before", "从未向该账户付过款"),
        ("amount_no_history", 5.0, "no earlier payment to compare with", "没有以往付款记录"),  # not "5 times"
    ],
)
def test_a_reason_is_said_rounded_with_its_unit(feature: str, value: float, english: str, chinese: str) -> None:
    assert english in explain(feature, value)
    assert chinese in explain(feature, value, "zh-CN")


def test_an_unknown_feature_is_said_as_the_detector_gave_it() -> None:
    assert explain("brand_new_feature", 3.5, "zh-CN") == "brand_new_feature 3.5"


def test_the_pages_serve_the_catalog_they_render_with() -> None:
    """The route merges the pages' texts with the reasons and units; an unknown language is a 404."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from antifraud.web.app import answer_errors
    from antifraud.web.pages import router

    app = FastAPI()
    app.include_router(router)
    answer_errors(app)
    with TestClient(app) as client:
        served: dict[str, Any] = client.get("/i18n/zh-CN.json").json()
        assert served["texts"] == TEXTS["zh-CN"] and served["reasons"] == REASONS["zh-CN"]["reasons"]
        assert client.get("/i18n/fr.json").status_code == 404


SOURCES = {path: path.read_text() for path in ROOT.rglob("*.py")}
CONSTRUCTED = re.compile(
    r"\b(?:Refused|Refusal|Unknown|Invalid|Forbidden|Unauthenticated|Throttled|Unbacked|BadPeriod|__init__)"
    r'\(\s*"([a-z][a-z_]+)"'
)
CHOSEN = re.compile(r"^\s*code\s*=.*$", re.MULTILINE)


def _raised_codes() -> set[str]:
    """A refusal's code where it is raised: the first argument of a refusal's constructor, or a ``code`` chosen
    on a line of its own (``code = "a" if ... else "b"``, ``code="hold_due",``)."""
    codes: set[str] = set()
    for text in SOURCES.values():
        codes |= set(CONSTRUCTED.findall(text))
        codes |= {code for line in CHOSEN.findall(text) for code in re.findall(r'"([a-z][a-z_]+)"', line)}
    return codes


def test_every_refusal_the_app_raises_has_its_words_and_no_words_are_orphans() -> None:
    raised = _raised_codes()
    assert len(raised) > 40, "the pattern that finds the codes no longer matches the sources"
    said = {key.removeprefix("refusal.") for key in TEXTS["en"] if key.startswith("refusal.")}
    assert raised == said


def test_a_refusal_names_values_only_by_words_the_catalogs_have() -> None:
    """``{name:prefix}`` says a param by the words under a prefix the API's values have (or as a time)."""
    for language in LANGUAGES:
        for key, text in TEXTS[language].items():
            if key.startswith("refusal."):
                for prefix in re.findall(r"\{\w+:([\w.]+)\}", text):
                    assert prefix == "when" or any(
                        prefix == known or prefix.startswith(f"{known}.") for known in VOCABULARIES
                    ), (key, prefix)


def test_every_rule_of_ours_a_field_can_break_has_its_words() -> None:
    """A validator's own error type (``PydanticCustomError("type", ...)``) is said by ``invalid.<type>``, as
    pydantic's own types are; without words a page would show pydantic's English message."""
    raised = {kind for text in SOURCES.values() for kind in re.findall(r'PydanticCustomError\(\s*"([a-z_]+)"', text)}
    assert len(raised) > 10, "the pattern that finds the types no longer matches the sources"
    assert {f"invalid.{kind}" for kind in raised} - TEXTS["en"].keys() == set()
