"""Topic names: what each Kafka topic carries and how it is keyed. Each input topic carries one event kind
and is keyed by the entity its detectors keep state for (``Event.key_field``): all calls of one caller land
on one partition, so one worker owns that caller's window. Domain packages name their topics from here;
``streams/topics.py`` creates them.
"""

INPUT_TOPICS: dict[str, str] = {
    "bank_transfer": "antifraud.bank-transfers",
    "card_opening": "antifraud.card-openings",
    "sim_registration": "antifraud.sim-registrations",
    "call_record": "antifraud.call-records",
    "sms_record": "antifraud.sms-records",
    "cell_observation": "antifraud.cell-observations",
    "fraud_report": "antifraud.fraud-reports",
}
"""Event kind -> input topic."""

ALERTS = "antifraud.alerts"
DEAD_LETTERS = "antifraud.dead-letters"
INTERCEPTIONS = "antifraud.interceptions"
"""Block/warn decisions on calls from listed or flagged numbers, keyed by the calling number."""
VICTIM_WARNINGS = "antifraud.victim-warnings"
"""Subscribers a fraud number reached, for 96110 outreach, keyed by the victim's number."""

HOLDS = "antifraud.holds"
"""Moves of ATM transfer holds (HoldEvent) and payee warnings (PayeeFlagged), ``antifraud/holds/models.py``,
keyed by the payer account."""

FREEZE_REQUESTS = "antifraud.freeze-requests"
"""Stop-payment and freeze requests from a traced fraud report (FreezeRequest, ``antifraud/holds/reports.py``),
keyed by the account to act on."""

FORWARDING = "antifraud.forwarding"
"""Packages of confirmed cases for police, carriers and banks (``antifraud/forwarding/models.py``), keyed by case id."""

CREDIT_BLACKLIST = "antifraud.credit-blacklist"
"""Changes of credit blacklist listings (ListingEvent, ``antifraud/credit/models.py``), keyed by the party's id."""

AUDIT_ANCHORS = "antifraud.audit-anchors"
"""The audit chain's head now and then (Anchor, ``antifraud/audit/models.py``): ``audit verify --anchors``."""

ALL_TOPICS: tuple[str, ...] = (
    *INPUT_TOPICS.values(),
    ALERTS,
    DEAD_LETTERS,
    INTERCEPTIONS,
    VICTIM_WARNINGS,
    HOLDS,
    FREEZE_REQUESTS,
    FORWARDING,
    CREDIT_BLACKLIST,
    AUDIT_ANCHORS,
)
