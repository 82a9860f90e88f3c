"""The OpenAPI document says what the routes do: a bounded schemathesis run over the running app finds no
mismatch (issue 18, item 11).

Every operation gets schema-valid requests (they must not be refused as bad input), schema-breaking ones
(they must be refused), requests without credentials, and methods it does not take; every answer's status,
headers and body must be ones the document declares. Each call carries a user of a role the access table
(``tests/test_web_endpoints.py``) lets through, so the run reaches the routes' own checks.

A few rules join two inputs or depend on state, and JSON Schema cannot state them for query parameters:
``RULES`` lists them. Each is said in the operation's documentation (a test holds the words to it), and the
generator is told it, so a valid request keeps to it; everything else is generated from the document alone.
The run is derandomized: the same code gives the same requests.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import httpx
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import from_schema
from schemathesis.engine.events import NonFatalError
from schemathesis.generation.case import Case
from schemathesis.hooks import HookContext

from antifraud.credit.models import CREDIT_CODE_CHARS, CREDIT_CODE_FORMAT, credit_code_check_char
from antifraud.events.types import ID_NUMBER_FORMAT, id_check_char, make_id_number
from antifraud.stack.embedded import Endpoints
from tests.test_web_endpoints import ACCESS
from tests.web_helpers import as_user, serve

LOOKUP_KEYS = ("id_number", "credit_code", "account", "phone")
ANALYSTS = ("analyst", "admin")
"""The analysts the test app knows (``tests/web_helpers.USERS``): a case is assigned to one of them."""


def _since_before_until(case: Case, first: str, then: str) -> Case | None:
    values = case.query if case.query is not None else {}
    try:
        start, end = datetime.fromisoformat(values[first]), datetime.fromisoformat(values[then])
    except (KeyError, TypeError, ValueError):
        return case  # not this rule's to fix: the document's own constraints decide
    if end <= start:
        values[first], values[then] = values[then], values[first]
    return case if end != start else None


def _trail_window(case: Case) -> Case | None:
    return _since_before_until(case, "since", "until")


def _cases_query(case: Case) -> Case | None:
    if case.query:
        for key in [k for k in ("account", "phone", "id_number") if k in case.query][1:]:
            del case.query[key]
    if case.query and {"since", "until"} <= case.query.keys():
        return _since_before_until(case, "since", "until")
    return case


def _report_window(case: Case) -> Case | None:
    body = case.body
    if not isinstance(body, dict) or not {"start", "end"} <= body.keys():
        return case
    start, end = datetime.fromisoformat(str(body["start"])), datetime.fromisoformat(str(body["end"]))
    if end <= start:
        body["end"] = (start + timedelta(hours=1)).isoformat()
    return case


def _one_lookup_key(case: Case) -> Case | None:
    values = case.query if case.query is not None else {}
    given = [key for key in LOOKUP_KEYS if key in values]
    if not given:
        return None
    for key in given[1:]:
        del values[key]
    return case


def _known_assignee(case: Case) -> Case | None:
    if isinstance(case.body, dict) and "assignee" in case.body:
        case.body["assignee"] = ANALYSTS[len(str(case.body["assignee"])) % len(ANALYSTS)]
    return case


class Rule(NamedTuple):
    """A rule the document says in words: ``words`` appear in the operation's documentation, and ``keep``
    makes a valid request keep to it (or drops it, returning ``None``)."""

    words: tuple[str, ...]
    keep: Callable[[Case], Case | None]


RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/trail"): Rule(("after since",), _trail_window),
    ("GET", "/api/cases"): Rule(("not before since", "at most one"), _cases_query),
    ("POST", "/api/holds/reports"): Rule(("end after its start",), _report_window),
    ("GET", "/api/blacklist"): Rule(("exactly one of",), _one_lookup_key),
    ("GET", "/api/blacklist/check"): Rule(("exactly one of",), _one_lookup_key),
    ("POST", "/api/cases/{case_id}/assign"): Rule(("a known analyst or admin",), _known_assignee),
}


CHECK_CHARS: dict[str, Callable[[str], str]] = {"id_number": id_check_char, "credit_code": credit_code_check_char}
"""The two formats with a check character, by the look-up kind they are."""


def _checked(kind: str, value: object) -> object:
    """``value`` with the check character its first 17 characters give, when it has the shape of ``kind``."""
    if not isinstance(value, str) or len(value) != 18:
        return value
    try:
        return value[:17] + CHECK_CHARS[kind](value[:17])
    except ValueError:
        return value


def _with_check_chars(data: object) -> object:
    """Every ID number and credit code in a query or body with its right check character: the fuzzing phase
    makes them by their format, the boundary-value phase from the pattern alone."""
    if isinstance(data, list):
        return [_with_check_chars(item) for item in data]
    if not isinstance(data, dict):
        return data
    kind = data.get("kind")
    fixed = {key: _with_check_chars(value) for key, value in data.items()}
    for key, value in fixed.items():
        named = next((k for k in CHECK_CHARS if key.endswith(k)), None)
        if named is not None or (key == "id" and kind in CHECK_CHARS):
            fixed[key] = _checked(named or str(kind), value)
    return fixed


def _id_numbers() -> st.SearchStrategy[str]:
    """Resident ID numbers with their check character (format ``gb11643``)."""
    return st.builds(
        make_id_number,
        st.integers(110000, 659999).map(str),
        st.dates(datetime(1930, 1, 1).date(), datetime(2010, 12, 31).date()).map(lambda d: d.strftime("%Y%m%d")),
        st.integers(0, 999),
    )


def _credit_codes() -> st.SearchStrategy[str]:
    """Unified social credit codes with their check character (format ``gb32100``)."""
    first17 = st.text(alphabet=CREDIT_CODE_CHARS, min_size=17, max_size=17)
    return first17.map(lambda head: head + credit_code_check_char(head))


schemathesis.openapi.format(ID_NUMBER_FORMAT, _id_numbers())
schemathesis.openapi.format(CREDIT_CODE_FORMAT, _credit_codes())


def _operations() -> list[dict[str, Any]]:
    """Per operation, the Authorization header of a role the access table lets through (an admin's for
    the routes open to anyone)."""
    allowed = ("analyst", "teller", "credit_officer", "admin")
    return [
        {
            "include-method": method,
            "include-path": path,
            "headers": as_user("admin" if access.roles is None else next(r for r in allowed if r in access.roles)),
        }
        for (method, path), access in ACCESS.items()
    ]


def _keep(case: Case) -> Case | None:
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return case
    case.query = _with_check_chars(case.query)  # type: ignore[assignment]
    case.body = _with_check_chars(case.body)
    rule = RULES.get((case.operation.method.upper(), case.operation.path))
    return case if rule is None else rule.keep(case)


def _mismatches(events: list[Any]) -> tuple[int, list[str]]:
    """How many checks ran, and each distinct failure: operation, check, what it found, the request to
    reproduce it and the app's answer."""
    checks, found = 0, dict[tuple[str, str, str], str]()
    for event in events:
        recorder = getattr(event, "recorder", None)
        if recorder is None:
            continue
        for case_id, nodes in recorder.checks.items():
            checks += len(nodes)
            for node in nodes:
                if node.failure_info is None:
                    continue
                failure = node.failure_info.failure
                interaction = recorder.interactions.get(case_id)
                answer = interaction.response.content[:400] if interaction and interaction.response else b""
                key = (recorder.label, node.name, failure.title)
                found.setdefault(key, f"{key}: {failure.message}\n{node.failure_info.code_sample}\n-> {answer!r}")
    return checks, list(found.values())


