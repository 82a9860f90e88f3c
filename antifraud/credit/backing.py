"""Four eyes on listings: a listing is made on a confirmed case of the party, or on a second officer's word.

One credit officer could once list anyone with an invented case id, and every counter check then
answered BLOCK for them. A listing an officer asks for is now checked against the case it names: the case
must exist, be confirmed as fraud (confirmed, forwarded, or closed after a confirmation), and be about
the party, or one of the accounts or phones listed with it. Otherwise it can only be proposed, and a
second officer approves it (:meth:`CreditBlacklist.propose`, :meth:`CreditBlacklist.approve`).
"""

from antifraud.case.service import CaseNotFound, CaseService
from antifraud.credit.models import ListingDraft, Unbacked


async def unbacked(cases: CaseService, draft: ListingDraft) -> Unbacked | None:
    """Why the case ``draft`` names does not back it, or None when it does."""
    try:
        case = await cases.get(draft.case_id)
    except CaseNotFound:
        return Unbacked("unbacked_no_case", f"there is no case {draft.case_id}", draft.case_id)
    if await cases.decided(case) is not True:
        why = f"case {draft.case_id} is not confirmed as fraud (it is {case.status})"
        return Unbacked("unbacked_not_confirmed", why, draft.case_id, status=case.status)
    entity = case.entity
    named = {
        (draft.party.kind, draft.party.id),
        *(("account", a) for a in draft.accounts),
        *(("phone", p) for p in draft.phones),
    }
    if (entity.kind, entity.value) not in named:
        why = f"case {draft.case_id} is about another {entity.kind}, not the party or its accounts and phones"
        return Unbacked("unbacked_other_party", why, draft.case_id, kind=entity.kind)
    return None
