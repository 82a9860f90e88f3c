"""Benign: an employer's account paying its staff each month, all within minutes.

One account paying many people at once looks like a mule fanning out money,
but the payees are residents, the amounts are wages and it happens monthly.
"""

from dataclasses import dataclass

import numpy as np

from simulators.clock import DAY, HOUR, MINUTE, local_midnight
from simulators.identity import BANK_SHARE, BANKS
from simulators.normal import amounts
from simulators.scenarios.common import Context, Holders, Outcome, ScenarioType, residents, take, transfer

COMPANY_KINDS = ("精密机械有限公司", "物流有限公司", "纺织有限公司", "化工有限公司", "电子科技有限公司")


@dataclass(frozen=True)
class Params:
    employees: int = 80
    pay_day: int = 1
    """Days after the first local midnight of the period; repeated every 30 days."""
    median_wage_fen: int = 650_000


def generate(ctx: Context, params: Params) -> Outcome:
    rng, city = ctx.rng, ctx.city
    bank = rng.choice(len(BANKS), 1, p=BANK_SHARE)
    boss = int(rng.integers(0, len(city.people)))
    company = f"太仓{rng.choice(['华', '恒', '鑫', '联', '德'])}{rng.choice(['泰', '达', '盛', '诚'])}"
    employer = Holders(
        city.ids.new_accounts(rng, bank),
        np.array([(company + rng.choice(COMPANY_KINDS)).encode()]),
        city.people.id_number[[boss]],
        bank.astype(np.int64),
    )
    staff = rng.choice(len(city.people), min(params.employees, len(city.people)), replace=False)
    wage = amounts(rng, len(staff), params.median_wage_fen, 0.3)
    first = local_midnight(ctx.t0) + params.pay_day * DAY + 10 * HOUR
    runs = np.arange(first, ctx.t1, 30 * DAY)
    batches = [
        transfer(
            ctx,
            run + rng.integers(0, 10 * MINUTE, len(staff)),
            take(employer, np.zeros(len(staff), np.int64)),
            residents(city, staff),
            wage,
            np.full(len(staff), b"online"),
        )
        for run in runs.tolist()
    ]
    out = Outcome(batches)
    out.involve("account", employer.account.tolist(), "employer", False)
    return out


SCENARIO = ScenarioType("payroll", True, Params, generate, default_count=1)