def test_every_route_answers_as_its_openapi_document_says(stack: Endpoints) -> None:
    config = SchemathesisConfig.from_dict(
        {
            "seed": 18,
            "generation": {"max-examples": 15, "deterministic": True, "database": "none"},
            "continue-on-failure": True,
            "operations": _operations(),
        }
    )
    with serve(stack) as url:
        loaded = schemathesis.openapi.from_dict(httpx.get(f"{url}/openapi.json").json(), config=config)
        loaded.config.update(base_url=url)

        @loaded.hook
        def filter_case(context: HookContext, case: Case) -> bool:
            """Mends a valid case to the rules it breaks (check characters, ``RULES``) or drops it."""
            return _keep(case) is not None

        events = list(from_schema(loaded).execute())
    errors = [f"{event.label}: {event.value!r}" for event in events if isinstance(event, NonFatalError)]
    assert not errors, "\n".join(errors)
    checks, mismatches = _mismatches(events)
    assert checks > 10 * len(ACCESS), f"only {checks} checks ran"  # every route was reached, many times
    assert not mismatches, "\n\n".join(mismatches)


def _said(document: dict[str, Any], node: Any, depth: int = 3) -> str:
    """The text of an operation with the schemas it refers to (a body's rules are in its model's)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and depth > 0:
            return _said(document, document["components"]["schemas"][ref.rsplit("/", 1)[1]], depth - 1)
        return " ".join(_said(document, value, depth) for value in node.values())
    if isinstance(node, list):
        return " ".join(_said(document, value, depth) for value in node)
    return str(node)


def test_the_rules_the_generator_is_told_are_said_in_the_document(stack: Endpoints) -> None:
    with serve(stack) as url:
        document = httpx.get(f"{url}/openapi.json").json()
    for (method, path), rule in RULES.items():
        said = _said(document, document["paths"][path][method.lower()])
        for words in rule.words:
            assert words in said, (method, path, words)
