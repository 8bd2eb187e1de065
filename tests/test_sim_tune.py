"""`python -m sim tune`: the split, the scoring, the choice and the search (sim/tune.py) as tables; the KEY=VALUE
lines (settings/env_file.py); bad input exits 2 naming the flag; one tuning of a short trace end to end, whose
autoscaler.env the autoscaler's own loader takes and kustomize merges into the ConfigMap."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autoscaler.config import Config, ConfigError, load_config
from loadtester.schedule import Schedule
from settings import read_values, specs
from sim.tune import (Knob, Score, best_index, coordinate_search, has_margin, held_out_goals, score_span, split_at_s,
                      split_problem, split_schedule)
from sim.tune_cli import TuneOptions, build_parser, env_values, main, prepare
from tests.support import kustomize_build

REPO = Path(__file__).resolve().parent.parent
CONFIG_KEYS = {spec.env for spec in specs(Config)}


# --- the split -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("duration_s, fraction, split_s", [
    (3600, 0.5, 1800), (305, 0.5, 150), (100, 0.33, 30), (100, 0.3, 30), (3600, 0.95, 3420),
], ids=["half-hour", "down-to-a-window", "a-third", "exact-window-despite-float", "most"])
def test_split_is_at_a_window_boundary(duration_s, fraction, split_s):
    assert split_at_s(duration_s, fraction) == split_s


@pytest.mark.parametrize("duration_s, split_s, warmup_s, words", [
    (3600, 1800, 120, None),
    (300, 150, 140, None),
    (300, 150, 145, "at least one 10 s window must be left to score"),
    (300, 295, 0, "the held-out part is 5 s"),
], ids=["ok", "one-window-after-warm-up", "warm-up-eats-the-tuned-part", "held-out-shorter-than-a-window"])
def test_split_problems(duration_s, split_s, warmup_s, words):
    problem = split_problem(duration_s, split_s, warmup_s)
    assert (problem is None) if words is None else (words in problem)


@pytest.mark.parametrize("split_s, warmup_s", [(50.0, 20.0), (50.0, 0.0), (30.0, 30.0)],
                         ids=["warm-up", "no-warm-up", "warm-up-the-whole-tuned-part"])
def test_the_parts_never_score_the_same_second(split_s, warmup_s):
    offsets = np.arange(0.5, 100.0, 1.0)
    schedule = Schedule(offsets, np.arange(100, dtype=np.int32), 100.0)
    tuned, held = split_schedule(schedule, split_s, warmup_s)
    assert tuned.schedule.offsets_s.max() < split_s and tuned.schedule.duration_s == split_s
    assert (tuned.score_from_s, tuned.score_to_s) == (min(warmup_s, split_s), split_s)
    # The held-out part replays from warmup_s before the split; its scored span starts at the split.
    assert held.starts_at_s == max(0.0, split_s - warmup_s)
    assert held.starts_at_s + held.score_from_s == split_s
    assert held.starts_at_s + held.score_to_s == schedule.duration_s
    np.testing.assert_allclose(held.schedule.offsets_s + held.starts_at_s, offsets[offsets >= held.starts_at_s])


# --- scoring and choosing ---------------------------------------------------------------------------------

def _window(start_s, requests, meets):
    return {"start_s": start_s, "requests": requests, "meets_slo": meets}


@pytest.mark.parametrize("start_s, end_s, score", [
    (0, 40, Score(2, 3, 0 * 10 + 2 * 10 + 4 * 20)),
    (10, 40, Score(1, 2, 2 * 10 + 4 * 20)),
    (20, 30, Score(1, 1, 4 * 10)),
    (40, 60, Score(0, 0, 4 * 20)),
], ids=["all", "from-a-window", "one-window", "no-requests-no-window"])
def test_score_counts_the_span_only(start_s, end_s, score):
    windows = [_window(0, 5, True), _window(10, 5, False), _window(20, 5, True), _window(30, 0, False),
               _window(40, 0, False)]
    ready = [[0.0, 0.0], [10.0, 2.0], [20.0, 4.0]]
    assert score_span(windows, ready, start_s, end_s) == score


OK_CHEAP, OK_DEAR = Score(99, 100, 100.0), Score(100, 100, 200.0)
MISS_CHEAP, MISS_MORE = Score(90, 100, 50.0), Score(95, 100, 300.0)


@pytest.mark.parametrize("scores, best", [
    ([OK_DEAR, OK_CHEAP], 1),
    ([MISS_CHEAP, OK_DEAR], 1),
    ([MISS_CHEAP, MISS_MORE], 1),
    ([Score(95, 100, 80.0), MISS_MORE], 0),
    ([OK_CHEAP, Score(99, 100, 100.0)], 0),
    ([Score(0, 0, 0.0), MISS_CHEAP], 1),
], ids=["feasible-cheaper-wins", "feasible-beats-cheaper-infeasible", "none-feasible-most-windows",
        "none-feasible-same-share-cheaper", "tie-keeps-the-first", "no-window-is-no-pass"])
def test_best_index(scores, best):
    assert best_index(scores) == best


@pytest.mark.parametrize("scores, margins, best", [
    ([OK_CHEAP, OK_DEAR], [False, True], 1),
    ([OK_DEAR, OK_CHEAP], [True, True], 1),
    ([MISS_CHEAP, OK_CHEAP], [False, False], 1),
], ids=["margin-beats-cheaper-edge", "both-with-margin-cheaper-wins", "edge-beats-infeasible"])
def test_best_index_with_margins(scores, margins, best):
    assert best_index(scores, margins=margins) == best


@pytest.mark.parametrize("score, less_headroom, margin", [
    (Score(100, 100, 1.0), None, True),
    (Score(99, 100, 1.0), None, False),
    (Score(99, 100, 1.0), Score(99, 100, 0.5), True),
    (Score(99, 100, 1.0), Score(98, 100, 0.5), False),
    (Score(98, 100, 1.0), Score(100, 100, 0.5), False),
    (Score(0, 0, 0.0), None, False),
], ids=["window-to-spare", "edge-no-step-tried", "edge-next-step-keeps-it", "edge-next-step-misses", "infeasible",
        "no-window"])
def test_has_margin(score, less_headroom, margin):
    assert has_margin(score, less_headroom) is margin


KNOBS = (Knob("a", (1.0, 2.0, 3.0), ""), Knob("b", (10.0, 20.0), ""))


def _edge(kept: dict):
    """Cost falls as `a` (the headroom knob) rises; windows kept of 100 by `a`, whatever b."""
    return lambda v: Score(kept[v["a"]], 100, 100.0 - v["a"] * 10 - v["b"] / 10)


@pytest.mark.parametrize("kept, best, margin", [
    ({1.0: 100, 2.0: 99, 3.0: 99}, 2.0, True),
    ({1.0: 100, 2.0: 99, 3.0: 98}, 1.0, True),
    ({1.0: 99, 2.0: 99, 3.0: 99}, 2.0, True),
    ({1.0: 99, 2.0: 98, 3.0: 97}, 1.0, False),
], ids=["edge-at-the-last-value-backs-off-one-step", "edge-whose-next-step-misses-backs-off",
        "every-step-at-the-edge-takes-the-second-last", "no-margin-anywhere-takes-the-cheapest-that-keeps-it"])
def test_coordinate_search_prefers_a_margin(kept, best, margin):
    found, tried = coordinate_search({"a": 1.0, "b": 10.0}, KNOBS, _edge(kept))
    assert found.settings == (("a", best), ("b", 20.0)) and found.margin is margin
    scores = {t.settings: t.score for t in tried}  # every trial's margin, from the runs the search made
    for t in tried:
        (_, a), (_, b) = t.settings
        assert t.margin is has_margin(t.score, scores.get((("a", a + 1.0), ("b", b))))


def _bowl(best_a, best_b):
    """Cost grows away from (best_a, best_b); every setting keeps its windows."""
    return lambda v: Score(100, 100, abs(v["a"] - best_a) * 7 + abs(v["b"] - best_b) + 1000)


@pytest.mark.parametrize("evaluate, start, best, trials", [
    (_bowl(3.0, 20.0), {"a": 1.0, "b": 10.0}, {"a": 3.0, "b": 20.0}, 6),
    (_bowl(1.0, 10.0), {"a": 1.0, "b": 10.0}, {"a": 1.0, "b": 10.0}, 4),
    (lambda v: Score(100, 100, 5.0), {"a": 2.0, "b": 20.0}, {"a": 2.0, "b": 20.0}, 4),
    (lambda v: Score(int(v["a"] * 10 + v["b"]), 100, 1.0), {"a": 1.0, "b": 10.0}, {"a": 3.0, "b": 20.0}, 6),
    (lambda v: Score(100, 100, 1.0 if v == {"a": 2.0, "b": 20.0} else 5.0), {"a": 3.0, "b": 10.0},
     {"a": 3.0, "b": 10.0}, 4),
], ids=["moves-to-the-optimum", "stays-at-the-optimum", "tie-keeps-the-start", "infeasible-most-windows",
        "one-knob-at-a-time-misses-a-corner"])
def test_coordinate_search(evaluate, start, best, trials):
    calls = []
    found, tried = coordinate_search(start, KNOBS, lambda v: calls.append(v) or evaluate(v))
    assert dict(found.settings) == best
    assert len(tried) == len(calls) == trials  # each distinct setting run once
    assert len({tuple(sorted(c.items())) for c in calls}) == len(calls)


# The best b depends on a: from (3, 10) the first pass finds b = 20, only the second then a = 1.
CORNER = {(1.0, 10.0): 50.0, (2.0, 10.0): 40.0, (3.0, 10.0): 30.0, (1.0, 20.0): 5.0, (2.0, 20.0): 25.0,
          (3.0, 20.0): 20.0}


@pytest.mark.parametrize("passes, best, trials", [(1, {"a": 3.0, "b": 20.0}, 4), (2, {"a": 1.0, "b": 20.0}, 6)],
                         ids=["one-pass", "two-passes"])
def test_coordinate_search_stops_after_its_passes(passes, best, trials):
    evaluate = lambda v: Score(100, 100, CORNER[v["a"], v["b"]])  # noqa: E731
    found, tried = coordinate_search({"a": 3.0, "b": 10.0}, KNOBS, evaluate, max_passes=passes)
    assert dict(found.settings) == best and len(tried) == trials


@pytest.mark.parametrize("slo, verdicts", [
    (Score(180, 180, 1100.0), ["PASS", "PASS", "PASS", "PASS"]),
    (Score(177, 180, 1100.0), ["MISS", "PASS", "PASS", "PASS"]),
    (Score(180, 180, 1300.0), ["PASS", "MISS", "PASS", "PASS"]),
    (Score(175, 180, 1100.0), ["MISS", "PASS", "MISS", "PASS"]),
    (Score(180, 180, 1500.0), ["PASS", "MISS", "MISS", "MISS"]),
], ids=["all-pass", "too-few-windows", "over-1.2x-oracle", "cheaper-than-hpa-but-fewer-windows",
        "dearer-than-both"])
def test_held_out_goals(slo, verdicts):
    scores = {"slo": slo, "oracle": Score(180, 180, 1000.0), "hpa": Score(176, 180, 1400.0),
              "kpa": Score(170, 180, 1350.0)}
    assert [g["verdict"] for g in held_out_goals(scores)] == verdicts


def test_held_out_goals_without_baselines_are_not_judged():
    goals = held_out_goals({"slo": Score(180, 180, 1.0)})
    assert [g["verdict"] for g in goals] == ["PASS", "n/a", "n/a"]


# --- the ConfigMap's values ------------------------------------------------------------------------------

def parse_env(text: str) -> dict[str, str]:
    """KEY=VALUE lines as kustomize's configMapGenerator reads them."""
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))


