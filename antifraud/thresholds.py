"""Load detector thresholds from the one TOML file (see thresholds.toml)."""

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ReasonCode = Literal["telecom_fraud", "card_account_trade"]
"""Why a party is on the credit blacklist: the two groups of art. 3 of the 2024 joint punishment measures for
telecom fraud: (1) people criminally punished for telecom fraud or a related crime, (2) those a city-level
police organ finds buying, selling, renting or lending phone cards or accounts (periods and sources in
``[credit_blacklist]``, thresholds.toml)."""

RepairCondition = Literal["behaviour_corrected", "effects_removed", "training_completed", "public_service"]
"""Plan (三)3, how a blacklisted party repairs its credit: correcting the behaviour, removing its effects,
training, public-interest work."""


class FeatureRule(BaseModel):
    """One fraud-number feature: the value it must reach (or stay under) and its weight in the score."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    threshold: float = Field(ge=0)
    weight: float = Field(ge=0, le=1)


class FraudNumberThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    profile_window_seconds: int = Field(gt=0)
    burst_window_seconds: int = Field(gt=0)
    max_calls_kept: int = Field(gt=0)
    min_distinct_callees: int = Field(gt=0)
    alert_score: float = Field(gt=0)
    short_call_seconds: int = Field(gt=0)
    one_ring_seconds: int = Field(ge=0)
    utc_offset_hours: int = Field(ge=-12, le=14)
    night_start_hour: int = Field(ge=0, le=23)
    night_end_hour: int = Field(ge=0, le=23)
    burst_calls: FeatureRule
    short_call_share: FeatureRule
    one_ring_share: FeatureRule
    international_share: FeatureRule
    night_share: FeatureRule
    imei_changes: FeatureRule
    callback_ratio_max: FeatureRule
    repeat_callee_ratio_max: FeatureRule
    baseline: str = ""
    """Path of a population baseline (``antifraud baseline fit``); with one, each reason of an alert says how
    far out in the population its value is. Empty: none."""
    model: str = ""
    """Path of a model learned from analysts' decisions (``antifraud model fit``), fitted against
    ``baseline``: it runs in shadow, its score and each feature's part in it shown on the alert. Empty: none."""

    @model_validator(mode="after")
    def _model_needs_baseline(self) -> "FraudNumberThresholds":
        if self.model and not self.baseline:
            raise ValueError("a learned model (model) weighs the population baseline's rarities: name the baseline too")
        return self


class InterceptionThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_victim_warnings_per_number: int = Field(gt=0)
    warn_on_alert: bool


