"""What `python -m sim tune` prints and writes: the chosen settings, the held-out table and goals, the
KEY=VALUE lines for the autoscaler's ConfigMap, and tune.json. Formatting only: sim/tune_cli.py runs."""

from __future__ import annotations

from settings import format_number
from loadtester.capacity_report import env_file_text
from comparison.targets import TARGET_WINDOWS
from sim.tune import Score, Trial, best_index

ENV_FILE = "autoscaler.env"
JSON_FILE = "tune.json"
# The held-out rows, in the table's order: (key in the outcome's "held_out", label).
HELD_OUT_ROWS = (("slo", "slo, tuned"), ("slo-current", "slo, current settings"), ("hpa", "hpa, tuned"),
                 ("kpa", "kpa, tuned"), ("oracle", "oracle"))


def settings_text(settings: tuple[tuple[str, float], ...]) -> str:
    return " ".join(f"{name.upper()}={format_number(value)}" for name, value in settings) or "-"


def chosen_text(policy: str, best: Trial, trials: list[Trial]) -> str:
    """The winner of a search, and what it means when no trial kept the windows."""
    text = f"  {policy}: {settings_text(best.settings)}: {best.score.text()}, the best of {len(trials)} trials"
    if not best.score.feasible():
        text += f" (none kept >= {TARGET_WINDOWS:.0%} of the windows: the one that kept most)"
    elif not best.margin:
        text += (f" (none kept >= {TARGET_WINDOWS:.0%} with a window to spare or with one step less headroom "
                 "keeping it too: the cheapest that kept it)")
    return text


def _row(label: str, settings: str, score: Score, oracle: Score | None) -> str:
    ratio = (f"{score.replica_seconds / oracle.replica_seconds:.2f}x" if oracle and oracle.replica_seconds > 0
             else "-")
    return (f"| {label} | {settings} | {score.share:.1%} ({score.windows_met}/{score.windows}) | "
            f"{score.windows - score.windows_met} | {score.replica_seconds:.0f} | {ratio} |")


def held_out_table(outcome: dict) -> list[str]:
    scores = outcome["held_out"]
    settings = {name: settings_text(outcome["searches"][name]["best"].settings) for name in ("slo", "hpa", "kpa")}
    settings["slo-current"] = settings_text(tuple(outcome["start"].items()))
    settings["oracle"] = "knows the future"
    lines = ["| run | settings | windows in SLO | windows missed | replica-s | vs oracle |",
             "|---|---|---:|---:|---:|---:|"]
    return lines + [_row(label, settings[key], scores[key], scores.get("oracle"))
                    for key, label in HELD_OUT_ROWS if key in scores]


def report_lines(outcome: dict) -> list[str]:
    tuned, held = outcome["tuned"], outcome["held"]
    lines = ["", f"chosen on the tuned part (scored over [{tuned.score_from_s:g}, {tuned.score_to_s:g}) s):"]
    lines += [chosen_text(policy, search["best"], search["trials"]) for policy, search in outcome["searches"].items()]
    lines += ["", f"held out: [{outcome['split_s']:g}, {outcome['split_s'] + held.score_to_s - held.score_from_s:g}) s "
                  f"of the replay, after {held.score_from_s:g} s of warm-up", ""]
    lines += held_out_table(outcome)
    lines += ["", "| goal | measured | result |", "|---|---|---|"]
    lines += [f"| {g['goal']} | {g['measured']} | {g['verdict']} |" for g in outcome["goals"]]
    lines += ["", "for the autoscaler's ConfigMap, as the capacity probe's --env-file writes them (in k8s/autoscaler-"
                  "measured.env, `kubectl apply -k k8s/` merges them; `env $(cat FILE)` reads them too):"]
    return lines + env_file_text(outcome["env"]).splitlines()


def _score_dict(score: Score) -> dict:
    return {"windows_met": score.windows_met, "windows": score.windows, "windows_in_slo": round(score.share, 4),
            "replica_seconds": round(score.replica_seconds, 1)}


def tune_json(outcome: dict) -> dict:
    plan = outcome["plan"]
    searches = {}
    for policy, search in outcome["searches"].items():
        trials = search["trials"]
        searches[policy] = {
            "knobs": {k.key: {"values": list(k.values), "why": k.why} for k in search["knobs"]},
            "chosen": {name.upper(): value for name, value in search["best"].settings},
            "chosen_feasible": search["best"].score.feasible(),
            "chosen_margin": search["best"].margin,
            "trials": [{"settings": {n.upper(): v for n, v in t.settings}, **_score_dict(t.score), "margin": t.margin}
                       for t in trials],
            "best_trial": best_index([t.score for t in trials], margins=[t.margin for t in trials])}
    tuned, held = outcome["tuned"], outcome["held"]
    return {"trace": plan["trace"], "scale": plan["scale"], "split_s": outcome["split_s"],
            "tuned_scored_s": [tuned.score_from_s, tuned.score_to_s],
            "held_out_scored_s": [outcome["split_s"], outcome["split_s"] + held.score_to_s - held.score_from_s],
            "warmup_s": held.score_from_s, "searches": searches,
            "held_out": {key: _score_dict(outcome["held_out"][key]) for key, _ in HELD_OUT_ROWS
                         if key in outcome["held_out"]},
            "goals": outcome["goals"], "env": outcome["env"], "wall_s": outcome.get("wall_s")}
