"""The goals set for the slo policy, each judged PASS, MISS or n/a from the comparison's rows, and what
repeated runs cannot tell apart.

A row is comparison/table.py's (one run, or the median of repeated runs with their `spread`). Where a
goal's figure has overlapping ranges over the repeats of the two runs it compares, its measured text says
that they are not distinguishable: the machine's noise is as large as their difference.
"""

from __future__ import annotations

TARGET_WINDOWS = 0.99       # share of 10 s windows with p95 within the SLO
TARGET_COST_CUT = 0.25      # fewer replica-seconds than hpa-50
TARGET_P95_CUT = 0.30       # lower p95 than static-min
TARGET_ORACLE_RATIO = 1.2   # at most this many times the oracle's replica-seconds (simulator only)

# The figures whose spread over repeated runs decides whether two policies can be told apart.
RANKED = (("p95_ms", "p95"), ("windows_in_slo", "windows in SLO"), ("replica_seconds", "replica-seconds"))


def overlap(a: dict, b: dict, key: str) -> bool:
    """True when the two rows' ranges of `key` over their repeats overlap: the runs cannot rank them."""
    ra = a.get("spread", {}).get(key)
    rb = b.get("spread", {}).get(key)
    if ra is None or rb is None:
        return False
    return ra[0] <= rb[1] and rb[0] <= ra[1]


def _noise_note(a: dict, b: dict, *keys: str) -> str:
    return "; the runs' ranges overlap: not distinguishable" if any(overlap(a, b, k) for k in keys) else ""


def _missed(row: dict) -> float:
    return row["windows"] - row["windows_met"]


def _windows(slo: dict, rows: dict) -> tuple[str, bool | None]:
    share = slo["windows_in_slo"]
    if share is None:
        return "-", None
    return f"{share:.1%} ({slo['windows_met']:g}/{slo['windows']:g})", share >= TARGET_WINDOWS


def _cost_vs_hpa_50(slo: dict, rows: dict) -> tuple[str, bool | None]:
    hpa = rows.get("hpa-50")
    if not hpa or not hpa["replica_seconds"]:
        return "hpa-50 not run", None
    cut = 1 - slo["replica_seconds"] / hpa["replica_seconds"]
    return (f"{cut:+.1%} ({slo['replica_seconds']:.0f} vs {hpa['replica_seconds']:.0f})"
            + _noise_note(slo, hpa, "replica_seconds"), cut >= TARGET_COST_CUT)


def _p95_vs_static_min(slo: dict, rows: dict) -> tuple[str, bool | None]:
    static = rows.get("static-min")
    if not static or not static["p95_ms"] or slo["p95_ms"] is None:
        return "static-min not run", None
    cut = 1 - slo["p95_ms"] / static["p95_ms"]
    return (f"{cut:+.1%} ({slo['p95_ms']:.0f} vs {static['p95_ms']:.0f} ms)" + _noise_note(slo, static, "p95_ms"),
            cut >= TARGET_P95_CUT)


def _beats_kpa(slo: dict, rows: dict) -> tuple[str, bool | None]:
    kpa = rows.get("kpa")
    if not kpa:
        return "kpa not run", None
    mine, theirs = _missed(slo), _missed(kpa)
    # "Fewer" cannot be asked of a run when kpa missed none: then none missed is as good as it gets.
    fewer = mine < theirs or mine == theirs == 0
    cheaper = slo["replica_seconds"] <= kpa["replica_seconds"]
    return (f"{mine:g} vs {theirs:g} windows missed, {slo['replica_seconds']:.0f} vs {kpa['replica_seconds']:.0f} "
            "replica-s" + _noise_note(slo, kpa, "windows_in_slo", "replica_seconds"), fewer and cheaper)


def _near_oracle(slo: dict, rows: dict) -> tuple[str, bool | None]:
    oracle = rows.get("oracle")
    if not oracle or not oracle["replica_seconds"]:
        return "oracle not run", None
    ratio = slo["replica_seconds"] / oracle["replica_seconds"]
    return (f"{ratio:.2f}x ({slo['replica_seconds']:.0f} vs {oracle['replica_seconds']:.0f})"
            + _noise_note(slo, oracle, "replica_seconds"), ratio <= TARGET_ORACLE_RATIO)


# name -> (what it asks, how it is judged)
GOALS = {
    "windows": (f"slo: >= {TARGET_WINDOWS:.0%} of 10 s windows with p95 within the SLO", _windows),
    "cost_vs_hpa_50": (f"slo: >= {TARGET_COST_CUT:.0%} fewer replica-seconds than hpa-50", _cost_vs_hpa_50),
    "p95_vs_static_min": (f"slo: p95 >= {TARGET_P95_CUT:.0%} lower than static-min", _p95_vs_static_min),
    "beats_kpa": ("slo: fewer SLO-missing windows than kpa at equal or fewer replica-seconds", _beats_kpa),
    "near_oracle": (f"slo: within {TARGET_ORACLE_RATIO:g}x of the oracle's replica-seconds", _near_oracle),
}
# The local stack has no oracle; the simulator's comparisons judge the four goals of the issue.
LOCAL_GOALS = ("windows", "cost_vs_hpa_50", "p95_vs_static_min", "beats_kpa")
SIM_GOALS = ("windows", "cost_vs_hpa_50", "beats_kpa", "near_oracle")


def targets(rows: dict[str, dict], goals: tuple[str, ...] = LOCAL_GOALS) -> list[dict]:
    """Each goal: what it asks, what was measured, PASS / MISS (or n/a when a run it needs is missing)."""
    slo = rows.get("slo")
    if slo is None:
        return [{"goal": "all", "target": "all targets", "measured": "the slo run is not part of this comparison",
                 "verdict": "n/a"}]
    out = []
    for goal in goals:
        text, judge = GOALS[goal]
        measured, ok = judge(slo, rows)
        out.append({"goal": goal, "target": text, "measured": measured,
                    "verdict": "n/a" if ok is None else ("PASS" if ok else "MISS")})
    return out


def target_lines(checks: list[dict]) -> list[str]:
    return ["| target | measured | result |", "|---|---|---|"] + [
        f"| {c['target']} | {c['measured']} | {c['verdict']} |" for c in checks]


def indistinguishable(rows: dict[str, dict], against: str = "slo") -> list[str]:
    """Sentences naming each figure on which `against` and another run cannot be told apart."""
    base = rows.get(against)
    if base is None or "spread" not in base:
        return []
    out = []
    for name, row in rows.items():
        if name == against:
            continue
        same = [label for key, label in RANKED if overlap(base, row, key)]
        if same:
            out.append(f"{against} vs {name}: not distinguishable on {', '.join(same)} (their ranges over "
                       f"{base['repeats']} runs overlap)")
    return out
