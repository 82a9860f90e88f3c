"""The block list: validated input, clear errors, and the CLI against a real redis-server."""

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest
from redis.asyncio import Redis

from antifraud import blocklist
from antifraud.cli import main

NOW = datetime(2026, 3, 2, tzinfo=timezone.utc)
NUMBER = "17012340001"


@pytest.fixture(autouse=True)
def redis_url_env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI under test finds the test's redis-server through REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", redis_url)


def listed(url: str) -> list[blocklist.BlockEntry]:
    async def read() -> list[blocklist.BlockEntry]:
        client = Redis.from_url(url)
        try:
            return await blocklist.entries(client)
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_import_parses_actions_reasons_and_comments() -> None:
    text = "# confirmed numbers\n17012340001\n+8613800001111,warn,reported twice\n\n13900002222,block\n"
    entries = blocklist.parse_import(text, "import:f.csv", NOW)
    assert [(e.number, e.action, e.reason) for e in entries] == [
        ("17012340001", "block", "imported from import:f.csv"),
        ("+8613800001111", "warn", "reported twice"),
        ("13900002222", "block", "imported from import:f.csv"),
    ]
    assert {e.source for e in entries} == {"import:f.csv"}


def test_import_rejects_the_whole_file_naming_lines_without_echoing_values() -> None:
    text = "17012340001\n1701234abcd\n13900002222,drop\n1,2,3,4\n"
    with pytest.raises(blocklist.BadImportFile) as caught:
        blocklist.parse_import(text, "import:f.csv", NOW)
    lines = [line for line, _ in caught.value.errors]
    assert lines == [2, 3, 4]
    assert "phone number" in caught.value.errors[0][1] and "action" in caught.value.errors[1][1]
    assert all("1701234abcd" not in message for _, message in caught.value.errors)


def test_cli_add_list_remove_import(redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["blocklist", "add", NUMBER, "--reason", "victim report 42"]) == 0
    [entry] = listed(redis_url)
    assert (entry.number, entry.action, entry.source, entry.reason) == (NUMBER, "block", "analyst", "victim report 42")

    capsys.readouterr()
    assert main(["blocklist", "list"]) == 0
    out = capsys.readouterr().out
    assert "170****0001" in out and NUMBER not in out, "numbers are masked unless asked"

    good = tmp_path / "numbers.csv"
    good.write_text("13900002222,warn,reported\n13900003333\n", encoding="utf-8")
    assert main(["blocklist", "import", str(good)]) == 0
    assert [e.number for e in listed(redis_url)] == ["13900002222", "13900003333", NUMBER]

    bad = tmp_path / "bad.csv"
    bad.write_text("13900004444\nnot-a-number\n", encoding="utf-8")
    assert main(["blocklist", "import", str(bad)]) == 2
    assert f"{bad}:2:" in capsys.readouterr().err
    assert len(listed(redis_url)) == 3, "a bad file imports nothing"

    assert main(["blocklist", "remove", NUMBER]) == 0
    assert main(["blocklist", "remove", NUMBER]) == 1
    assert NUMBER not in {e.number for e in listed(redis_url)}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["blocklist", "add", "12ab", "--reason", "x"], "not a phone number"),
        (["blocklist", "add", NUMBER, "--reason", "  "], "reason"),
        (["blocklist", "import", "/nonexistent/file.csv"], "cannot read"),
    ],
)
def test_cli_errors_are_clear(
    redis_url: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert listed(redis_url) == []


def test_cli_without_redis_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["blocklist", "list"]) == 2
    assert "Redis unavailable" in capsys.readouterr().err


def test_list_from_case_lists_with_the_case_as_source(redis_url: str) -> None:
    async def run() -> dict[str, blocklist.BlockEntry]:
        client = Redis.from_url(redis_url)
        try:
            await blocklist.list_from_case(client, NUMBER, "c-17", "confirmed fraud")
            return await blocklist.lookup(client, [NUMBER, "13900009999"])
        finally:
            await client.aclose()

    found = asyncio.run(run())
    assert list(found) == [NUMBER] and found[NUMBER].source == "case:c-17"
