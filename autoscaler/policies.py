"""The policies by name: what `decide()` dispatches on, and what a simulator or a test can enumerate.

Each row says how to run a policy (`decide`), what it remembers between polls (`state_type`, a frozen
dataclass that starts empty), which inputs it cannot do without (`needs`: Metrics fields of which at
least one must be known, else the poll counts as no data and the shared hold/fallback rules apply),
and the gauges its decisions publish (`Decision.gauges`). Adding a policy is a module with those
things, its name in policy_names.py (POLICY's choices, the local stack's --policy) and a row here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from .config import Config
from .decision import Decision, Observation, State
from .hpa import HpaState, decide_hpa
from .kpa import KpaState, decide_kpa
from .slo import GAUGES as SLO_GAUGES
from .slo import decide_slo
from .slo_signals import SloState
from .static import StaticState, decide_static


@dataclass(frozen=True)
class PolicySpec:
    decide: Callable[[Observation, State, Config, float], Decision]  # gets State.policy as a state_type
    state_type: type
    needs: tuple[str, ...] = ()    # Metrics fields; all of them None means no data
    no_data: str = ""              # the reason logged then
    gauges: Mapping[str, str] = field(default_factory=dict)  # metric name -> help


POLICIES: dict[str, PolicySpec] = {
    "slo": PolicySpec(decide_slo, SloState, needs=("rate_rps", "inflight"),
                      no_data="no request rate or in-flight data", gauges=SLO_GAUGES),
    "hpa": PolicySpec(decide_hpa, HpaState, needs=("cpu_cores",), no_data="no cpu data"),
    # Which of the two it scales on is KPA_METRIC's choice: decide_kpa holds when that one is missing.
    "kpa": PolicySpec(decide_kpa, KpaState, needs=("rate_rps", "inflight"),
                      no_data="no request rate or in-flight data"),
    "static": PolicySpec(decide_static, StaticState),
}
