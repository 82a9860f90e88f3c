"""What the call stage tells carriers and the 96110 outreach team, besides alerts.

An :class:`InterceptionDecision` says what to do with one call from a listed or
flagged number; a :class:`VictimWarning` names a subscriber such a number
reached, for a warning call. Neither is an Alert: victims are not suspects, and
counting them as alerted entities would score them as false positives.
Ids follow from the call, or the (number, victim) pair, so a replayed batch
gives the same ids and consumers drop duplicates.
"""

import hashlib
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from antifraud.events.types import Msisdn, Reason, Stripped, UtcTime

Basis = Literal["block_list", "fraud_score"]
"""Why the number is acted on: a confirmed listing, or a fraud-number alert not yet confirmed."""


Action = Literal["block", "warn"]


class BlockEntry(BaseModel):
    """A listed number: what to do with its calls, why, on whose word, since when."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    number: Msisdn
    action: Action = "block"
    reason: Reason
    source: Annotated[str, Stripped(100)]
    listed_at: UtcTime


def _stable_id(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def decision_id_for(call_event_id: str) -> str:
    return _stable_id("interception", call_event_id)


def warning_id_for(number: str, victim: str) -> str:
    return _stable_id("victim_warning", number, victim)


class InterceptionDecision(BaseModel):
    """Block or warn one call from a listed (or flagged) number, with the reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    decision_id: str
    call_event_id: str
    number: Msisdn
    callee: Msisdn
    action: Literal["block", "warn"]
    basis: Basis
    reason: str
    call_time: UtcTime
    schema_version: Literal[1] = 1

    @model_validator(mode="after")
    def _id_matches(self) -> "InterceptionDecision":
        if self.decision_id != decision_id_for(self.call_event_id):
            raise ValueError("decision_id does not match the call")
        return self


class VictimWarning(BaseModel):
    """A subscriber a fraud number reached: whom 96110 should call first (rank 1 is most at risk)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    warning_id: str
    number: Msisdn
    victim: Msisdn
    basis: Basis
    rank: Annotated[int, Field(ge=1)]
    """Place among the warnings raised for this number in one batch."""
    longest_call_s: Annotated[int, Field(ge=0)]
    calls: Annotated[int, Field(ge=1)]
    last_call_at: UtcTime
    called_back: bool
    hotline: Literal["96110"] = "96110"
    schema_version: Literal[1] = 1

    @model_validator(mode="after")
    def _id_matches(self) -> "VictimWarning":
        if self.warning_id != warning_id_for(self.number, self.victim):
            raise ValueError("warning_id does not match number and victim")
        return self
