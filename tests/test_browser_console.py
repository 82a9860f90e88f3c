"""The analyst console, holds and blacklist pages in headless Chromium over the real stack and worker."""

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from antifraud.events.models import BankTransfer, CallRecord, CardOpening
from antifraud.forwarding.models import ForwardingPackage
from antifraud.stack.embedded import Endpoints
from antifraud.stack.worker import WorkerProcess
from streams import topics
from tests.browser_helpers import browser, screenshot, sign_in
from tests.conftest import wait_consumed, wait_for
from tests.kafka_helpers import read_all
from tests.redis_helpers import unnamed_keys
from tests.test_pipeline_integration import block_number, produce
from tests.web_helpers import BRANCH, serve

pytestmark = pytest.mark.browser

LISTED = "17055550009"
VICTIM_PHONE = "13900000001"
VICTIM = "6222000000000001"
MULE = "6222000000000666"
NEXT_HOP = "6222000000000777"


MULE_HOLDER = "320585199001011235"


def scam(now: datetime) -> list[BankTransfer | CallRecord | CardOpening]:
    """A card dealer opens the mule account; a listed number keeps the victim on the line; the victim pays
    the mule at the counter and by ATM; the mule moves most of it on."""
    payer = dict(
        payer_account=VICTIM, payer_name="王芳", payer_id_number="320585198609013410", payer_phone=VICTIM_PHONE
    )
    return [
        CardOpening(
            event_id="open-1",
            event_time=now - timedelta(days=3),
            bank="icbc",
            id_number=MULE_HOLDER,
            account=MULE,
            branch_id="B009",
            channel="counter",
        ),
        CallRecord(
            event_id="call-1",
            event_time=now - timedelta(minutes=40),
            caller=LISTED,
            callee=VICTIM_PHONE,
            start=now - timedelta(minutes=60),
            duration_s=1200,
            cell_id="cell-1",
            imei="860000000000001",
        ),
        BankTransfer(
            event_id="pay-1",
            event_time=now - timedelta(minutes=30),
            channel="counter",
            payee_account=MULE,
            payee_name="李强",
            amount_fen=3_000_000,
            branch_id=BRANCH,
            **payer,
        ),
        BankTransfer(
            event_id="pay-2",
            event_time=now - timedelta(minutes=25),
            channel="atm",
            payee_account=MULE,
            payee_name="李强",
            amount_fen=1_000_000,
            atm_id="atm-7",
            **payer,
        ),
        BankTransfer(
            event_id="hop-1",
            event_time=now - timedelta(minutes=20),
            channel="mobile",
            payer_account=MULE,
            payer_name="李强",
            payer_id_number=MULE_HOLDER,
            payee_account=NEXT_HOP,
            payee_name="赵六",
            amount_fen=2_500_000,
        ),
    ]


