"""What a confirmed case sends to police, carriers and banks, and the delivery that tracks each send.

Packages (plan (一)1 items 9 and 11) are JSON documents another centre can read
without our code: their schema is :class:`ForwardingPackage`'s
``model_json_schema()``, exported to ``docs/case-package.schema.json`` (see
``docs/forwarding.md``). Three kinds, told apart by ``kind``:

- ``police_case`` to 110 or the anti-fraud centre: the case, its decision, every
  alert with reasons and evidence event ids, the analysts' notes and, for an
  account, the ATM holds it paid or was paid by and the money trail from it
  (accounts reached, hops, amounts at risk, the transfers that carried it);
- ``carrier_shutdown``: numbers to shut down;
- ``bank_order``: accounts to freeze (a mule's, whose money may go back to
  victims) or to close (a sold card).

A delivery is one package to one target. Its id, which is also the package id
and the ``Idempotency-Key`` header, follows from (case, target, case version):
confirming or forwarding the same state of a case twice is one delivery, and a
receiver applies a package once however often it arrives. States::

    pending --attempt ok--> delivered
    pending --attempt failed--> pending (next attempt after a backoff) | failed (after max attempts)
    failed --retry by an analyst--> pending
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from antifraud.alerts.models import Alert, Entity, Severity
from antifraud.case.models import Case, Note, WorkRefused
from antifraud.events.types import AccountNo, Msisdn, UtcTime
from antifraud.holds.models import Hold, stable_id
from antifraud.holds.reports import TrailView

Target = Literal["police", "carrier", "bank"]
DeliveryState = Literal["pending", "delivered", "failed"]
SCHEMA_VERSION: Literal[1] = 1


def delivery_id_for(case_id: str, target: Target, case_version: int) -> str:
    """Stable: one state of one case to one target is one delivery, whoever asks and how often."""
    return stable_id("delivery", case_id, target, str(case_version))


def targets_for(entity: Entity) -> list[Target]:
    """Police always; the carrier for a number (to shut it down), the bank for an account (to freeze or close it)."""
    carrier: list[Target] = ["carrier"] if entity.kind == "phone" else []
    bank: list[Target] = ["bank"] if entity.kind == "account" else []
    return ["police", *carrier, *bank]


class _Package(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = SCHEMA_VERSION
    package_id: str = Field(description="The delivery id, also sent as the Idempotency-Key header: apply once.")
    case_id: str
    case_version: int = Field(ge=1, description="The version of the case this package was built from.")
    issued_at: UtcTime
    decided_by: str | None = Field(description="The analyst who confirmed the case.")
    reason: str | None = Field(description="The analyst's reason for confirming.")


class PoliceCase(_Package):
    """A confirmed case with its evidence, for 110 or an anti-fraud centre."""

    kind: Literal["police_case"] = "police_case"
    scenario: str = Field(description="fraud_number, bulk_opening, mule, fake_base_station (or a detector's name).")
    entity: Entity
    severity: Severity
    score: float
    first_seen: UtcTime = Field(description="Earliest window start of the case's alerts (event time).")
    last_seen: UtcTime = Field(description="Latest window end of the case's alerts (event time).")
    alerts: list[Alert] = Field(min_length=1)
    notes: list[Note]
    holds: list[Hold] = Field(
        default=[],
        description="ATM transfers held (24-hour rule) that the case's account paid or was paid by, "
        "with their state when the package was built.",
    )
    money_trail: TrailView | None = Field(
        default=None,
        description="For an account: where its money went from its first alert to one hop period "
        "after its last; retained_fen of each node is the amount at risk there.",
    )


class NumberOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    number: Msisdn
    action: Literal["shut_down"] = "shut_down"


class CarrierShutdown(_Package):
    """Numbers confirmed as used in fraud, for the carrier to shut down (plan (一)1 item 9)."""

    kind: Literal["carrier_shutdown"] = "carrier_shutdown"
    numbers: list[NumberOrder] = Field(min_length=1)


class AccountOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    account: AccountNo
    action: Literal["freeze", "close"] = Field(
        description="freeze: a mule's account, whose funds may be returned by legal process; close: a sold card."
    )


class BankOrder(_Package):
    """Accounts confirmed as used in fraud, for the bank to freeze or close (plan (一)1 items 6 and 9)."""

    kind: Literal["bank_order"] = "bank_order"
    accounts: list[AccountOrder] = Field(min_length=1)


class ForwardingPackage(RootModel[Annotated[PoliceCase | CarrierShutdown | BankOrder, Field(discriminator="kind")]]):
    """One package as sent on ``antifraud.forwarding`` and POSTed to a target's webhook."""


