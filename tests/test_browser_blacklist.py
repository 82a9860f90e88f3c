"""The blacklist page in headless Chromium: a credit officer takes an objection, corrects the listing, and
is told why a repair is refused; the login page refuses a wrong token."""

import httpx
import pytest
from playwright.sync_api import expect

from antifraud.stack.embedded import Endpoints
from antifraud.web.principal import Role
from tests.browser_helpers import browser, screenshot, sign_in
from tests.credit_helpers import confirmed_case
from tests.web_helpers import add_account, as_user, serve, token_of

pytestmark = pytest.mark.browser

PARTY = "320585199001011235"
ACCOUNT = "6222000000000666"


def _draft(case_id: str, *accounts: str) -> dict[str, object]:
    """PARTY's listing on ``case_id``: they sold the mule account (and the ``accounts`` named)."""
    return {
        "party": {"kind": "id_number", "id": PARTY},
        "case_id": case_id,
        "reason_code": "telecom_fraud",
        "reason": "sold the mule account",
        "evidence": ["alert-1"],
        "accounts": list(accounts),
    }


def test_an_officer_corrects_a_listing_on_objection_and_sees_why_a_repair_is_refused(stack: Endpoints) -> None:
    case_id = confirmed_case(stack.redis_url, PARTY)  # before the browser: it runs an event loop of its own
    add_account(stack.redis_url, "li.na", Role.CREDIT_OFFICER, "a long passphrase at the desk")
    with serve(stack) as base_url, browser() as context:
        draft = _draft(case_id, ACCOUNT)
        listed = httpx.post(f"{base_url}/api/blacklist", json=draft, headers=as_user("admin"))
        assert listed.status_code == 201, listed.text

        page = context.new_page()
        page.goto(f"{base_url}/login")
        page.fill("#name", "li.na")
        page.fill("#password", "not the passphrase")
        page.click("button[type=submit]")
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error") == "用户名或密码错误。"  # the refusal's code, said in the page's language
        screenshot(page, "login-refused")

        page.fill("#password", "a long passphrase at the desk")  # a person's account, not a client token
        page.click("button[type=submit]")
        page.wait_for_selector("#who")
        assert page.url.endswith("/blacklist")
        page.select_option("#query [name=kind]", "account")
        page.fill("#query [name=value]", ACCOUNT)
        page.click("#query button[type=submit]")
        page.click(f"#listings-table tr:has-text('{PARTY}') button")
        page.wait_for_selector("#listing:not([hidden])")

        page.fill("#repair [name=evidence]", "certificate-7")
        page.fill("#repair [name=note]", "asks for repair")
        page.select_option(
            "#repair [name=conditions]", ["behaviour_corrected", "effects_removed", "training_completed"]
        )
        page.click("#repair button[type=submit]")
        page.wait_for_selector("#error:not([hidden])")
        refused = page.inner_text("#error")  # listed too recently: refused, nothing changed
        assert "不能信用修复" in refused and "列入未满 1 年" in refused and "listed" not in refused
        assert page.get_attribute("#listing-title", "data-state") == "listed"
        assert "（在列）" in page.inner_text("#listing-title")

        page.fill("#objection [name=party_id]", "320585198609013410")  # not the listed party's document
        page.fill("#objection [name=grounds]", "the account was stolen")
        page.click("#objection button[type=submit]")
        page.wait_for_selector("#error:has-text('所出示的证件号码与被列入当事人不符')")
        objection = {"party_id": PARTY, "grounds": "the account was stolen"}  # taken at a counter: four eyes
        lid = listed.json()["listing_id"]
        filed = httpx.post(f"{base_url}/api/blacklist/{lid}/objections", json=objection, headers=as_user("teller"))
        assert filed.status_code == 201, filed.text
        page.click(f"#listings-table tr:has-text('{PARTY}') button")
        page.wait_for_selector("#objections tr:has-text('待处理')")  # pending
        page.fill("#decision-note", "police report confirms the theft")
        page.click("#objections [data-decide=correct]")  # correct by removing
        page.wait_for_selector("#listing-title[data-state=removed]:has-text('已移出')")
        assert page.is_hidden("#objection") and page.is_hidden("#repair"), "a removed listing offers no forms"
        expect(page.locator("#history tbody tr")).to_have_count(3)  # listed, objected, removed (drawn after the title)
        moves = [cells.split("\t")[3] for cells in page.locator("#history tbody tr").all_inner_texts()]
        assert moves == ["列入", "提出异议", "移出"], "the audit's actions in the officer's words"
        screenshot(page, "blacklist-objection-corrected")