def test_an_analyst_confirms_a_case_in_the_console_and_the_forwarding_follows(
    stack: Endpoints, start_worker: Callable[..., WorkerProcess]
) -> None:
    block_number(stack, LISTED, "case-9")
    worker = start_worker()
    events = scam(datetime.now(timezone.utc).replace(microsecond=0))
    produce(stack, events[:2])
    wait_consumed(worker, 2)
    produce(stack, events[2:])
    wait_consumed(worker, len(events))

    with serve(stack) as base_url, browser() as context:
        page = context.new_page()
        sign_in(page, base_url, "analyst")
        assert page.url.endswith("/console")
        page.select_option("#filters [name=severity]", "critical")
        page.select_option("#filters [name=detector]", "transfer_risk")
        opener = f"#queue-table tr:has-text('{MULE}') button.open-case"

        def case_listed() -> bool:
            page.click("#filters button[type=submit]")
            page.wait_for_timeout(300)
            return page.locator(opener).count() == 1

        wait_for(case_listed, timeout=60, what="the mule's case in the queue")
        assert page.locator("#queue-table tbody tr").count() == 1  # the next hop's case is only high
        assert page.is_disabled("#page-prev") and page.is_disabled("#page-next"), "one page, the first"
        page.click("#queue-table tbody tr button.link")  # all the cases of the mule's account, by its number
        page.wait_for_function("document.querySelector('#filters [name=entity_value]').value !== ''")
        assert page.input_value("#filters [name=entity_value]") == MULE
        page.wait_for_selector(opener)
        page.click(opener)
        page.wait_for_selector("#case:not([hidden])")
        assert page.get_attribute("#case-status", "data-status") == "new"
        assert page.inner_text("#case-status") == "新建"
        assert "null" not in page.inner_text("#case-summary"), "a case no counter escalated read 'new null'"
        page.wait_for_selector(f"#trail g.node[data-account='{NEXT_HOP}']")
        pair = page.locator(f"#trail-pairs tbody tr:has-text('{NEXT_HOP}')")  # the graph's lines, as a table
        assert pair.count() == 1 and "¥" in pair.inner_text()
        line = page.locator(f"#trail line.edge[data-payee='{NEXT_HOP}']")
        assert line.count() == 1, "transfers between two accounts are one line"
        assert page.locator("#timeline [data-kind=alert]").count() >= 1
        assert page.locator("#holds tr:has-text('atm') , #holds tbody tr").count() == 1  # the ATM payment is held
        screenshot(page, "console-case")

        offered = page.locator("#case div.actions button:visible").evaluate_all("bs => bs.map(b => b.id)")
        assert offered == ["act-review"], "a new case is only reviewed: the rest is offered by its state"
        page.click("#act-review")
        page.wait_for_selector("#case-status[data-status=in_review]")
        offered = page.locator("#case div.actions button:visible").evaluate_all("bs => bs.map(b => b.id)")
        assert offered == ["act-confirm", "act-dismiss"]
        assert page.input_value("#assignee") == "analyst", "who starts the review takes the case"
        page.select_option("#assignee", "admin")  # the known analysts and admins, from /api/analysts
        page.click("#assign button")
        page.wait_for_selector("#case-summary:has-text('承办人 admin')")
        page.fill("#note-text", "the victim bank confirms the call")
        page.click("#note button")
        page.wait_for_selector("#timeline:has-text('the victim bank confirms the call')")
        page.click("#act-confirm")  # no reason given: refused, nothing changes
        page.wait_for_selector("#error:not([hidden])")
        assert page.inner_text("#error") == "理由不能为空"  # the reason is empty, in the words of the page
        page.fill("#act-reason", "victim's report and the money trail")
        page.click("#act-confirm")
        page.wait_for_selector("#case-status[data-status=confirmed]")
        page.wait_for_selector("#deliveries-table")
        targets = set(page.locator("#deliveries-table tbody tr td:first-child").all_inner_texts())
        assert targets == {"公安", "银行"}  # police and the bank

        def delivered() -> bool:
            page.click(opener)
            page.wait_for_timeout(300)
            states = {s.get_attribute("data-state") for s in page.locator("#deliveries-table .delivery-state").all()}
            return states == {"delivered"} and page.get_attribute("#case-status", "data-status") == "forwarded"

        wait_for(delivered, timeout=60, what="both deliveries delivered and the case forwarded")
        offered = page.locator("#case div.actions button:visible").evaluate_all("bs => bs.map(b => b.id)")
        assert offered == ["act-close"], "confirming forwarded it: Forward is not offered to send it twice"

        def frozen_in_case() -> bool:  # the confirmation froze the held ATM payment: the case says who and why
            page.click(opener)
            page.wait_for_timeout(300)
            return page.locator("#case-holds .hold-state[data-state=frozen]").count() == 1

        wait_for(frozen_in_case, timeout=60, what="the case's held payment shown frozen in the case")
        cells = page.locator("#case-holds tbody tr").first.locator("td").all_inner_texts()
        assert "已冻结" in cells and all(cells[6:8]), "a frozen hold names who froze it and why"
        timeline = page.inner_text("#timeline")
        assert "开始研判（analyst）" in timeline and "确认为诈骗（analyst）" in timeline
        assert "case.review" not in timeline and "score=" not in timeline, "the timeline in the user's words"
        screenshot(page, "console-forwarded")

        packages = [
            ForwardingPackage.model_validate_json(r.value).root
            for r in read_all(stack.kafka_bootstrap, topics.FORWARDING)
        ]
        assert {p.kind for p in packages} == {"police_case", "bank_order"}
        assert all(p.case_id == packages[0].case_id and p.decided_by == "analyst" for p in packages)

        page.click("#act-blacklist")  # confirming listed the mule account's holder
        page.wait_for_selector(f"#listings-table tr:has-text('{MULE_HOLDER}')")
        page.click("#listings-table button")
        page.wait_for_selector(f"#listing-detail:has-text('{MULE}')")
        assert page.is_hidden("#repair")  # an analyst reads, a credit officer acts
        screenshot(page, "blacklist")

        page.goto(f"{base_url}/holds")  # the victim's ATM payment to the mule, held, is frozen by the confirmation
        page.select_option("#filter select[name=state]", "frozen")

        def frozen_listed() -> bool:
            page.click("#filter button[type=submit]")
            page.wait_for_timeout(300)
            return page.locator(f"#holds-table tbody tr:has-text('{MULE}')").count() == 1

        wait_for(frozen_listed, timeout=60, what="the held payment to the mule frozen")
        page.click(f"#holds-table tbody tr:has-text('{MULE}') [data-moves]")  # who froze it, and why
        page.wait_for_selector("#moves-table tbody tr:has-text('已冻结')")
        screenshot(page, "holds")
    assert unnamed_keys(stack.redis_url) == [], "every key the worker and the desks wrote is a named family"