@pytest.mark.parametrize("tuned, words", [
    ({"target_utilization": 1.5}, "TARGET_UTILIZATION=1.5"),
    ({"scale_down_max_fraction": -0.1}, "SCALE_DOWN_MAX_FRACTION=-0.1"),
], ids=["utilisation-over-one", "negative-step"])
def test_env_values_refuse_what_the_autoscaler_refuses(tuned, words):
    with pytest.raises(ConfigError, match=words):
        env_values(load_config([], {}), tuned)


# --- the command line ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    """Five minutes: steady, then a step in the held-out half."""
    path = tmp_path_factory.mktemp("trace") / "trace.txt"
    path.write_text("# steady, then a step\n" + "40\n" * 200 + "120\n" * 40 + "40\n" * 60)
    return path


def run_tune(*argv, environ=None):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], environ=environ if environ is not None else {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("args, words", [
    (["--slo-ms", "450"], "--trace"),
    (["--trace", "{trace}"], "--slo-ms"),
    (["--trace", "{missing}", "--slo-ms", "450"], "--trace: "),
    (["--trace", "{trace}", "--slo-ms", "0"], "--slo-ms=0: expected a number > 0"),
    (["--trace", "{trace}", "--slo-ms", "450", "--tune-fraction", "1"], "--tune-fraction=1: expected a number in"),
    (["--trace", "{trace}", "--slo-ms", "450", "--warmup-s", "-1"], "--warmup-s=-1"),
    (["--trace", "{trace}", "--slo-ms", "450", "--warmup-s", "150"], "--tune-fraction=0.5 with --warmup-s=150"),
    (["--trace", "{trace}", "--slo-ms", "450", "--tune-fraction", "0.98"], "--tune-fraction=0.98"),
    (["--trace", "{trace}", "--slo-ms", "450", "--scale", "2", "--peak-replicas", "3"], "not allowed with --scale"),
    (["--trace", "{trace}", "--slo-ms", "450", "--max-replicas", "0"], "--max-replicas=0"),
    (["--trace", "{trace}", "--slo-ms", "450", "--out", "{trace}"], "is not a directory"),
    (["--trace", "{trace}", "--slo-ms", "450", "--start", "warm"], "--start"),
], ids=["no-trace", "no-slo", "missing-trace", "zero-slo", "fraction-one", "negative-warm-up",
        "warm-up-longer-than-the-tuned-part", "fraction-leaves-nothing-held-out", "scale-and-peak-replicas",
        "zero-max-replicas", "out-is-a-file", "unknown-start"])
def test_bad_input_exits_2_naming_the_flag(tmp_path, trace, capsys, args, words):
    files = {"trace": trace, "missing": tmp_path / "nope.txt"}
    code, out, err = run_tune(*[a.format(**files) for a in args])
    err += capsys.readouterr().err  # argparse's own messages (a missing flag) go to sys.stderr
    assert code == 2 and words in err, err
    assert "Traceback" not in err and out == ""


def test_python_m_sim_tune_dispatches(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sim", "tune", "--trace", str(tmp_path / "nope.txt"), "--slo-ms",
                             "450"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "python -m sim tune: error: --trace" in result.stderr, result.stderr


@pytest.mark.parametrize("args, start", [
    ([], "first-need"),
    (["--start", "first-need"], "first-need"),
    (["--start", "min"], "min"),
], ids=["default-joins-the-traffic-running", "first-need", "min-is-a-cold-start"])
def test_every_replay_starts_as_start_says(trace, args, start):
    """The held-out part starts mid-trace: by default with what its first seconds need, not one replica."""
    parsed = build_parser().parse_args(["--trace", str(trace), "--slo-ms", "450", "--scale", "5", *args])
    job = prepare(TuneOptions(**read_values(TuneOptions, {}, parsed)), {})
    assert job["plan"]["settings"].start == start
    assert ("--start" in job["argv"]) == (start != "min")   # the replay command it prints says so too


@pytest.fixture(scope="module")
def tuned(trace, tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned")
    code, stdout, err = run_tune("--trace", trace, "--slo-ms", "450", "--scale", "5", "--max-replicas", "8",
                                 "--warmup-s", "30", "--out", out)
    assert code == 0, err
    return out, stdout


def test_tune_writes_settings_the_autoscaler_loads(tuned):
    out, stdout = tuned
    text = (out / "autoscaler.env").read_text()
    env = parse_env(text)
    assert set(env) <= CONFIG_KEYS, f"not the autoscaler's variables: {set(env) - CONFIG_KEYS}"
    config = load_config([], env)
    for key, value in env.items():
        assert str(getattr(config, key.lower())).lower() in (value.lower(), f"{value}.0"), key
    report = json.loads((out / "tune.json").read_text())
    assert {k: env[k] for k in report["searches"]["slo"]["chosen"]} == {
        k: f"{v:g}" for k, v in report["searches"]["slo"]["chosen"].items()}
    assert config.policy == "slo" and config.max_replicas == 8 and config.slo_p95_ms == 450
    # What it prints is what it writes.
    assert text in stdout


def test_tune_reports_the_held_out_part_against_the_baselines(tuned):
    out, stdout = tuned
    report = json.loads((out / "tune.json").read_text())
    assert report["split_s"] == 150 and report["tuned_scored_s"] == [30, 150]
    assert report["held_out_scored_s"] == [150, 300]
    assert set(report["held_out"]) == {"slo", "slo-current", "hpa", "kpa", "oracle"}
    # 15 windows in [150, 300), every one with requests.
    assert {row["windows"] for row in report["held_out"].values()} == {15}
    for policy, search in report["searches"].items():
        best = search["trials"][search["best_trial"]]
        assert best["settings"] == search["chosen"] and best["margin"] == search["chosen_margin"], policy
        # Each trial's margin, from its own score and that of the same setting at the headroom's next value.
        headroom = next(iter(search["knobs"]))
        scores = {tuple(sorted(t["settings"].items())): Score(t["windows_met"], t["windows"], t["replica_seconds"])
                  for t in search["trials"]}
        for t in search["trials"]:
            later = [v for v in search["knobs"][headroom]["values"] if v > t["settings"][headroom] + 1e-9]
            step = {**t["settings"], headroom: min(later)} if later else None
            less = scores.get(tuple(sorted(step.items()))) if step else None
            assert t["margin"] is has_margin(scores[tuple(sorted(t["settings"].items()))], less), (policy, t)
    assert [g["verdict"] in ("PASS", "MISS") for g in report["goals"]] == [True] * 4
    for label in ("| slo, tuned |", "| hpa, tuned |", "| kpa, tuned |", "| oracle |"):
        assert label in stdout


def test_the_env_file_applies_as_the_capacity_probes_does(tuned, tmp_path):
    """k8s/kustomization.yaml merges k8s/autoscaler-measured.env into the ConfigMap: the tuned file in its place."""
    out, _ = tuned
    for part in ("k8s", "prometheus"):
        shutil.copytree(REPO / part, tmp_path / part)
    shutil.copy(out / "autoscaler.env", tmp_path / "k8s" / "autoscaler-measured.env")
    objects = kustomize_build(tmp_path / "k8s")
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "autoscaler-config")
    env = parse_env((out / "autoscaler.env").read_text())
    assert {k: config["data"][k] for k in env} == env
    assert config["data"]["PROMETHEUS_URL"]  # merged into the manifest's values, not replacing them
