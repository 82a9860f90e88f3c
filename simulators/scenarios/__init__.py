"""Scenarios: fraud, and benign look-alikes that a detector must not flag.

Each module defines its parameters (a dataclass with defaults), a ``generate``
function of a :class:`~simulators.scenarios.common.Context` and its ``SCENARIO``
registration.
"""

from simulators.scenarios import (
    call_centre,
    card_dealer,
    courier_calls,
    fake_base_station,
    fraud_call_team,
    new_cell_tower,
    payroll,
    relative_transfer,
    sales_calls,
    two_cards,
    two_handsets,
    wangiri,
)
from simulators.scenarios.common import ScenarioType

SCENARIOS: dict[str, ScenarioType] = {
    s.name: s
    for s in (
        fraud_call_team.SCENARIO,
        card_dealer.SCENARIO,
        fake_base_station.SCENARIO,
        wangiri.SCENARIO,
        courier_calls.SCENARIO,
        call_centre.SCENARIO,
        payroll.SCENARIO,
        relative_transfer.SCENARIO,
        two_cards.SCENARIO,
        new_cell_tower.SCENARIO,
        sales_calls.SCENARIO,
        two_handsets.SCENARIO,
    )
}
"""Scenario name to its type, fraud first, then benign look-alikes."""
