"""An account's opening, as the account registry knows it (built from card-opening events)."""

from dataclasses import dataclass

DAY = 86400.0


@dataclass(frozen=True)
class AccountInfo:
    """An account's opening: when (epoch seconds), the holder's ID number, the bank and branch, the event."""

    opened_at: float
    holder_id_number: str
    bank: str
    branch_id: str
    event_id: str

    def opened_within(self, at: float, days: float) -> bool:
        """Opened at or before ``at`` and at most ``days`` before it: "newly opened" at that time."""
        return self.opened_at <= at <= self.opened_at + days * DAY

    def age_days(self, at: float) -> float:
        return (at - self.opened_at) / DAY
