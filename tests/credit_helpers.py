"""Parties, accounts and the listing the credit blacklist's tests share."""

import asyncio
from datetime import datetime, timezone
from typing import Any

from antifraud.credit.models import ListingDraft
from antifraud.events.types import make_id_number
from antifraud.thresholds import load_thresholds

LIMITS = load_thresholds().credit_blacklist
T0 = datetime(2026, 3, 2, 9, tzinfo=timezone.utc)
PERSON = make_id_number("320585", "19900101", 7)
OTHER_PERSON = make_id_number("320585", "19851212", 21)
COMPANY = "91110108551385082Q"
"""A real, published unified social credit code (its check character is Q)."""
ACCOUNT = "6222000000000999"
PHONE = "17012340001"


def listing_fields(
    party_id: str = PERSON, kind: str = "id_number", case_id: str = "case-1", **changes: Any
) -> dict[str, Any]:
    """A listing as the API takes it: a party who sold bank cards to a fraud team, with an account and a phone."""
    return {
        "party": {"kind": kind, "id": party_id},
        "case_id": case_id,
        "reason_code": "card_account_trade",
        "reason": "sold bank cards to a fraud team",
        "evidence": ["alert:a1"],
        "accounts": [ACCOUNT],
        "phones": [PHONE],
        **changes,
    }


def draft(party_id: str = PERSON, kind: str = "id_number", case_id: str = "case-1", **changes: Any) -> ListingDraft:
    return ListingDraft.model_validate(listing_fields(party_id, kind, case_id, **changes))


def confirmed_case(redis_url: str, party_id: str = PERSON) -> str:
    """A bulk-opening case about ``party_id`` confirmed by an analyst (what backs a listing); its id."""
    from redis.asyncio import Redis

    from antifraud.alerts.models import Entity
    from antifraud.audit.service import AuditLog
    from antifraud.case.service import CaseService
    from tests.conftest import AUDIT_KEYS
    from tests.test_alert_model import make_alert

    async def go() -> str:
        async with Redis.from_url(redis_url) as redis:
            cases = CaseService(redis, AuditLog(redis, AUDIT_KEYS))
            case = await cases.fold_alert(
                make_alert(detector="card_opening", entity=Entity(kind="id_number", value=party_id))
            )
            assert case is not None
            await cases.review(case.case_id, actor="analyst")
            await cases.confirm(case.case_id, actor="analyst", reason="opened cards at six banks in a week")
            return case.case_id

    return asyncio.run(go())
