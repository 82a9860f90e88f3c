"""Masking of personal data for logs and console output.

Alerts on the alerts topic carry full identifiers (police and banks need them);
anything written to a log goes through these functions first.
"""


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
