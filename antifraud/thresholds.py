"""Load detector thresholds from the one TOML file (see thresholds.toml)."""

import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


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


class InterceptionThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_victim_warnings_per_number: int = Field(gt=0)
    warn_on_alert: bool


class SimRegistrationThresholds(BaseModel):
    """Bulk and unverified SIM registration per ID number (see thresholds.toml for the basis)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    burst_days: int = Field(gt=0)
    max_sims_burst: int = Field(gt=0)
    window_days: int = Field(gt=0)
    max_sims_window: int = Field(gt=0)
    max_unverified_window: int = Field(ge=0)
    history_days: int = Field(gt=0)
    max_sims_per_carrier: int = Field(gt=0)
    max_tracked: int = Field(gt=0)

    @model_validator(mode="after")
    def _windows_nested(self) -> "SimRegistrationThresholds":
        if not self.burst_days <= self.window_days <= self.history_days:
            raise ValueError("need burst_days <= window_days <= history_days")
        return self


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


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fraud_number: FraudNumberThresholds
    interception: InterceptionThresholds
    sim_registration: SimRegistrationThresholds
    fake_base_station: FakeBaseStationThresholds
    phishing_sms: PhishingSmsThresholds


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
        return Thresholds.model_validate(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, ValidationError) as exc:
        raise ValueError(f"invalid thresholds in {source}: {exc}") from exc
