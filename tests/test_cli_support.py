"""The shared runner of Redis-backed subcommands: exit codes and messages per kind of error, over a real redis-server."""

import pytest
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from antifraud.cli_support import BAD_INPUT, REFUSED, run_on_redis
from antifraud.config import ConfigError


class _Unknown(LookupError):
    pass


class _Party(BaseModel):
    id_number: str = Field(pattern=r"^\d{17}[\dX]$")


@pytest.fixture(autouse=True)
def redis_url_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)


def test_the_command_runs_on_the_configured_redis_and_its_exit_code_is_returned() -> None:
    async def command(redis: Redis) -> int:
        await redis.set("k", "v")
        return 7 if await redis.get("k") == b"v" else 0

    assert run_on_redis("antifraud x", command) == 7


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (_Unknown("no hold abc"), REFUSED, "antifraud x: no hold abc\n"),
        (ValueError("--from: must be before --to"), BAD_INPUT, "antifraud x: --from: must be before --to\n"),
    ],
)
def test_refused_and_bad_input_are_exit_codes_with_one_line(
    error: Exception, code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def command(redis: Redis) -> int:
        raise error

    assert run_on_redis("antifraud x", command, refused=(_Unknown,)) == code
    assert capsys.readouterr().err == message


def test_a_validation_error_names_the_field_not_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "32058519900101123"  # one digit short: the value must not be echoed

    async def command(redis: Redis) -> int:
        _Party(id_number=secret)
        return 0

    assert run_on_redis("antifraud x", command) == BAD_INPUT
    err = capsys.readouterr().err
    assert err.startswith("antifraud x: id_number: String should match pattern") and secret not in err


def test_an_unreachable_redis_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")

    async def command(redis: Redis) -> int:
        await redis.ping()
        return 0

    assert run_on_redis("antifraud x", command) == BAD_INPUT
    assert "antifraud x: Redis unavailable (ConnectionError); set REDIS_URL" in capsys.readouterr().err


def test_a_configuration_error_is_left_to_the_main_command() -> None:
    async def command(redis: Redis) -> int:
        raise ConfigError("ANTIFRAUD_PARTITIONS='many': input should be a valid integer")

    with pytest.raises(ConfigError):
        run_on_redis("antifraud x", command)
