"""Settings from the environment: defaults, an empty variable as unset, and errors that name the variable."""

import re
from pathlib import Path

import pytest

import antifraud
from antifraud.config import ConfigError, Settings, audit_keys
from antifraud.thresholds import MOVED_TO_SETTINGS, load_thresholds

README = Path(__file__).parent.parent / "README.md"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)


def test_defaults_work_on_one_machine_and_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTIFRAUD_PARTITIONS", "")
    settings = Settings.from_env()
    assert (settings.kafka_bootstrap, settings.redis_url, settings.partitions) == (
        "127.0.0.1:9092",
        "redis://127.0.0.1:6379/0",
        4,
    )
    assert settings.forwarding.webhooks == {} and settings.hold_clock == "event" and settings.audit_archive_dir is None


def test_values_are_read_and_typed_and_forwarding_is_built_from_its_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ANTIFRAUD_PARTITIONS", "12")
    monkeypatch.setenv("ANTIFRAUD_BATCH_WITHIN", "0.05")
    monkeypatch.setenv("ANTIFRAUD_AUDIT_ARCHIVE_DIR", str(tmp_path))
    monkeypatch.setenv("ANTIFRAUD_WEBHOOK_BANK", "https://bank.example/cases")
    monkeypatch.setenv("ANTIFRAUD_WEBHOOK_BANK_KEYS", f"{'o' * 32} {'n' * 40}")
    monkeypatch.setenv("ANTIFRAUD_DELIVERY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("ANTIFRAUD_HOLD_CLOCK", "wall")
    settings = Settings.from_env()
    assert (settings.partitions, settings.batch_within_s, settings.audit_archive_dir) == (12, 0.05, tmp_path)
    assert settings.forwarding.webhooks == {"bank": "https://bank.example/cases"}
    assert settings.forwarding.keys == {"bank": (b"o" * 32, b"n" * 40)}, "two keys while rotating"
    monkeypatch.setenv("ANTIFRAUD_WEBHOOK_BANK_KEYS", "short")
    with pytest.raises(ConfigError, match="ANTIFRAUD_WEBHOOK_BANK_KEYS: every key must be at least 32 bytes"):
        _ = Settings.from_env().forwarding
    monkeypatch.delenv("ANTIFRAUD_WEBHOOK_BANK_KEYS")
    with pytest.raises(ConfigError, match="ANTIFRAUD_WEBHOOK_BANK_KEYS is not set: the bank webhook's packages must"):
        _ = Settings.from_env().forwarding
    assert settings.forwarding.max_attempts == 3 and settings.hold_clock == "wall"


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("ANTIFRAUD_PARTITIONS", "many", "ANTIFRAUD_PARTITIONS='many': input should be a valid integer"),
        ("ANTIFRAUD_PARTITIONS", "0", "ANTIFRAUD_PARTITIONS='0': input should be greater than or equal to 1"),
        ("ANTIFRAUD_WEBHOOK_POLICE", "ftp://x", "ANTIFRAUD_WEBHOOK_POLICE='ftp://x': not an http(s) URL"),
        ("ANTIFRAUD_AUDIT_ARCHIVE_DIR", "/no/such/dir", "ANTIFRAUD_AUDIT_ARCHIVE_DIR='/no/such/dir': path does not"),
        ("ANTIFRAUD_HOLD_CLOCK", "sun", "ANTIFRAUD_HOLD_CLOCK='sun': input should be 'event' or 'wall'"),
        ("ANTIFRAUD_DELIVERY_TIMEOUT", "0", "ANTIFRAUD_DELIVERY_TIMEOUT='0': input should be greater than or equal"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        Settings.from_env()
    assert str(error.value).startswith(says)


def test_two_bad_values_are_both_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTIFRAUD_PARTITIONS", "x")
    monkeypatch.setenv("ANTIFRAUD_WEB_PORT", "70000")
    with pytest.raises(
        ConfigError,
        match=r"ANTIFRAUD_WEB_PORT='70000'.*; ANTIFRAUD_PARTITIONS='x'|ANTIFRAUD_PARTITIONS='x'.*; ANTIFRAUD_WEB_PORT",
    ):
        Settings.from_env()


def test_the_readme_lists_every_variable_with_its_meaning() -> None:
    section = README.read_text(encoding="utf-8").split("## Configuration (environment variables)")[1].split("\n## ")[0]
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))
    variables = Settings.variables()
    assert set(variables) <= listed, f"not in the README: {sorted(set(variables) - listed)}"
    assert all(variables.values()), "every variable says what it sets"


def test_a_thresholds_file_with_an_operational_knob_says_which_setting_took_its_place(tmp_path: Path) -> None:
    """How often and how much the worker does moved to settings; an older thresholds file is refused with
    the variable to set instead, not loaded with the value silently ignored."""
    packaged = (Path(antifraud.__file__).parent / "thresholds.toml").read_text(encoding="utf-8")
    assert load_thresholds().holds.period_hours == 24, "the packaged file loads"
    older = tmp_path / "thresholds.toml"
    older.write_text(packaged.replace("[holds]\n", "[holds]\ntick_seconds = 1\n"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[holds\] tick_seconds is now the setting ANTIFRAUD_HOLD_TICK_SECONDS"):
        load_thresholds(older)
    assert set(MOVED_TO_SETTINGS.values()) <= set(Settings.variables()), "each knob went to a setting that exists"


def test_the_keys_are_settings_that_never_show_in_a_repr_or_a_log(monkeypatch: pytest.MonkeyPatch) -> None:
    current, old = "k" * 40, "o" * 40
    monkeypatch.setenv("ANTIFRAUD_AUDIT_KEY", current)
    monkeypatch.setenv("ANTIFRAUD_AUDIT_OLD_KEYS", old)
    monkeypatch.setenv("ANTIFRAUD_SECRET_KEY", "s" * 40)
    monkeypatch.setenv("ANTIFRAUD_USERS", '{"users": []}')
    settings = Settings.from_env()
    assert all(secret not in repr(settings) for secret in (current, old, "s" * 40, '"users"'))
    keys = audit_keys(settings)
    assert (keys.current, keys.old) == (current.encode(), (old.encode(),))
    monkeypatch.delenv("ANTIFRAUD_AUDIT_KEY")
    with pytest.raises(ConfigError, match="ANTIFRAUD_AUDIT_KEY is not set"):
        audit_keys(Settings.from_env())
