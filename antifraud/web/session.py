"""Login and logout for the pages: a name and password (or a client's token) traded for a server-side
session, named by an HttpOnly cookie.

Login is refused from another site's page (``refuse_cross_site``) and throttled per client address and
per account (``LoginThrottle``: 429 with ``Retry-After``); every refused login is audited
(``web.login_refused``, never the password or token tried), counted and logged. Logout ends the session in Redis: the old cookie is worth nothing.
"""

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from antifraud.audit.models import AuditEntry
from antifraud.audit.service import AuditLog
from antifraud.refusals import Throttled, Unauthenticated
from antifraud.web.accounts import AccountStore
from antifraud.web.auth import (
    SESSION_COOKIE,
    Authenticator,
    Principal,
    Role,
    current_principal,
    refuse_cross_site,
)
from antifraud.web.metrics import LOGIN_FAILURES
from antifraud.web.sessions import Session

router = APIRouter(prefix="/api", tags=["session"])
log = logging.getLogger(__name__)


_GIVEN: dict[str, Any] = {"type": "string"}
_ABSENT: dict[str, Any] = {"type": "null"}


class LoginRequest(BaseModel):
    """A person's name and password, or an API client's token."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [  # null is as good as left out
                {
                    "required": ["name", "password"],
                    "properties": {"name": _GIVEN, "password": _GIVEN, "token": _ABSENT},
                },
                {"required": ["token"], "properties": {"token": _GIVEN, "name": _ABSENT, "password": _ABSENT}},
            ]
        },
    )
    name: str | None = Field(None, min_length=1, max_length=100, description="the account's user name")
    password: str | None = Field(None, min_length=1, max_length=512, description="the account's password")
    token: str | None = Field(None, min_length=1, max_length=512, description="a token from the users file")

    @model_validator(mode="after")
    def _one_way_in(self) -> "LoginRequest":
        by_password = self.token is None and self.name is not None and self.password is not None
        by_token = self.token is not None and self.name is None and self.password is None
        if not (by_password or by_token):
            raise PydanticCustomError("login_fields", "give name and password, or a token")
        return self


class Me(BaseModel):
    name: str
    role: Role
    branch_id: str | None
    csrf_token: str | None = Field(
        None,
        description="with a session: what the pages send in X-CSRF-Token with every change (none with a bearer token)",
    )

    @classmethod
    def of(cls, principal: Principal, csrf: str | None = None) -> "Me":
        return cls(name=principal.name, role=principal.role, branch_id=principal.branch_id, csrf_token=csrf)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/session",
    response_model=Me,
    summary="log in: open a session and set its cookie",
    openapi_extra={"security": []},
    responses={401: {"description": "unknown token"}, 403: {"description": "from another site's page"}, 429: {}},
)
async def login(body: LoginRequest, request: Request, response: Response) -> Me:
    refuse_cross_site(request)
    auth: Authenticator = request.app.state.auth
    redis = request.app.state.redis
    subjects = [f"addr:{_address(request)}", *([f"name:{body.name}"] if body.name else [])]
    wait = await auth.throttle.retry_after(redis, *subjects)
    if wait is not None:
        LOGIN_FAILURES.inc()
        raise Throttled(
            "login_throttled",
            f"too many refused logins from this address or to this account: try again in {wait} s",
            wait,
        )
    if body.token is not None:
        principal = auth.users.by_token(body.token)
    else:
        assert body.name is not None and body.password is not None  # the model's own rule
        principal = await AccountStore(redis).verify(body.name, body.password)
    if principal is None:
        LOGIN_FAILURES.inc()
        await auth.throttle.failed(redis, *subjects)
        audit: AuditLog = request.app.state.audit
        refused = {"address": _address(request), "name": body.name}  # never the token or password tried
        await audit.append(
            AuditEntry(actor="anonymous", action="web.login_refused", subject="web:login", after=refused)
        )
        log.warning("login refused from %s", _address(request))
        if body.token is not None:
            raise Unauthenticated("login_token", "unknown token")
        raise Unauthenticated("login_password", "wrong name or password")
    session_id, session = await auth.sessions.open(redis, principal.name)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(auth.sessions.absolute_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return Me.of(principal, session.csrf)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, summary="log out: end the session")
async def logout(request: Request, response: Response, principal: Principal = Depends(current_principal)) -> None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        auth: Authenticator = request.app.state.auth
        await auth.sessions.close(request.app.state.redis, cookie)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


@router.get("/me", response_model=Me, summary="who the caller is (and, with a session, its CSRF token)")
async def me(request: Request, principal: Principal = Depends(current_principal)) -> Me:
    session: Session | None = getattr(request.state, "session", None)  # set by authenticate for a cookie
    return Me.of(principal, session.csrf if session is not None else None)
