"""The counter page in headless Chromium over the real stack: a check before paying, a live warning, and
the teller escalating it to the police queue."""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from antifraud.events.models import BankTransfer, CallRecord
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from tests.browser_helpers import another_user, browser, screenshot, sign_in
from tests.conftest import wait_consumed
from tests.credit_helpers import confirmed_case, listing_fields
from tests.test_holds import hold_id_for
from tests.test_holds_actions import hold_some, on_redis
from tests.test_pipeline_integration import block_number, produce
from tests.web_helpers import BRANCH, as_user, serve

pytestmark = pytest.mark.browser

LISTED = "17055550009"
VICTIM_PHONE = "13900000001"
VICTIM_ACCOUNT = "6222000000000001"
MULE = "6222000000000666"


def test_a_teller_is_told_to_block_then_sees_the_live_warning_when_the_transfer_goes_through(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    block_number(stack, LISTED, "case-9")
    worker = start_worker()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    call = CallRecord(
        event_id="call-1",
        event_time=now - timedelta(minutes=10),
        caller=LISTED,
        callee=VICTIM_PHONE,
        start=now - timedelta(minutes=30),
        duration_s=1200,
        cell_id="cell-1",
        imei="860000000000001",
    )
    produce(stack, [call])
    wait_consumed(worker, 1)

    with serve(stack) as base_url, browser() as context:
        page = context.new_page()
        sign_in(page, base_url, "teller")
        assert page.url.endswith("/counter")
        page.wait_for_selector("#stream-status[data-state=live]")
        page.click("#sound")  # a click lets the page make sound

        form = "#check "
        page.fill(form + "[name=payer_account]", VICTIM_ACCOUNT)
        page.fill(form + "[name=payer_name]", "王芳")
        page.fill(form + "[name=payer_id_number]", "320585198609013410")
        page.fill(form + "[name=payer_phone]", VICTIM_PHONE)
        page.fill(form + "[name=payee_account]", MULE)
        page.fill(form + "[name=payee_name]", "李强")
        page.fill(form + "[name=amount]", "30000")
        page.click(form + "button[type=submit]")
        page.wait_for_selector("#check-result:not([hidden])")
        assert page.inner_text("#decision") == "拦截"  # the interface speaks Chinese unless switched
        assert page.is_visible("#reasons [data-code=call_before_hours_max]")
        screenshot(page, "counter-check-block")

        page.fill(form + "[name=payer_id_number]", "320585198609013411")  # one digit mistyped
        page.click(form + "button[type=submit]")
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error") == "付款人身份证号校验位不符，请核对是否输错"  # in words, not pydantic's
        assert page.is_hidden("#check-result"), "the last answer is not left under the error"
        screenshot(page, "counter-check-mistyped")

        paid = BankTransfer(
            event_id="pay-1",
            event_time=now,
            channel="counter",
            payer_account=VICTIM_ACCOUNT,
            payer_name="王芳",
            payer_id_number="320585198609013410",
            payee_account=MULE,
            payee_name="李强",
            amount_fen=3_000_000,
            branch_id=BRANCH,
            payer_phone=VICTIM_PHONE,
        )
        produce(stack, [paid])
        page.wait_for_selector("#warnings li.fresh", timeout=60_000)
        warning = page.inner_text("#warnings li")
        assert MULE in warning and "紧急" in warning  # critical
        assert "付款人 王芳（6222000000000001）转出 ¥30,000.00，柜台 B001" in warning, "whom it is about"
        assert "已列入名单或被标记的号码在" in warning  # in words, not feature names: a listed number called the payer
        assert "call_before_hours_max" not in warning
        assert page.is_visible("#live-banner")
        assert page.evaluate("window.antifraudBeeps") == 1
        assert page.evaluate("document.querySelector('#sound').disabled")
        screenshot(page, "counter-live-warning")

        page.click("#warnings li [data-mark=seen]")  # the teller has seen it: kept, with who and when
        page.wait_for_selector("#warnings li .handling[data-state=seen]")
        page.reload()  # what the counter did outlives the page (and is the same in every web process)
        page.wait_for_selector("#warnings li .handling[data-state=seen]")
        assert "teller 已于" in page.inner_text("#warnings li .handling") and page.is_visible("[data-mark=handled]")

        # The customer insists: the teller puts the warning in front of the police, whose open console
        # (another browser, another user) says so without a reload.
        with another_user(context) as police_context:
            police = police_context.new_page()
            sign_in(police, base_url, "analyst")
            assert police.url.endswith("/console") and not police.is_visible("#escalation-banner")
            page.fill("#warnings li form.escalate input[name=note]", "customer insists, a 'prosecutor' is on the phone")
            page.click("#warnings li form.escalate button")
            page.wait_for_selector("#warnings li p.escalated")
            assert "已上报公安" in page.inner_text("#warnings li p.escalated")
            screenshot(page, "counter-escalated")
            page.reload()  # the escalation is remembered: no second one is offered
            page.wait_for_selector("#warnings li p.escalated")
            assert page.locator("#warnings li form.escalate").count() == 0

            police.wait_for_selector("#escalation-banner:not([hidden])", timeout=30_000)
            banner = police.inner_text("#escalation-banner")
            assert f"柜台 {BRANCH}" in banner and f"上报账户 {MULE}" in banner
            assert police.evaluate("window.antifraudBeeps") == 1, "and heard"
            police.select_option("#filters [name=escalated]", "true")
            police.click("#filters button[type=submit]")
            police.wait_for_selector("#queue-table tbody tr")
            assert f"由 {BRANCH} 上报" in police.inner_text("#queue-table tbody")
            screenshot(police, "console-escalated")
            police.click("#escalation-banner button")
            police.wait_for_selector("#case:not([hidden])")
            assert "teller 从 B001 上报：customer insists" in police.inner_text("#timeline")


def test_a_teller_finds_a_customers_held_atm_transfer_and_revokes_it(stack: Endpoints) -> None:
    """The customer paid at an ATM, to an account in another name, and asks for the money back while it is
    held: the teller finds the transfer by the customer's account and revokes it on their request."""
    on_redis(stack.redis_url, lambda client, ledger, audit: hold_some(ledger, "t-1"))
    held = hold_id_for("t-1")
    with serve(stack) as base_url, browser() as context:
        page = context.new_page()
        sign_in(page, base_url, "teller")
        page.fill("#holds-lookup [name=account]", "6222000000000000")  # the payer of hold_some's first transfer
        page.click("#holds-lookup button[type=submit]")
        page.wait_for_selector("#customer-holds-table tbody tr")
        assert "暂缓中" in page.inner_text("#customer-holds-table tbody tr")  # held
        page.fill("#revoke-reason", "the customer was told to pay by a caller posing as police")
        page.click("#customer-holds-table [data-move=revoke]")
        page.wait_for_selector("#customer-holds-table tbody tr:has-text('已撤销')")  # revoked
        screenshot(page, "counter-hold-revoked")
    hold = on_redis(stack.redis_url, lambda client, ledger, audit: ledger.get(held))
    assert hold is not None and hold.state == "revoked"


def test_a_teller_takes_a_customers_objection_to_their_blacklisting(stack: Endpoints) -> None:
    """The customer shows their ID card: the teller sees the listing and takes the objection at the counter."""
    party = "320585199001011235"
    case_id = confirmed_case(stack.redis_url, party)
    with serve(stack) as base_url, browser() as context:
        listed = httpx.post(
            f"{base_url}/api/blacklist", json=listing_fields(party, case_id=case_id), headers=as_user("admin")
        )
        assert listed.status_code == 201, listed.text
        page = context.new_page()
        sign_in(page, base_url, "teller")
        page.fill("#blacklist-check [name=id_number]", party)
        page.click("#blacklist-check button[type=submit]")
        page.wait_for_selector("#objection:not([hidden])")
        assert "在名单上" in page.inner_text("#listing-result") and party not in page.inner_text("#listing-result")
        page.fill("#objection [name=grounds]", "my ID card was stolen in 2025; the police report is attached")
        page.click("#objection button[type=submit]")
        page.wait_for_selector("#listing-result:has-text('异议已受理')")
        assert "异议中" in page.inner_text("#listing-result")  # objected: a credit officer decides it
        screenshot(page, "counter-objection")
        shown = httpx.get(f"{base_url}/api/blacklist/{listed.json()['listing_id']}", headers=as_user("credit_officer"))
        assert shown.json()["state"] == "objected" and shown.json()["objections"][0]["filed_by"] == "teller"
