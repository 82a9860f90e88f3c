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


def test_the_access_log_masks_phone_account_and_id_numbers(stack: Endpoints, tmp_path: Path) -> None:
    users = [{"name": "li", "role": "analyst", "token_sha256": token_sha256("t-li")}]
    numbers = {"6222000011112222": "622*********2222", "110101199003074514": "110***********4514"}
    numbers["13812345678"] = "138****5678"
    with WebProcess(stack, tmp_path, users, access_log=True) as web:
        path = "/api/holds/6222000011112222?id=110101199003074514&phone=13812345678"
        httpx.get(f"{web.base_url}{path}", headers={"Authorization": "Bearer t-li"})
    log = web.log_path.read_text()
    assert "GET /api/holds/" in log, "the request was logged"
    for full, masked in numbers.items():
        assert full not in log and masked in log, full
