"""Masking of personal data before it reaches a log or the console."""

from collections.abc import Callable

import pytest

from antifraud.privacy import mask, mask_account, mask_entity, mask_id_number, mask_name, mask_phone

Masker = Callable[[str], str]


@pytest.mark.parametrize(
    ("masker", "value", "expected"),
    [
        (mask_phone, "13812345678", "138****5678"),
        (mask_phone, "+8613812345678", "+86*******5678"),
        (mask_id_number, "320585198001010013", "3205**********0013"),
        (mask_id_number, "11010519491231002X", "1101**********002X"),
        (mask_account, "6222000011112222", "6222********2222"),
        (mask_name, "张伟", "张*"),
        (mask_name, "欧阳娜娜", "欧***"),
    ],
)
def test_masked_output(masker: Masker, value: str, expected: str) -> None:
    assert masker(value) == expected


@pytest.mark.parametrize(
    ("masker", "value"),
    [
        (mask_phone, "110"),
        (mask_phone, "9558800"),  # 7 = the 3 + 4 kept characters: nothing may be shown
        (mask_id_number, "12345678"),
        (mask_account, "1234"),
        (mask_phone, ""),
        # A one-character name would be shown whole if the family name were kept.
        (mask_name, "A"),
    ],
)
def test_short_values_are_fully_masked(masker: Masker, value: str) -> None:
    assert masker(value) == "*" * len(value)


def test_mask_keeps_length_and_ends() -> None:
    assert mask("abcdefghij", 2, 3) == "ab*****hij"
    assert mask("abcde", 2, 3) == "*****"


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("phone", "13812345678", "138****5678"),
        ("account", "6222000011112222", "6222********2222"),
        ("id_number", "320585198001010013", "3205**********0013"),
        ("cell", "cell-460-00-4101-12345", "cell-460-00-4101-12345"),
    ],
)
def test_mask_entity_by_kind(kind: str, value: str, expected: str) -> None:
    assert mask_entity(kind, value) == expected
