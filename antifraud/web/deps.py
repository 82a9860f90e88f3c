"""Shared resources for route handlers, as FastAPI dependencies over ``app.state`` (set in the app's lifespan)."""

from fastapi import Request
from redis.asyncio import Redis

from antifraud.audit.service import AuditLog


def get_redis(request: Request) -> Redis:
    """The app's one Redis client (bytes responses, like every store in the project)."""
    return request.app.state.redis


def get_audit(request: Request) -> AuditLog:
    """The hash-chained audit log every human action goes through."""
    return request.app.state.audit
