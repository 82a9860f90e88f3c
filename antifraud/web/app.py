"""The HTTP service: one FastAPI app, its shared resources and the routers it mounts.

Lifespan, in order (reversed on shutdown):
1. one Redis client (``app.state.redis``), the audit log over it (``app.state.audit``) and the
   pre-transfer check's reader (``app.state.check_reader``);
2. the branch warning fan-out (``app.state.warnings``) fed by one Kafka consumer of the alerts
   topic; start-up waits until it sits at the end of the topic, so an alert raised after the
   app is up reaches the counters.
"""

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from fastapi import APIRouter, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from redis.asyncio import Redis
from starlette.routing import Match, Route

from antifraud.audit.models import AuditKeys
from antifraud.audit.service import AuditLog
from antifraud.case import views as case_views
from antifraud.config import Settings, audit_keys
from antifraud.credit import views as credit_views
from antifraud.holds import views as holds_views
from antifraud.privacy import mask_server_logs
from antifraud.refusals import Refusal, RefusalKind
from antifraud.state.baseline import configured_baseline
from antifraud.thresholds import load_thresholds
from antifraud.web import check, metrics, pages, session, trail, warnings
from antifraud.web.auth import SESSION_COOKIE, Authenticator

log = logging.getLogger(__name__)

WARNINGS_START_TIMEOUT_S = 10.0
"""How long start-up waits for the alerts consumer before serving without it (it keeps trying)."""

ROUTERS: list[APIRouter] = [
    check.router,  # first: the route with a latency budget is matched first
    session.router,
    warnings.router,
    pages.router,
    trail.router,
    credit_views.router,
    holds_views.router,
    case_views.router,
    metrics.router,
]
"""Every router the app mounts; a domain adds its ``views.router`` here."""


def _field(loc: tuple[object, ...]) -> str:
    return ".".join(str(part) for part in loc[1:] if part != "body") or str(loc[0])


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with FastAPI's error list plus one readable ``message`` naming each bad field."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    message = "; ".join(f"{_field(tuple(e['loc']))}: {e['msg']}" for e in errors)
    # A NaN or infinite input (Python's json reads them) is echoed as text: JSON has no such numbers.
    detail = jsonable_encoder(errors, custom_encoder={float: lambda x: x if math.isfinite(x) else str(x)})
    return JSONResponse({"detail": detail, "message": message}, status_code=422)


async def _method_not_allowed(request: Request, exc: Exception) -> JSONResponse:
    """405 whose ``Allow`` names every method the path takes: Starlette names those of the first route whose
    path matched, and a path often has two routes (``GET`` and ``POST /api/blacklist``)."""
    probe = {**request.scope, "method": ""}  # matches no route's methods: a route whose path matches says PARTIAL
    allowed = sorted(
        method
        for route in request.app.router.routes
        if isinstance(route, Route) and route.methods and route.matches(probe)[0] is Match.PARTIAL
        for method in route.methods
    )
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": ", ".join(allowed)})


class ErrorBody(BaseModel):
    """Every refusal: ``detail`` says what is wrong in plain words (for a 422, FastAPI's list of broken
    fields, with ``message`` naming each); a refusal of the app's own rules also names its ``code`` and
    ``params``, which the pages say in their user's language (``antifraud/refusals.py``)."""

    detail: str | list[dict[str, Any]]
    message: str | None = None
    code: str | None = None
    params: dict[str, str] | None = None


REFUSAL_STATUS: dict[RefusalKind, int] = {
    "refused": status.HTTP_409_CONFLICT,
    "unknown": status.HTTP_404_NOT_FOUND,
    "invalid": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "forbidden": status.HTTP_403_FORBIDDEN,
    "unauthenticated": status.HTTP_401_UNAUTHORIZED,
    "throttled": status.HTTP_429_TOO_MANY_REQUESTS,
}


