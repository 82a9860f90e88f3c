"""Settings from environment variables, read once at start-up: one :class:`Settings` class whose fields name
their variables (pydantic-settings reads and checks them).

Every variable has a default that works on one machine; an empty variable counts as unset; a bad value
stops the process with a message naming the variable.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, DirectoryPath, Field, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from antifraud.audit.models import AuditKeys
from antifraud.forwarding.signing import MIN_KEY_BYTES
from antifraud.state.lease_queue import RetryPolicy
from antifraud.thresholds import Thresholds, load_thresholds


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not an http(s) URL")
    return raw


WebhookUrl = Annotated[str, AfterValidator(_http_url)]


@dataclass(frozen=True)
class ForwardingSettings:
    """Where confirmed cases go besides the ``antifraud.forwarding`` topic, and how hard to try."""

    webhooks: dict[str, str] = field(default_factory=dict)
    """Target (police, carrier, bank) -> webhook URL; a target without one gets the topic only."""
    keys: dict[str, tuple[bytes, ...]] = field(default_factory=dict)
    """Target -> the keys its packages are signed under (``antifraud/forwarding/signing.py``); every
    target with a webhook has at least one."""
    max_attempts: int = 8
    backoff_s: float = 2.0
    backoff_max_s: float = 300.0
    timeout_s: float = 10.0

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.max_attempts, self.backoff_s, self.backoff_max_s)


class Settings(BaseSettings):
    """Every environment variable the worker, the web app and the command line read (field: its variable)."""

    model_config = SettingsConfigDict(
        frozen=True, case_sensitive=True, env_ignore_empty=True, populate_by_name=True, extra="ignore"
    )

    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP", description="Kafka bootstrap servers, host:port[,...]"
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL", description="Redis URL")
    app_id: str = Field(
        "antifraud", validation_alias="ANTIFRAUD_APP_ID", description="Faust app id: the consumer group and state names"
    )
    worker_role: Literal["stream", "jobs", "all"] = Field(
        "all",
        validation_alias="ANTIFRAUD_WORKER_ROLE",
        description="what a worker runs: `stream` the input loop and the alerts agent, `jobs` the timers (deliveries, "
        "follow-ups, the outbox relay, the audit seal and anchor, the sweeps, the gauges), `all` both in one process",
    )
    web_host: str = Field(
        "127.0.0.1", validation_alias="ANTIFRAUD_WEB_HOST", description="where the worker serves /metrics"
    )
    web_port: int = Field(
        6066, validation_alias="ANTIFRAUD_WEB_PORT", description="the worker's /metrics port", ge=1, le=65535
    )
    partitions: int = Field(
        4, validation_alias="ANTIFRAUD_PARTITIONS", description="partitions of the input topics it creates", ge=1
    )
    batch_size: int = Field(
        2000, validation_alias="ANTIFRAUD_BATCH_SIZE", description="most records a batch takes", ge=1
    )
    batch_within_s: float = Field(
        0.2,
        validation_alias="ANTIFRAUD_BATCH_WITHIN",
        description="longest wait for a batch to fill, in seconds",
        ge=0.001,
    )
    data_dir: Path = Field(
        Path(".antifraud-data"), validation_alias="ANTIFRAUD_DATA_DIR", description="the worker's local folder"
    )
    thresholds_path: Path | None = Field(
        None,
        validation_alias="ANTIFRAUD_THRESHOLDS",
        description="a thresholds TOML instead of the packaged antifraud/thresholds.toml",
    )
    idle_s: float = Field(
        1.0,
        validation_alias="ANTIFRAUD_IDLE_SECONDS",
        description="how long an input partition that has caught up and has nothing may hold back the others (Kafka "
        "Streams' max.task.idle.ms); a record arriving later than that is late",
        ge=0,
    )
    audit_archive_dir: DirectoryPath | None = Field(
        None,
        validation_alias="ANTIFRAUD_AUDIT_ARCHIVE_DIR",
        description="where the worker archives audit records older than ANTIFRAUD_AUDIT_RETAIN_DAYS (segments, `antifraud "
        "audit archive`); unset: only by hand. Every worker must see the same folder",
    )
    audit_retain_days: float = Field(
        90.0,
        validation_alias="ANTIFRAUD_AUDIT_RETAIN_DAYS",
        description="how long audit records stay in Redis before they are archived",
        ge=0,
    )
    audit_archive_s: float = Field(
        3600.0,
        validation_alias="ANTIFRAUD_AUDIT_ARCHIVE_SECONDS",
        description="how often the worker looks for audit records to archive",
        ge=1,
    )
    case_retain_days: float = Field(
        365.0,
        validation_alias="ANTIFRAUD_CASE_RETAIN_DAYS",
        description="how long a closed or dismissed case is kept before the worker expires it (its audit records stay)",
        ge=0,
    )
    audit_anchor_s: float = Field(
        60.0,
        validation_alias="ANTIFRAUD_AUDIT_ANCHOR_SECONDS",
        description="how often the worker publishes the audit chain's head to antifraud.audit-anchors",
        ge=1,
    )
    stop_grace_s: float = Field(
        30.0,
        validation_alias="ANTIFRAUD_STOP_GRACE_SECONDS",
        description="how long a worker that stopped reading its input for good keeps serving /metrics before it exits "
        "(two scrape intervals, so Prometheus sees why)",
        ge=0,
    )
    max_record_bytes: int = Field(
        256 * 1024,
        validation_alias="ANTIFRAUD_MAX_RECORD_BYTES",
        description="an input record bigger than this is dead-lettered",
        ge=1024,
    )
    dead_letter_max_bytes: int = Field(64 * 1024, exclude=True)
    """A dead letter carries at most this many bytes of the record (with its size and SHA-256 when cut)."""
    hold_clock: Literal["event", "wall"] = Field(
        "event",
        validation_alias="ANTIFRAUD_HOLD_CLOCK",
        description="what releases held ATM transfers: their event time only (replays, tests), or also the wall clock "
        "(live operation: a quiet night still releases on time)",
    )
    hold_clock_lag_s: float = Field(
        5.0,
        validation_alias="ANTIFRAUD_HOLD_CLOCK_LAG_SECONDS",
        description="with ANTIFRAUD_HOLD_CLOCK=wall, release the holds due by now less this: the banks' clocks may run a "
        "little behind ours, and a hold must not be paid out before its 24 hours on the bank's own clock",
        ge=0,
    )
    hold_tick_s: float = Field(
        1.0,
        validation_alias="ANTIFRAUD_HOLD_TICK_SECONDS",
        description="how often the worker releases held ATM transfers by the wall clock (ANTIFRAUD_HOLD_CLOCK=wall)",
        gt=0,
    )
    hold_release_batch: int = Field(
        5000,
        validation_alias="ANTIFRAUD_HOLD_RELEASE_BATCH",
        description="holds released by the wall clock per round at most (the rest go with the next, at their own due "
        "time): one round stays short",
        gt=0,
    )
    blacklist_sweep_s: float = Field(
        60.0,
        validation_alias="ANTIFRAUD_BLACKLIST_SWEEP_SECONDS",
        description="how often the worker expires credit blacklist listings whose period ran out and deletes ended ones "
        "kept long enough (a read expires a listing at once; its accounts leave blacklist:accounts at the sweep)",
        gt=0,
    )
    blacklist_sweep_batch: int = Field(
        1000,
        validation_alias="ANTIFRAUD_BLACKLIST_SWEEP_BATCH",
        description="listings one sweep call expires or deletes at most (the sweep calls again for the rest)",
        gt=0,
    )
    audit_key: SecretStr | None = Field(
        None,
        validation_alias="ANTIFRAUD_AUDIT_KEY",
        description="the audit chain's HMAC key, 32+ bytes, never stored in Redis (required by every audited write)",
    )
    audit_old_keys: SecretStr = Field(
        SecretStr(""),
        validation_alias="ANTIFRAUD_AUDIT_OLD_KEYS",
        description="earlier audit keys, space-separated, that still verify what they signed",
    )
    secret_key: SecretStr | None = Field(
        None,
        validation_alias="ANTIFRAUD_SECRET_KEY",
        description="32+ bytes under which the pages' sessions are kept (required by antifraud web)",
    )
    users_file: Path | None = Field(
        None,
        validation_alias="ANTIFRAUD_USERS_FILE",
        description="the users allowed into the web app: a TOML or JSON file (or ANTIFRAUD_USERS inline)",
    )
    users: SecretStr | None = Field(
        None, validation_alias="ANTIFRAUD_USERS", description="the users allowed into the web app, as inline JSON"
    )
    cell_registry: Path | None = Field(
        None,
        validation_alias="ANTIFRAUD_CELL_REGISTRY",
        description="the carrier's cell registry (JSON); over [fake_base_station] registry in the thresholds",
    )
    webhook_police: WebhookUrl | None = Field(
        None, validation_alias="ANTIFRAUD_WEBHOOK_POLICE", description="police's webhook"
    )
    webhook_carrier: WebhookUrl | None = Field(
        None, validation_alias="ANTIFRAUD_WEBHOOK_CARRIER", description="the carrier's webhook"
    )
    webhook_bank: WebhookUrl | None = Field(
        None, validation_alias="ANTIFRAUD_WEBHOOK_BANK", description="the bank's webhook"
    )
    webhook_police_keys: str | None = Field(
        None,
        validation_alias="ANTIFRAUD_WEBHOOK_POLICE_KEYS",
        description="the police webhook's signing keys, space-separated, 32+ bytes each (two while rotating)",
    )
    webhook_carrier_keys: str | None = Field(
        None, validation_alias="ANTIFRAUD_WEBHOOK_CARRIER_KEYS", description="the carrier webhook's signing keys"
    )
    webhook_bank_keys: str | None = Field(
        None, validation_alias="ANTIFRAUD_WEBHOOK_BANK_KEYS", description="the bank webhook's signing keys"
    )
    delivery_max_attempts: int = Field(
        8,
        validation_alias="ANTIFRAUD_DELIVERY_MAX_ATTEMPTS",
        description="tries of a webhook delivery before it is parked",
        ge=1,
    )
    delivery_backoff_s: float = Field(
        2.0,
        validation_alias="ANTIFRAUD_DELIVERY_BACKOFF",
        description="first wait between delivery tries, in seconds (doubling)",
        ge=0.001,
    )
    delivery_backoff_max_s: float = Field(
        300.0,
        validation_alias="ANTIFRAUD_DELIVERY_BACKOFF_MAX",
        description="longest wait between delivery tries",
        ge=0.001,
    )
    atm_branches: Path | None = Field(
        None,
        validation_alias="ANTIFRAUD_ATM_BRANCHES",
        description="a JSON file of ATM id -> branch id: the counter of the branch that owns an ATM sees its "
        "warnings too",
    )
    web_docs: bool = Field(
        False,
        validation_alias="ANTIFRAUD_WEB_DOCS",
        description="serve /docs and /redoc (their scripts come from a public CDN: for development, not production); "
        "/openapi.json is always served",
    )
    session_idle_s: float = Field(
        1800.0,
        validation_alias="ANTIFRAUD_SESSION_IDLE_SECONDS",
        description="a web session unused this long ends (the page asks to log in again)",
        ge=60,
    )
    session_max_s: float = Field(
        8 * 3600.0,
        validation_alias="ANTIFRAUD_SESSION_MAX_SECONDS",
        description="a web session ends this long after login however much it is used (a working shift)",
        ge=60,
    )
    login_max_failures: int = Field(
        10,
        validation_alias="ANTIFRAUD_LOGIN_MAX_FAILURES",
        description="refused logins from one address before its logins are answered 429 for the rest of the window",
        ge=1,
    )
    login_window_s: int = Field(
        900,
        validation_alias="ANTIFRAUD_LOGIN_WINDOW_SECONDS",
        description="the window refused logins are counted in, from the first",
        ge=1,
    )
    delivery_timeout_s: float = Field(
        10.0, validation_alias="ANTIFRAUD_DELIVERY_TIMEOUT", description="how long one webhook call may take", ge=0.1
    )

    @property
    def forwarding(self) -> ForwardingSettings:
        """Where and how packages are delivered; a :class:`ConfigError` for a webhook without a signing key
        (its receiver could not tell our packages from forged ones) or a key too short."""
        targets = {"police": self.webhook_police, "carrier": self.webhook_carrier, "bank": self.webhook_bank}
        raw_keys = {
            "police": self.webhook_police_keys,
            "carrier": self.webhook_carrier_keys,
            "bank": self.webhook_bank_keys,
        }
        keys: dict[str, tuple[bytes, ...]] = {}
        for target, url in targets.items():
            variable = f"ANTIFRAUD_WEBHOOK_{target.upper()}_KEYS"
            given = tuple(k.encode() for k in (raw_keys[target] or "").split())
            if url and not given:
                raise ConfigError(
                    f"{variable} is not set: the {target} webhook's packages must be signed (32+ random bytes, "
                    'for example python -c "import secrets; print(secrets.token_urlsafe(48))")'
                )
            if any(len(k) < MIN_KEY_BYTES for k in given):
                raise ConfigError(f"{variable}: every key must be at least {MIN_KEY_BYTES} bytes")
            if url:
                keys[target] = given
        return ForwardingSettings(
            webhooks={target: url for target, url in targets.items() if url},
            keys=keys,
            max_attempts=self.delivery_max_attempts,
            backoff_s=self.delivery_backoff_s,
            backoff_max_s=self.delivery_backoff_max_s,
            timeout_s=self.delivery_timeout_s,
        )

    @classmethod
    def from_env(cls) -> "Settings":
        """The settings from the environment; a :class:`ConfigError` naming each bad variable otherwise."""
        try:
            return cls()
        except ValidationError as error:
            raise ConfigError("; ".join(map(_problem, error.errors(include_url=False)))) from None

    def thresholds(self) -> Thresholds:
        """The thresholds file this names (or the packaged one), with ``ANTIFRAUD_CELL_REGISTRY`` over its
        ``[fake_base_station] registry``: what the stages are built from, so none reads the environment."""
        thresholds = load_thresholds(self.thresholds_path)
        if self.cell_registry is None:
            return thresholds
        cells = thresholds.fake_base_station.model_copy(update={"registry": str(self.cell_registry)})
        return thresholds.model_copy(update={"fake_base_station": cells})

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Each environment variable with what it sets (the README's table is checked against it)."""
        return {str(f.validation_alias): f.description or "" for f in cls.model_fields.values() if f.validation_alias}


