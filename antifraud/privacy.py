"""Masking of personal data for logs and console output.

Alerts on the alerts topic carry full identifiers (police and banks need them);
anything written to a log goes through these functions first.
"""

import logging
import re


def mask(value: str, keep_start: int, keep_end: int) -> str:
    """Keep the first and last few characters, star the rest (all of it if short)."""
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[len(value) - keep_end :]


def mask_phone(msisdn: str) -> str:
    """138****5678: the carrier prefix and the last four digits, as banks print them."""
    return mask(msisdn, 3, 4)


def mask_id_number(id_number: str) -> str:
    """3205**********1234: region prefix and the last four characters."""
    return mask(id_number, 4, 4)


def mask_account(account: str) -> str:
    """6222************1234: the bank's BIN prefix and the last four digits."""
    return mask(account, 4, 4)


def mask_name(name: str) -> str:
    """张*: the family name only."""
    return mask(name, 1, 0)


_BY_ENTITY_KIND = {"phone": mask_phone, "account": mask_account, "id_number": mask_id_number}


def mask_entity(kind: str, value: str) -> str:
    """Mask an alert entity by its kind; cells are infrastructure, not personal data."""
    masker = _BY_ENTITY_KIND.get(kind)
    return masker(value) if masker else value


_NUMBERS = re.compile(r"\d{7,}[\dXx]?")
"""A phone (11 digits, or more with a country code), account (8-30) or ID number (17 digits and a check
character) inside free text, such as a request's path and query."""


def mask_numbers(text: str) -> str:
    """Every long number in ``text`` masked: its first three and last four characters kept."""
    return _NUMBERS.sub(lambda m: mask(m.group(), 3, 4), text)


class MaskNumbers(logging.Filter):
    """Masks long numbers in a log record's message and arguments: the web server's access and error logs
    quote request paths, and look-ups put phone, account and ID numbers in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_numbers(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(mask_numbers(a) if isinstance(a, str) else a for a in record.args)
        return True


def mask_server_logs(*loggers: str) -> None:
    """Install :class:`MaskNumbers` on ``loggers`` once (an app built twice in one process adds none)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, MaskNumbers) for f in logger.filters):
            logger.addFilter(MaskNumbers())