async def _refusal(request: Request, exc: Exception) -> JSONResponse:
    """A refusal from any layer, answered with its kind's status, its English words, code and params."""
    assert isinstance(exc, Refusal)
    body = {"detail": str(exc), "code": exc.code, "params": exc.params}
    return JSONResponse(body, status_code=REFUSAL_STATUS[exc.kind], headers=exc.headers)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a body that is not JSON"},
    401: {"model": ErrorBody, "description": "no valid token or session"},
    403: {"model": ErrorBody, "description": "the caller's role or branch may not, or a change from another site"},
    404: {"model": ErrorBody, "description": "no such object"},
    409: {"model": ErrorBody, "description": "its state, or a rule, refuses the action (the message says which)"},
    422: {"model": ErrorBody, "description": "bad input: the fields and the rules they break"},
    429: {"model": ErrorBody, "description": "too many refused logins from the address or to the account"},
}
"""Declared on every route: what any of them may answer besides its success."""

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "a user's token from the users file"},
    "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE, "description": "set by POST /api/session"},
}


def answer_errors(app: FastAPI) -> None:
    """The app's own answers to bad input, refusals and a method a path does not take."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Refusal, _refusal)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed)


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The generated document plus the two ways in, required everywhere unless a route says ``security: []``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
            for operation in (op for path in schema["paths"].values() for op in path.values()):
                for code, answer in operation["responses"].items():  # JSON, also where a route answers otherwise
                    if int(code) in ERROR_RESPONSES:
                        answer["content"] = {"application/json": {"schema": ERROR_REF}}
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            schema["security"] = [{"bearer": []}, {"session": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    return openapi


def create_app(settings: Settings, auth: Authenticator | None = None, keys: AuditKeys | None = None) -> FastAPI:
    """The app over ``settings``; ``auth`` defaults to users and key from the environment, ``keys`` to the
    audit key from the environment (every action the app takes is audited)."""
    authenticator = auth or Authenticator.from_env(settings)
    chain_keys = keys or audit_keys(settings)
    mask_server_logs("uvicorn.access", "uvicorn.error")  # look-ups put phone, account and ID numbers in URLs

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url)
        app.state.redis = redis
        app.state.audit = AuditLog(redis, chain_keys)
        app.state.check_reader = check.CheckReader(redis, app.state.thresholds.transfer_risk)
        app.state.warnings = warnings.WarningHub(owners=warnings.load_atm_branches(settings.atm_branches))
        app.state.recent_warnings = warnings.RecentWarnings(redis)
        ready = asyncio.Event()
        consumer = asyncio.create_task(
            warnings.consume_alerts(app.state.warnings, app.state.recent_warnings, settings.kafka_bootstrap, ready)
        )
        try:
            await asyncio.wait_for(ready.wait(), WARNINGS_START_TIMEOUT_S)
        except TimeoutError:
            log.warning("the alerts consumer is not connected yet; live warnings start when it is")
        try:
            yield
        finally:
            consumer.cancel()
            with suppress(asyncio.CancelledError):
                await consumer
            await app.state.check_reader.aclose()
            await redis.aclose()

    app = FastAPI(
        title="antifraud",
        version="1",
        summary="Pre-transfer checks, live branch warnings, and the hold, case and blacklist actions.",
        lifespan=lifespan,
        docs_url="/docs" if settings.web_docs else None,  # their scripts come from a CDN, outside the pages' CSP
        redoc_url="/redoc" if settings.web_docs else None,
    )
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.auth = authenticator
    app.state.thresholds = load_thresholds(settings.thresholds_path)
    configured = configured_baseline(app.state.thresholds.transfer_risk.baseline, "accounts")
    app.state.accounts_population = None if configured is None else configured[0]
    answer_errors(app)
    app.add_middleware(check.CheckFastPath)
    app.add_middleware(metrics.RequestMetrics)  # added last: outermost, so the check's fast path is timed too
    for router in ROUTERS:
        app.include_router(router, responses=ERROR_RESPONSES)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app


def app_from_env() -> FastAPI:
    """The app configured from the environment: what ``antifraud web`` serves in each process."""
    return create_app(Settings.from_env())