def test_a_teller_is_sent_to_the_counter_page_and_has_no_console(stack: Endpoints) -> None:
    with serve(stack) as base_url, browser() as context:
        page = context.new_page()
        sign_in(page, base_url, "teller")
        assert page.url.endswith("/counter")
        assert page.locator("header.top nav a").all_inner_texts() == ["柜台"]  # the counter
        page.goto(f"{base_url}/console")
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error") == "此页面不供柜员使用。"  # not for the teller role
        page.click("#language")  # switched to English, kept in this browser
        page.wait_for_selector("html[lang=en]")
        assert page.inner_text("#error") == "This page is not for the teller role."
        assert page.locator("header.top nav a").all_inner_texts() == ["Counter"]
        page.goto(f"{base_url}/counter")
        page.wait_for_selector("#who")
        assert page.inner_text("h1 [data-i18n]") == "Counter" and page.inner_text("#language") == "中文"
        page.click("#language")
        page.wait_for_selector("html[lang=zh-CN]")
        screenshot(page, "console-refused-to-teller")
        page.click("#logout")
        page.wait_for_url("**/login")
        page.goto(f"{base_url}/counter")
        page.wait_for_url("**/login?next=%2Fcounter")
        assert token_of("teller") not in page.content()


def test_an_officer_amends_a_listing_on_objection_keeping_only_the_account_still_in_question(
    stack: Endpoints,
) -> None:
    """The customer's salary account was listed with the mule account: the correction keeps the listing and
    drops that account (the amend screen), rather than removing the listing."""
    case_id = confirmed_case(stack.redis_url, PARTY)
    salary = "6222000000000777"
    with serve(stack) as base_url, browser() as context:
        draft = _draft(case_id, ACCOUNT, salary)
        listed = httpx.post(f"{base_url}/api/blacklist", json=draft, headers=as_user("admin"))
        assert listed.status_code == 201, listed.text
        lid = listed.json()["listing_id"]
        objection = {"party_id": PARTY, "grounds": "one account is my salary account"}
        assert httpx.post(f"{base_url}/api/blacklist/{lid}/objections", json=objection, headers=as_user("teller"))

        page = context.new_page()
        sign_in(page, base_url, "credit_officer")
        page.goto(f"{base_url}/blacklist?account={salary}")
        page.wait_for_selector(f"#work-objected-table tbody tr:has-text('{PARTY}')")  # the worklist, on landing
        assert "待处理的异议（1）" in page.inner_text("#work-objected")
        page.click(f"#listings-table tr:has-text('{PARTY}') button")
        page.wait_for_selector("#objections tr:has-text('待处理')")  # pending
        page.fill("#decision-note", "the salary account is the customer's own")
        page.click("#amend summary")
        page.fill("#amend-form [name=accounts]", ACCOUNT)
        page.click("#objections [data-decide=amend]")
        page.wait_for_selector("#listing-title[data-state=listed]")
        detail = page.inner_text("#listing-detail")
        assert ACCOUNT in detail and salary not in detail, "amended: the listing stays, without the salary account"
        page.wait_for_selector("#work-objected:has-text('待处理的异议（0）')")  # decided: off the worklist
        screenshot(page, "blacklist-amended")
