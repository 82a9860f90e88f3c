"""Constrained field types shared by the event models.

Identifiers are validated at the edge so that a detector never sees a phone
number with letters in it or an ID number with a wrong check digit: such a
record is dead-lettered with the reason instead.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

# GB 11643-1999 weights and check characters for the 18-digit resident ID number.
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    """The check character of a resident ID number from its first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise PydanticCustomError("id_digits", "need exactly 17 digits")
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS)) % 11]


def make_id_number(region: str, birth: str, sequence: int) -> str:
    """A valid ID number from its parts: 6-digit region, YYYYMMDD birth date, 3-digit sequence."""
    first17 = f"{region}{birth}{sequence:03d}"
    return first17 + id_check_char(first17)


def _valid_id_number(value: str) -> str:
    if id_check_char(value[:17]) != value[17]:
        raise PydanticCustomError("id_check_digit", "ID number check digit does not match (GB 11643)")
    return value


EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
"""No event this system judges is older: call, SMS, card and transfer records of that age are past every
retention period, and an older time is a producer's unset or broken clock. Such a record is dead-lettered
(``event_time_out_of_range``) by the worker and skipped by ``antifraud detect``, before it reaches any state."""

EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
"""Times are kept as epoch seconds, where 0 means "never" (an account not flagged): no earlier time is valid."""


def _utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+08:00 has no UTC date: a bad value (422, dead letter), not a crash
        raise PydanticCustomError("time_range", "the time is out of range in UTC") from None
    if utc <= EARLIEST:
        raise PydanticCustomError("time_before_1970", "the time must be after 1970-01-01T00:00:00Z")
    return utc


ID_NUMBER_FORMAT = "gb11643"
"""The JSON Schema ``format`` of a resident ID number: 17 digits and the check character GB 11643 computes
from them (a rule a pattern cannot state; a schema-driven generator registers this format to make valid ones)."""

IdNumber = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]{17}[0-9X]$"),
    AfterValidator(_valid_id_number),
    Field(json_schema_extra={"format": ID_NUMBER_FORMAT}),
]
"""18-character resident ID number with a valid check character."""

Msisdn = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{3,15}$")]
"""A phone number: E.164 digits, optionally with a leading '+'; short codes allowed."""

AccountNo = Annotated[str, StringConstraints(pattern=r"^[0-9]{8,30}$")]
"""A bank account or card number."""

Imei = Annotated[str, StringConstraints(pattern=r"^[0-9]{14,16}$")]

PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
"""No control characters: stores join fields with them (``antifraud/state/``)."""

_SPACE = r"\t\n\x0b\x0c\r \x85\xa0" + "\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
"""What pydantic strips (Unicode White_Space), as a character class body; Python's and JavaScript's ``\\s``
differ from it (``\\x1c``-``\\x1f``), so the patterns name it."""

NOT_BLANK = f"[^{_SPACE}]"
"""Something besides white space: a stripped value must not come out empty (the schema says so, not only
``min_length``, so that a client or a schema-driven generator knows " " is refused)."""

PRINTABLE_NOT_BLANK = f"^[{_SPACE}]*[^\\x00-\\x1f\\x7f]*[^{_SPACE}\\x00-\\x1f\\x7f][^\\x00-\\x1f\\x7f]*[{_SPACE}]*$"
"""``PRINTABLE`` and ``NOT_BLANK`` at once, of a value before it is stripped (white space at either end is
dropped, so the schema allows it there)."""


@dataclass(frozen=True)
class Stripped:
    """Field metadata: a string stripped of white space at either end, then at least one character and
    matching ``pattern``, and at most ``max_length`` characters before it is stripped as after: the schema's
    ``maxLength`` is of what a client sends, padding included."""

    max_length: int
    pattern: str = NOT_BLANK

    def _stripped(self) -> core_schema.CoreSchema:
        return core_schema.str_schema(
            min_length=1, max_length=self.max_length, strip_whitespace=True, pattern=self.pattern
        )

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """The length as sent, then as stripped: two string checks inside pydantic-core (a Python validator
        for the first cost 7% of decoding a cell observation, which has two such fields)."""
        return core_schema.chain_schema([core_schema.str_schema(max_length=self.max_length), self._stripped()])

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """What a client must send: the stripped string's rules (a chain's schema would be its first step's)."""
        return handler(self._stripped())


Reason = Annotated[str, Stripped(500)]
"""Why a person or an order did something, in their words (a hold's move, a fraud report, a blocked number)."""

Code = Annotated[str, Stripped(64, PRINTABLE_NOT_BLANK)]
"""An opaque identifier: bank, branch, ATM, cell, carrier, outlet."""

PersonName = Annotated[str, Stripped(64, PRINTABLE_NOT_BLANK)]

MAX_FEN = 10**15
"""10 trillion yuan: far above any real transfer, and below 2**53, so Redis's Lua scripts (which count in
doubles) sum amounts exactly."""


def _whole(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


Fen = Annotated[int, Field(strict=True, gt=0, le=MAX_FEN), BeforeValidator(_whole)]
"""A positive amount in fen (1/100 yuan): a whole number. ``12.0`` is one (JSON Schema's integers include
it, and every amount up to ``MAX_FEN`` is exact in a double); ``12.5``, ``"12"`` and ``true`` are not."""

TIME_PATTERN = r"^(197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9])-"
"""Years 1971 to 9989: within what ``UtcTime`` takes whatever the time zone (it refuses 1970 and earlier,
and a year 9999 that a time zone pushes past the end of the calendar)."""

UtcTime = Annotated[AwareDatetime, AfterValidator(_utc), Field(json_schema_extra={"pattern": TIME_PATTERN})]
"""A timezone-aware timestamp, normalised to UTC; naive times are refused."""


def _iso_only(value: object) -> object:
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+(\.\d*)?\s*", value):
        raise PydanticCustomError(
            "time_not_number", "give an ISO 8601 time with a timezone, like 2026-03-02T09:00:00+08:00, not a number"
        )
    return value


QueryTime = Annotated[UtcTime, BeforeValidator(_iso_only)]
"""A time in a URL's query: ISO 8601 only (pydantic would read ``0.5`` as seconds after 1970)."""
