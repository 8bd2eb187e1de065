"""The policies by name: what `decide()` dispatches on, and what a simulator or a test can enumerate.

Each row says how to run a policy (`decide`), what it remembers between polls (`state_type`, a frozen
dataclass that starts empty), and which inputs it cannot do without (`needs`: Observation fields of
which at least one must be known, else the poll counts as no data and the shared hold/fallback rules
apply). Adding a policy is a module with those three things and a row here, plus its name in
config.POLICIES (config cannot import this module: the policies import config).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .config import Config
from .decision import Decision, Observation, State
from .hpa import HpaState, decide_hpa
from .kpa import KpaState, decide_kpa
from .slo import SloState, decide_slo
from .static import StaticState, decide_static


@dataclass(frozen=True)
class PolicySpec:
    decide: Callable[[Observation, State, Config, float], Decision]  # gets State.policy as a state_type
    state_type: type
    needs: tuple[str, ...] = ()    # Observation fields; all of them None means no data
    no_data: str = ""              # the reason logged then


POLICIES: dict[str, PolicySpec] = {
    "slo": PolicySpec(decide_slo, SloState, needs=("rate_rps", "inflight"),
                      no_data="no request rate or in-flight data"),
    "hpa": PolicySpec(decide_hpa, HpaState, needs=("cpu_cores",), no_data="no cpu data"),
    # Which of the two it scales on is KPA_METRIC's choice: decide_kpa holds when that one is missing.
    "kpa": PolicySpec(decide_kpa, KpaState, needs=("rate_rps", "inflight"), no_data="no request rate or in-flight data"),
    "static": PolicySpec(decide_static, StaticState),
}