def _problem(error: ErrorDetails) -> str:
    """``VARIABLE='value': what is wrong``, in pydantic's words (a validator's own words for a value error)."""
    why = str(error["ctx"]["error"]) if error["type"] == "value_error" and "ctx" in error else error["msg"]
    return f"{'.'.join(map(str, error['loc']))}={error['input']!r}: {why[0].lower()}{why[1:]}"


def audit_keys(settings: Settings | None = None) -> AuditKeys:
    """The audit chain's keys: ``ANTIFRAUD_AUDIT_KEY`` (signs new records; 32+ bytes, never stored in Redis)
    and ``ANTIFRAUD_AUDIT_OLD_KEYS`` (space-separated, earlier keys that still verify what they signed)."""
    settings = settings or Settings.from_env()
    current = settings.audit_key.get_secret_value() if settings.audit_key else ""
    if not current:
        raise ConfigError(
            "ANTIFRAUD_AUDIT_KEY is not set: the audit trail is chained under it (32+ random bytes, "
            'for example python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )
    try:
        return AuditKeys(
            current.encode(), tuple(k.encode() for k in settings.audit_old_keys.get_secret_value().split())
        )
    except ValueError as error:
        raise ConfigError(f"ANTIFRAUD_AUDIT_KEY / ANTIFRAUD_AUDIT_OLD_KEYS: {error}") from None
