"""Alert reasons in a teller's words, in the interface's languages.

A detector's reason is a feature name, a value and a threshold (``call_before_hours_max
0.17 (threshold 3)``): right for an analyst, opaque at a bank counter with a customer
waiting. The catalogs beside this module (``reasons/<language>.json``) say each feature
as a sentence; the pages render the same catalogs in the browser (served at
``/i18n/<language>.json``), so a check's answer and a live warning read alike. A
placeholder names the value's unit, ``{value:hours}``, and the unit rounds and labels it
(``units`` in the catalog; ``format_unit`` here, ``unit`` in ``common.js``). A feature
the catalog does not know is shown as the detector gave it, so a new detector's alerts
still read, if less well.
"""

import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any

from antifraud.alerts.models import Alert

LANGUAGES = ("zh-CN", "en")
"""The interface's languages; the first is the default."""

CATALOGS = Path(__file__).parent / "reasons"

FLAGGED_BY = "payee_flagged_by_"
"""Prefix of the hold warning's reason: the detector that flagged a held transfer's payee follows it."""

DECIMALS = {"hours": 1, "minutes": 1, "days": 1, "times": 1, "percent": 0, "count": 0, "yuan": 2}
"""How each unit rounds (``percent`` of a share: 0.83 is 83%)."""

PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")


@cache
def catalog(language: str) -> dict[str, Any]:
    """The reasons and units of ``language`` (one of ``LANGUAGES``)."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalog for {language!r}; languages: {', '.join(LANGUAGES)}")
    data: dict[str, Any] = json.loads((CATALOGS / f"{language}.json").read_text(encoding="utf-8"))
    return data


def _rounded(value: float, decimals: int) -> Decimal:
    """Half away from zero on the number as written (0.25 is 0.3, 1.005 is 1.01), as the pages round
    (``static/pure.js``): a float's binary value would round 0.25 down and 0.35 up."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def format_unit(value: float, unit: str, language: str) -> str:
    """``value`` rounded for its unit and labelled in ``language``: 0.1666 hours is "0.2 h" / "0.2 小时"."""
    if not math.isfinite(value):
        return catalog(language)["units"][unit].replace("{n}", str(value))
    shown = _rounded(value * 100 if unit == "percent" else value, DECIMALS[unit])
    if unit == "yuan":
        number = f"{shown:,.2f}"
    else:
        number = f"{shown:f}"
        number = number.rstrip("0").rstrip(".") if "." in number else number
        number = "0" if number == "-0" else number
    template: str = catalog(language)["units"][unit]
    return template.replace("{n}", number)


def explain(feature: str, value: float | None = None, language: str = "en") -> str:
    """One reason as a sentence; an unknown feature as ``feature value``."""
    reasons = catalog(language)["reasons"]
    if feature.startswith(FLAGGED_BY):
        detector = feature.removeprefix(FLAGGED_BY).replace("_", " ")
        return str(reasons["payee_flagged_by"]).replace("{detector}", detector)
    template = reasons.get(feature)
    if template is None:
        return feature if value is None else f"{feature} {value:g}"
    return PLACEHOLDER.sub(lambda m: format_unit(value or 0.0, m.group(2) or "count", language), template)


SCORES = frozenset({"score", "population_score"})
"""The reasons that say how much, not why: never shown as sentences."""


def explain_alert(alert: Alert, language: str = "en") -> list[str]:
    """An alert's reasons as sentences, without the score (which says how many, not why)."""
    return [explain(r.feature, r.value, language) for r in alert.reasons if r.feature not in SCORES]
