"""The pages: plain HTML and vanilla JavaScript served as files; they hold no data and call the API.

A page is public (it is only markup and script); everything it shows comes from
API calls that check the caller's role. Pages are sent with a content security
policy that allows only this origin's scripts and styles, so injected markup
cannot run.
"""

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from antifraud.alerts.explain import LANGUAGES, catalog
from antifraud.refusals import Unknown

STATIC = Path(__file__).parent / "static"
PAGES = ("login", "counter", "console", "holds", "blacklist")
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> RedirectResponse:
    """The login page sends each role on to its own page."""
    return RedirectResponse("/login")


@router.get("/i18n/{language}.json")
async def messages(language: str) -> dict[str, Any]:
    """A language's catalog for the pages: their own texts (``static/i18n``) and the reasons and units of
    :mod:`antifraud.alerts.explain`, so the browser says a reason as the server does."""
    if language not in LANGUAGES:
        raise Unknown("no_catalog", f"no catalog for {language!r}")
    texts = json.loads((STATIC / "i18n" / f"{language}.json").read_text(encoding="utf-8"))
    return {"texts": texts, **catalog(language)}


def _page(name: str) -> None:
    async def page() -> FileResponse:
        return FileResponse(
            STATIC / f"{name}.html", headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"}
        )

    router.add_api_route(f"/{name}", page, methods=["GET"], name=f"page_{name}")


for _name in PAGES:
    _page(_name)