@dataclass(frozen=True)
class CaseEvidence:
    """What a police package documents besides the case itself."""

    alerts: list[Alert]
    notes: list[Note]
    holds: list[Hold] = field(default_factory=list)
    money_trail: TrailView | None = None


def package_for(case: Case, target: Target, *, evidence: CaseEvidence, now: datetime) -> ForwardingPackage:
    """The package ``target`` gets for this version of ``case`` (pure)."""
    header = {
        "package_id": delivery_id_for(case.case_id, target, case.version),
        "case_id": case.case_id,
        "case_version": case.version,
        "issued_at": now,
        "decided_by": case.decided_by,
        "reason": case.decision_reason,
    }
    body: PoliceCase | CarrierShutdown | BankOrder
    if target == "police":
        body = PoliceCase(
            **header,
            scenario=case.scenario,
            entity=case.entity,
            severity=case.severity,
            score=case.score,
            first_seen=case.first_seen,
            last_seen=case.last_seen,
            alerts=sorted(evidence.alerts, key=lambda a: (a.window_start, a.alert_id)),
            notes=evidence.notes,
            holds=evidence.holds,
            money_trail=evidence.money_trail,
        )
    elif target == "carrier":
        body = CarrierShutdown(**header, numbers=[NumberOrder(number=case.entity.value)])
    else:
        action = "close" if case.scenario == "bulk_opening" else "freeze"
        body = BankOrder(**header, accounts=[AccountOrder(account=case.entity.value, action=action)])
    return ForwardingPackage(body)


class Delivery(BaseModel):
    """One package to one target, and how its sending went."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    delivery_id: str
    case_id: str
    case_version: int
    target: Target
    state: DeliveryState = "pending"
    attempts: int = 0
    """Attempts since the delivery was created or last retried by an analyst."""
    retries: int = 0
    """Times an analyst sent a failed delivery back to pending."""
    created_at: UtcTime
    created_by: str
    next_attempt_at: UtcTime | None = None
    last_error: str | None = None
    """Why the last attempt failed: a status code or an error class, never a payload."""
    delivered_at: UtcTime | None = None
    webhook: bool | None = None
    """Whether the last attempt POSTed to a webhook (None before any attempt)."""


def new_delivery(case: Case, target: Target, *, actor: str, now: datetime) -> Delivery:
    return Delivery(
        delivery_id=delivery_id_for(case.case_id, target, case.version),
        case_id=case.case_id,
        case_version=case.version,
        target=target,
        created_at=now,
        created_by=actor,
        next_attempt_at=now,
    )


def succeeded(delivery: Delivery, *, now: datetime, webhook: bool) -> Delivery:
    if delivery.state != "pending":
        raise WorkRefused("delivery", delivery.delivery_id, delivery.state, "delivered")
    return delivery.model_copy(
        update={
            "state": "delivered",
            "attempts": delivery.attempts + 1,
            "delivered_at": now,
            "next_attempt_at": None,
            "webhook": webhook,
            "last_error": None,
        }
    )


def attempt_failed(delivery: Delivery, *, error: str, next_at: datetime | None) -> Delivery:
    """Pending again at ``next_at``, or failed (parked for an analyst) when it is None
    (:meth:`~antifraud.state.lease_queue.RetryPolicy.next_attempt`)."""
    if delivery.state != "pending":
        raise WorkRefused("delivery", delivery.delivery_id, delivery.state, "attempt")
    return delivery.model_copy(
        update={
            "state": "failed" if next_at is None else "pending",
            "attempts": delivery.attempts + 1,
            "last_error": error,
            "webhook": True,
            "next_attempt_at": next_at,
        }
    )


def retried(delivery: Delivery, *, now: datetime) -> Delivery:
    """An analyst sends a failed delivery back to pending, due at once, with a fresh count of attempts."""
    if delivery.state != "failed":
        raise WorkRefused("delivery", delivery.delivery_id, delivery.state, "retry")
    return delivery.model_copy(
        update={
            "state": "pending",
            "attempts": 0,
            "retries": delivery.retries + 1,
            "next_attempt_at": now,
        }
    )


if __name__ == "__main__":
    # python -m antifraud.forwarding.models > docs/case-package.schema.json
    print(json.dumps(ForwardingPackage.model_json_schema(), indent=2, ensure_ascii=False))
