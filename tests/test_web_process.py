"""``antifraud web`` as a child process (what the benchmarks run): up with the users given, or a clear failure."""

from pathlib import Path

import httpx
import pytest

from antifraud.stack.embedded import Endpoints, StackError
from antifraud.stack.web import WebProcess
from antifraud.web.auth import token_sha256


def test_the_server_answers_as_the_configured_user_and_stops(stack: Endpoints, tmp_path: Path) -> None:
    users = [{"name": "li", "role": "teller", "branch_id": "B001", "token_sha256": token_sha256("t-li")}]
    with WebProcess(stack, tmp_path, users) as web:
        me = httpx.get(f"{web.base_url}/api/me", headers={"Authorization": "Bearer t-li"})
        assert me.status_code == 200 and (me.json()["name"], me.json()["branch_id"]) == ("li", "B001")
        assert httpx.get(f"{web.base_url}/api/me", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert web.proc is not None and web.proc.poll() is not None, "stopped on leaving the block"


def test_a_server_that_cannot_start_names_its_log(stack: Endpoints, tmp_path: Path) -> None:
    users = [{"name": "li", "role": "cashier", "token_sha256": token_sha256("t-li")}]  # no such role
    with pytest.raises(StackError, match="antifraud web did not start; log .*web.log"):
        WebProcess(stack, tmp_path, users).start()
