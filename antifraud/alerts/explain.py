"""Alert reasons in a teller's words.

A detector's reason is a feature name, a value and a threshold (``call_before_hours_max
0.17 (threshold 3)``): right for an analyst, opaque at a bank counter with a customer
waiting. The pre-transfer check and the counter's live warnings both say the same
reason the same way, from the one table here. A feature the table does not know is
shown as the detector gave it, so a new detector's alerts still read, if less well.
"""

from antifraud.alerts.models import Alert

MESSAGES: dict[str, str] = {
    "blacklisted_payee": "the payee account is on the credit blacklist",
    "call_before_hours_max": "a listed or flagged number called the payer {value:g} h ago",
    "flagged_call_minutes": "the payer was on the line with that number for {value:g} min",
    "new_payee": "the payer never paid this account before",
    "amount_multiple": "the amount is {value:g} times the payer's usual largest payment",
    "structuring_share": "the amount is just under a reporting limit ({value:.0%} of it)",
    "hour_habit_max": "the payer rarely pays at this hour",
    "channel_habit_max": "the payer rarely uses this channel",
    "payee_fan_in": "the payee received money from {value:g} payers in a day",
    "payee_flagged": "the payee is a suspected mule account",
    "payer_flagged": "the payer's account is a suspected mule: this payee would be the next hop",
    "payee_account_age_days_max": "the payee account was opened {value:g} days ago by someone else",
    "payer_pass_through_share": "the payer moved on {value:.0%} of what it received in the last half hour",
    "payer_fan_in_payers": "the payer received money from {value:g} payers in a day",
    "payee_pass_through_share": "the payee moved on {value:.0%} of what it received in the last half hour",
    "payee_fan_in_payers": "with this transfer the payee has received money from {value:g} payers in a day",
    "atm_other_name": "an ATM transfer to an account in another name: the money arrives after {value:g} h",
    "payee_holder_bulk_opener": "the payee's holder is flagged for opening many cards (a likely sold card)",
    "held_amount_yuan": "{value:,.2f} yuan of this customer's are held for that payee",
}

FLAGGED_BY = "payee_flagged_by_"
"""Prefix of the hold warning's reason: the detector that flagged a held transfer's payee follows it."""


def explain(feature: str, value: float | None = None) -> str:
    """One reason as a sentence; an unknown feature as ``feature value``."""
    if feature.startswith(FLAGGED_BY):
        return (
            f"since the transfer was held, the payee was flagged ({feature.removeprefix(FLAGGED_BY).replace('_', ' ')})"
        )
    template = MESSAGES.get(feature)
    if template is None:
        return feature if value is None else f"{feature} {value:g}"
    return template.format(value=value)


def explain_alert(alert: Alert) -> list[str]:
    """An alert's reasons as sentences, without the score (which says how many, not why)."""
    return [explain(r.feature, r.value) for r in alert.reasons if r.feature != "score"]
