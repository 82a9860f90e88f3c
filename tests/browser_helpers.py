"""Headless Debian Chromium driven by Playwright, and where tests leave their screenshots."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.web_helpers import token_of

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"


@contextmanager
def browser() -> Iterator[BrowserContext]:
    """A fresh Chromium context (its own cookies: one signed-in user); closed at the end. Another user
    signs in in ``another_user(context)``."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield another_user(chromium)
        finally:
            chromium.close()


def another_user(chromium: Browser | BrowserContext) -> BrowserContext:
    """A new context of the same Chromium, with cookies of its own."""
    owner = chromium if isinstance(chromium, Browser) else chromium.browser
    if owner is None:
        raise ValueError("a persistent context has no browser to open another context in")
    context = owner.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(15_000)
    return context


def sign_in(page: Page, base_url: str, user: str) -> None:
    """Sign in through the login page; it lands on the user's home page."""
    page.goto(f"{base_url}/login")
    page.click("summary")
    page.fill("#token", token_of(user))
    page.click("button[type=submit]")
    page.wait_for_selector("#who")


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
