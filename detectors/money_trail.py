"""Following a fraud victim's money from account to account (plan (一)1 item 6), pure.

Input: the victim's transfers in the reported window, and the outgoing transfers
of every account the money reached (the service fetches them hop by hop until
:attr:`Trail.unexplored` is empty). Output: how much of the victim's money each
account received, passed on and still holds, at which hop, and which transfers
carried it.

Apportioning rule ("tainted money leaves first", per inflow):

- each victim transfer puts its whole amount, tainted, in the payee account as
  one *lot* at hop 1, at the transfer's time;
- an outflow of an account takes tainted money from the account's lots that
  arrived strictly before it and at most ``hop_seconds`` before it, oldest lot
  first, up to the outflow's amount; what it takes arrives at its payee as lots
  one hop further on. Money the account had besides the lots pays the rest.
- a lot at hop ``max_hops`` goes no further: the trail ends at that account.
- a transfer whose funds have not reached the payee (a hold still held, frozen,
  revoked or returned: ``stopped``) carries its tainted amount to no one: the
  money is still with the bank.

Why this rule: mules pass the victim's money on within minutes, so the first
outflows after a tainted inflow are the likeliest to carry it; the rule is
causal (an outflow never carries money that arrived after it), in whole fen, and
conserves money: what the accounts still hold (money past the hop or time limit
counts as held where the trail stopped) plus what stopped transfers carry equals
the victim's transfers. It names each account's amount at risk exactly, which is
what a freeze request needs.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Transfer:
    """One transfer as the trail sees it; ``at`` is epoch seconds of event time."""

    event_id: str
    payer: str
    payee: str
    amount_fen: int
    at: float


@dataclass(frozen=True)
class TaintedTransfer:
    """A transfer that carried ``tainted_fen`` of the victim's money to a payee ``hop`` hops from the victim."""

    transfer: Transfer
    tainted_fen: int
    hop: int
    stopped: bool


@dataclass(frozen=True)
class AccountAtRisk:
    account: str
    hop: int
    """The fewest hops from the victim by which tainted money reached the account."""
    received_fen: int
    passed_on_fen: int
    evidence: tuple[str, ...]
    """Event ids of the tainted transfers into the account."""

    @property
    def retained_fen(self) -> int:
        """Tainted money still in the account: the amount at risk a freeze request names."""
        return self.received_fen - self.passed_on_fen


@dataclass(frozen=True)
class Trail:
    accounts: dict[str, AccountAtRisk] = field(default_factory=dict)
    """Accounts the money reached, nearest hop first, then by account."""
    transfers: list[TaintedTransfer] = field(default_factory=list)
    """Tainted transfers in time order."""
    unexplored: frozenset[str] = frozenset()
    """Accounts holding tainted money that may move on, whose outflows were not given."""


@dataclass
class _Lot:
    at: float
    hop: int
    amount: int


def _take(lots: list[_Lot], at: float, amount: int, hop_seconds: float, max_hops: int) -> list[tuple[int, int]]:
    """Take up to ``amount`` from the lots an outflow at ``at`` may carry, oldest first: [(next hop, fen)]."""
    taken = []
    for lot in lots:
        if amount == 0:
            break
        if lot.amount and lot.hop < max_hops and lot.at < at <= lot.at + hop_seconds:
            piece = min(lot.amount, amount)
            lot.amount -= piece
            amount -= piece
            taken.append((lot.hop + 1, piece))
    return taken


def trace(
    victim_transfers: Sequence[Transfer],
    outflows: Mapping[str, Sequence[Transfer]],
    *,
    max_hops: int,
    hop_seconds: float,
    stopped: frozenset[str] = frozenset(),
) -> Trail:
    """Follow the victim's transfers through ``outflows`` by the module's rule."""
    victim_ids = {t.event_id for t in victim_transfers}
    every = {t.event_id: t for t in (*victim_transfers, *(t for flows in outflows.values() for t in flows))}
    lots: dict[str, list[_Lot]] = {}
    tainted: list[TaintedTransfer] = []
    for transfer in sorted(every.values(), key=lambda t: (t.at, t.event_id)):
        if transfer.event_id in victim_ids:
            pieces = [(1, transfer.amount_fen)]
        else:
            pieces = _take(lots.get(transfer.payer, []), transfer.at, transfer.amount_fen, hop_seconds, max_hops)
        if not pieces:
            continue
        is_stopped = transfer.event_id in stopped
        tainted.append(
            TaintedTransfer(transfer, sum(fen for _, fen in pieces), min(hop for hop, _ in pieces), is_stopped)
        )
        if not is_stopped:
            lots.setdefault(transfer.payee, []).extend(_Lot(transfer.at, hop, fen) for hop, fen in pieces)
    return Trail(
        accounts=_accounts(tainted, victim_ids),
        transfers=tainted,
        unexplored=frozenset(
            account
            for account, held in lots.items()
            if account not in outflows and any(lot.hop < max_hops and lot.amount for lot in held)
        ),
    )


def _accounts(tainted: Sequence[TaintedTransfer], victim_ids: set[str]) -> dict[str, AccountAtRisk]:
    received: dict[str, int] = {}
    passed: dict[str, int] = {}
    hops: dict[str, int] = {}
    evidence: dict[str, list[str]] = {}
    for item in tainted:
        t = item.transfer
        if t.event_id not in victim_ids:
            passed[t.payer] = passed.get(t.payer, 0) + item.tainted_fen
        if not item.stopped:
            received[t.payee] = received.get(t.payee, 0) + item.tainted_fen
            hops[t.payee] = min(hops.get(t.payee, item.hop), item.hop)
            evidence.setdefault(t.payee, []).append(t.event_id)
    return {
        account: AccountAtRisk(
            account, hops[account], received[account], passed.get(account, 0), tuple(evidence[account])
        )
        for account in sorted(received, key=lambda a: (hops[a], a))
    }
