"""One place names every Redis key family (``antifraud/state/keys.py``): each is described, no two claim the
same keys, and a key is told to its family. The integration tests (the determinism run, the console's walk
through a confirmed case) check that every key a full run leaves in Redis has a family."""

from antifraud.state import keys
from antifraud.state.keys import families, family_of


def test_every_family_says_its_type_writer_retention_and_value() -> None:
    for family in families():
        assert all((family.prefix, family.type, family.writer, family.retention, family.value)), family


def test_no_two_families_claim_the_same_keys() -> None:
    named = [(family.prefix, family.suffix) for family in families()]
    assert len(named) == len(set(named))
    assert len(named) > 60, "the families of the stream, the domains and the web"


def test_a_key_is_told_to_its_family() -> None:
    assert family_of("case:9f2c") is keys.CASE
    assert family_of("case:9f2c:alerts") is keys.CASE_ALERTS, "the longest match: the alerts hang off the case"
    assert family_of("case:9f2c:notes") is keys.CASE_NOTES
    assert family_of("cases:seen") is keys.CASES_SEEN
    assert family_of("outbox") is keys.OUTBOX and family_of("outbox:relay") is keys.OUTBOX_LOCK
    assert family_of("timers:antifraud.calls:0") is keys.TIMERS
    assert family_of(keys.RECENT_WARNINGS.key("{B001}")) is keys.RECENT_WARNINGS
    assert family_of("credit:by:account:6222000000000666") is keys.LISTINGS_NAMING
    for nobody in ("case:", "outboxes", "somebody:else", ""):
        assert family_of(nobody) is None, nobody
