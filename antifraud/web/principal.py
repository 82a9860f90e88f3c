"""Who a caller is: a user with a role (and a branch, for tellers), whether named in the users file or
an account (``antifraud/web/accounts.py``)."""

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    TELLER = "teller"
    ANALYST = "analyst"
    CREDIT_OFFICER = "credit_officer"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user; ``branch_id`` scopes a teller to one branch's counters."""

    name: str
    role: Role
    branch_id: str | None = None
