"""Login and logout for the pages: a token traded for a signed HttpOnly session cookie."""

import time

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from antifraud.web.auth import SESSION_COOKIE, Authenticator, Principal, Role, current_principal

router = APIRouter(prefix="/api", tags=["session"])


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=512, description="the user's token from the users file")


class Me(BaseModel):
    name: str
    role: Role
    branch_id: str | None

    @classmethod
    def of(cls, principal: Principal) -> "Me":
        return cls(name=principal.name, role=principal.role, branch_id=principal.branch_id)


@router.post("/session", response_model=Me, summary="log in: set the session cookie", openapi_extra={"security": []})
async def login(body: LoginRequest, request: Request, response: Response) -> Me:
    auth: Authenticator = request.app.state.auth
    principal = auth.users.by_token(body.token)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token")
    response.set_cookie(
        SESSION_COOKIE,
        auth.sessions.sign(principal.name, time.time()),
        max_age=auth.sessions.ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return Me.of(principal)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT, summary="log out: clear the session cookie")
async def logout(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")


@router.get("/me", response_model=Me, summary="who the caller is")
async def me(principal: Principal = Depends(current_principal)) -> Me:
    return Me.of(principal)
