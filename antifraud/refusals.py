"""Refusals a person reads: what was refused, said in the desks' language.

A domain error that reaches a user (an action a state does not allow, an unknown id, a broken rule) is a
:class:`Refusal`. Its ``code`` names its words in the pages' catalogs (``refusal.<code>``, in
``antifraud/web/static/i18n/``) and its ``params`` fill them: ids, states, actions, never personal data.
``str()`` stays the English sentence, for API clients and logs. ``kind`` says what sort of refusal it is;
the web app answers each kind with its HTTP status (``antifraud/web/app.py``).
"""

from typing import ClassVar, Literal

RefusalKind = Literal["refused", "unknown", "invalid", "forbidden", "unauthenticated", "throttled"]


class Refusal(Exception):
    """A request refused, with the words for it (module docstring); refused by a state or a rule unless a
    subclass says otherwise."""

    kind: ClassVar[RefusalKind] = "refused"

    def __init__(self, code: str, message: str, **params: object) -> None:
        super().__init__(message)
        self.code = code
        self.params = {
            name: ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            for name, value in params.items()
        }
        self.headers: dict[str, str] = {}
        """HTTP headers the answer carries (a throttled login's Retry-After)."""


class Unknown(Refusal):
    """No such object."""

    kind = "unknown"


class Invalid(Refusal):
    """Input that breaks a rule no schema can state (two fields together, a period too long)."""

    kind = "invalid"


class Forbidden(Refusal):
    """The caller's role, branch or site may not."""

    kind = "forbidden"


class Unauthenticated(Refusal):
    """No valid token or session; or a login with wrong credentials."""

    kind = "unauthenticated"

    def __init__(self, code: str, message: str, **params: object) -> None:
        super().__init__(code, message, **params)
        self.headers["WWW-Authenticate"] = "Bearer"


class Throttled(Refusal):
    """Too many refused logins: try again in ``wait`` seconds."""

    kind = "throttled"

    def __init__(self, code: str, message: str, wait: int, **params: object) -> None:
        super().__init__(code, message, wait=wait, **params)
        self.headers["Retry-After"] = str(wait)