class PerIdWindows(BaseModel):
    """The nested windows of a per-ID-number history: burst within window within history."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    burst_days: int = Field(gt=0)
    window_days: int = Field(gt=0)
    history_days: int = Field(gt=0)

    @model_validator(mode="after")
    def _windows_nested(self) -> "PerIdWindows":
        if not self.burst_days <= self.window_days <= self.history_days:
            raise ValueError("need burst_days <= window_days <= history_days")
        return self


class SimRegistrationThresholds(PerIdWindows):
    """Bulk and unverified SIM registration per ID number (see thresholds.toml for the basis)."""

    max_sims_burst: int = Field(gt=0)
    max_sims_window: int = Field(gt=0)
    max_unverified_window: int = Field(ge=0)
    max_sims_per_carrier: int = Field(gt=0)
    max_tracked: int = Field(gt=0)


class FakeBaseStationThresholds(BaseModel):
    """Fake base stations from cell observations and SMS (see thresholds.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    registry: str = ""
    """Path of the carrier's cell registry (JSON); ANTIFRAUD_CELL_REGISTRY overrides; empty: none."""
    window_seconds: int = Field(gt=0)
    min_handsets: int = Field(gt=0)
    max_weak_level: int = Field(ge=0, le=3)
    min_anomaly_handsets: int = Field(gt=0)
    max_distance_km: float = Field(gt=0)
    min_link_sms: int = Field(gt=0)
    min_sender_sms: int = Field(gt=0)
    max_tracked: int = Field(gt=0)


class PhishingSmsThresholds(BaseModel):
    """Phishing links in SMS and the senders spreading them (see thresholds.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    window_seconds: int = Field(gt=0)
    min_receivers: int = Field(gt=0)
    max_edits: int = Field(ge=0, le=3)
    min_brand_length: int = Field(gt=0)
    official_domains: list[str] = Field(min_length=1)
    listed_domains: list[str] = []
    max_tracked: int = Field(gt=0)


class CardOpeningThresholds(PerIdWindows):
    """Bulk card opening per ID number across banks and branches (see thresholds.toml for the basis)."""

    max_cards_burst: int = Field(gt=0)
    max_banks_burst: int = Field(gt=0)
    max_cards_window: int = Field(gt=0)
    max_cards_history: int = Field(gt=0)
    max_counter_cards_per_bank: int = Field(gt=0)
    max_tracked: int = Field(gt=0)


class CardTradeThresholds(BaseModel):
    """New accounts paid by unrelated people: sold or rented cards (see thresholds.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    new_account_days: int = Field(gt=0)
    max_unrelated_payers: int = Field(ge=0)
    max_unrelated_payers_bulk_opener: int = Field(ge=0)
    """The limit when the holder's ID was flagged for bulk card opening (a likely sold card)."""
    max_tracked: int = Field(gt=0)


class AccountRegistryThresholds(BaseModel):
    """How long card openings are remembered for "newly opened" checks (see thresholds.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    horizon_days: int = Field(gt=0)


class TransferRiskThresholds(BaseModel):
    """Suspicious transfers and mule accounts (see thresholds.toml for the basis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    utc_offset_hours: int = Field(ge=-12, le=14)
    history_days: int = Field(gt=0)
    max_outflows_kept: int = Field(gt=0)
    max_inflows_kept: int = Field(gt=0)
    min_amount_fen: int = Field(gt=0)
    min_history: int = Field(gt=0)
    call_window_seconds: int = Field(gt=0)
    fan_in_window_seconds: int = Field(gt=0)
    pass_through_seconds: int = Field(gt=0)
    pass_on_window_seconds: int = Field(gt=0)
    whole_share: float = Field(gt=0, le=1)
    """An outflow of at least this share of an inflow moves that inflow on nearly whole."""
    quiet_seconds: int = Field(gt=0)
    reporting_limits_fen: dict[str, list[int]]
    """Channel -> PBOC large-value reporting limits that apply to it."""
    alert_score: float = Field(gt=0)
    mule_alert_score: float = Field(gt=0)
    baseline: str = ""
    """The accounts' population baseline file (``antifraud baseline fit --population accounts``); empty: none."""
    mule_population_score: float = Field(gt=0)
    blacklisted_payee: FeatureRule
    call_before_hours_max: FeatureRule
    flagged_call_minutes: FeatureRule
    new_payee: FeatureRule
    amount_multiple: FeatureRule
    structuring_share: FeatureRule
    hour_habit_max: FeatureRule
    channel_habit_max: FeatureRule
    payee_fan_in: FeatureRule
    payee_flagged: FeatureRule
    payer_flagged: FeatureRule
    payee_account_age_days_max: FeatureRule
    pass_through_share: FeatureRule
    fan_in_payers: FeatureRule


class MoneyTrailThresholds(BaseModel):
    """How far a fraud report follows the victim's money (see thresholds.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_hops: int = Field(gt=0, le=10)
    hop_hours: float = Field(gt=0)
    """An account's outflow carries tainted money only within this many hours after the tainted inflow."""
    index_hours: float = Field(gt=0)
    """How long the per-account index of outgoing transfers keeps a transfer."""
    report_margin_minutes: float = Field(default=30, ge=0)
    """A fraud report event's victim transfers are looked for this long either side of its ``fraud_time``."""

    @model_validator(mode="after")
    def _index_covers_a_hop(self) -> "MoneyTrailThresholds":
        if self.index_hours < self.hop_hours:
            raise ValueError("need index_hours >= hop_hours")
        return self


class HoldThresholds(BaseModel):
    """The ATM transfer hold (see thresholds.toml for the basis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    period_hours: float = Field(gt=0)
    retain_days: int = Field(gt=0)
    payee_flag_hours: float = Field(gt=0)
    max_event_time_ahead_minutes: float = Field(gt=0)
    trail: MoneyTrailThresholds


class CreditBlacklistThresholds(BaseModel):
    """Credit blacklist periods and repair (see thresholds.toml for the basis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    period_years: dict[ReasonCode, int]
    """Reason code -> default listing period in calendar years; every reason code needs one."""
    max_period_years: int = Field(gt=0)
    min_listed_years_before_repair: int = Field(ge=0)
    repair_conditions: list[RepairCondition] = Field(min_length=1)
    """Every one must be met before a repair removes a listing."""
    keep_ended_years: int = Field(gt=0)
    """How long an ended listing stays as the party's history before it is deleted."""

    @model_validator(mode="after")
    def _periods_complete_and_capped(self) -> "CreditBlacklistThresholds":
        missing = set(get_args(ReasonCode)) - set(self.period_years)
        if missing:
            raise ValueError(f"period_years needs every reason code; missing {sorted(missing)}")
        if not all(0 < years <= self.max_period_years for years in self.period_years.values()):
            raise ValueError("every period_years value must be positive and at most max_period_years")
        return self


class StreamThresholds(BaseModel):
    """How what one entity's event tells another takes effect (see thresholds.toml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cross_entity_delay_seconds: float = Field(gt=0, le=600)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    stream: StreamThresholds
    fraud_number: FraudNumberThresholds
    interception: InterceptionThresholds
    sim_registration: SimRegistrationThresholds
    fake_base_station: FakeBaseStationThresholds
    phishing_sms: PhishingSmsThresholds
    card_opening: CardOpeningThresholds
    card_trade: CardTradeThresholds
    account_registry: AccountRegistryThresholds
    transfer_risk: TransferRiskThresholds
    holds: HoldThresholds
    credit_blacklist: CreditBlacklistThresholds


MOVED_TO_SETTINGS = {
    ("holds", "wall_clock_lag_seconds"): "ANTIFRAUD_HOLD_CLOCK_LAG_SECONDS",
    ("holds", "tick_seconds"): "ANTIFRAUD_HOLD_TICK_SECONDS",
    ("holds", "max_releases_per_batch"): "ANTIFRAUD_HOLD_RELEASE_BATCH",
    ("credit_blacklist", "sweep_seconds"): "ANTIFRAUD_BLACKLIST_SWEEP_SECONDS",
    ("credit_blacklist", "sweep_batch"): "ANTIFRAUD_BLACKLIST_SWEEP_BATCH",
}
"""How often and how much the worker does are operational settings, not detection thresholds: a thresholds
file written before they moved is refused with where each went."""


def _moved(document: dict[str, Any]) -> list[str]:
    return [
        f"[{table}] {key} is now the setting {variable}"
        for (table, key), variable in MOVED_TO_SETTINGS.items()
        if key in document.get(table, {})
    ]


def load_thresholds(path: Path | None = None) -> Thresholds:
    """Read and validate the thresholds; the packaged defaults when no path is given."""
    if path is None:
        text = resources.files("antifraud").joinpath("thresholds.toml").read_text(encoding="utf-8")
        source = "packaged thresholds.toml"
    else:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read thresholds file {source}: {exc.strerror}") from exc
    try:
        document = tomllib.loads(text)
        if moved := _moved(document):
            raise ValueError(f"thresholds in {source}: {'; '.join(moved)} (an environment variable, see the README)")
        return Thresholds.model_validate(document)
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"invalid thresholds in {source}: {exc}") from exc
