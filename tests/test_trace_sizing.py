"""Sizing a trace for a cluster (loadtester/trace_sizing.py): the simulator's --peak-replicas and the load
tester's --peak-replicas/--capacity-rps and --peak-rps choose one scale, the load tester says which, and its
options refuse every ambiguous combination; the load tester's replica-seconds (loadtester/replica_seconds.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from loadtester import OptionError, Options
from loadtester.report import format_summary
from loadtester.replica_seconds import replica_cost
from loadtester.runner import trace_scale
from loadtester.schedule import build_schedule
from loadtester.trace_sizing import PEAK_MARGIN, choose_scale, peak_rate_rps, replicas_for_peak
from support import PYTHON, REPO, start_stub_server

# 60 quiet seconds, a 60 s plateau at 20 req/s with one noisy second of 200, 60 quiet seconds.
RATES = [2.0] * 60 + [20.0] * 30 + [200.0] + [20.0] * 29 + [2.0] * 60
PLATEAU_MEAN = (20.0 * 59 + 200.0) / 60   # the highest 60 s mean: the plateau, its noisy second included
SPEEDUP_2_PEAK = 2 * (20.0 * 59 + 200.0 + 2.0 * 60) / 120


@pytest.mark.parametrize("given,speedup,expected_scale", [
    ({}, 1.0, 1.0),
    ({"scale": 2.5}, 1.0, 2.5),
    ({"peak_rps": 46.0}, 1.0, round(46.0 / PLATEAU_MEAN, 6)),
    ({"peak_replicas": 3, "capacity_rps": 20.0}, 1.0, round((3 - PEAK_MARGIN) * 20.0 / PLATEAU_MEAN, 6)),
    # Twice as fast: 60 s of replay hold 120 s of the trace (the plateau and 60 quiet seconds), twice as often.
    ({"peak_rps": 46.0}, 2.0, round(46.0 / SPEEDUP_2_PEAK, 6)),
], ids=["default-1", "scale-as-given", "peak-rps", "peak-replicas", "peak-rps-after-speedup"])
def test_the_scale_puts_the_peak_where_asked(given, speedup, expected_scale):
    sized = choose_scale(RATES, speedup, **given)
    assert sized.scale == pytest.approx(expected_scale, rel=1e-6)
    assert sized.peak_rps == pytest.approx(PLATEAU_MEAN if speedup == 1 else SPEEDUP_2_PEAK)
    if "peak_rps" in given:
        assert sized.scaled_peak_rps == pytest.approx(given["peak_rps"], rel=1e-5)
    if "peak_replicas" in given:
        assert replicas_for_peak(sized.scaled_peak_rps, given["capacity_rps"]) == given["peak_replicas"]


def test_the_peak_is_a_window_mean_not_a_noisy_second():
    assert peak_rate_rps(RATES) == pytest.approx(PLATEAU_MEAN)
    assert max(RATES) == 200.0


def test_the_simulator_and_the_load_tester_scale_a_trace_alike(tmp_path):
    """`python -m sim --peak-replicas 3 --profile P` and `load_tester.py --peak-replicas 3 --capacity-rps C`
    with P's within-SLO capacity C replay the same schedule."""
    from sim.cli import prepare, read_options
    from sim.profile import PROFILE_FORMAT

    trace = tmp_path / "trace.txt"
    trace.write_text("".join(f"{r:g}\n" for r in RATES))
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"format": PROFILE_FORMAT, "capacity_within_slo_rps": 17.5}))
    plan = prepare(read_options(["--trace", str(trace), "--peak-replicas", "3", "--profile", str(profile),
                                 "--out", str(tmp_path / "sim")]), environ={})
    options = Options(trace=trace, peak_replicas=3, capacity_rps=17.5).validate()
    sized = trace_scale(options, RATES)
    assert sized.scale == plan["scale"]
    assert sized.scaled_peak_rps == pytest.approx(plan["trace"]["scaled_peak_rps"], abs=1e-4)
    ours = build_schedule(RATES, seed=0, scale=sized.scale)
    assert (ours.offsets_s == plan["schedule"].offsets_s).all()


@pytest.mark.parametrize("given,key,words", [
    ({"scale": 2, "peak_rps": 40}, "--peak-rps", "--peak-rps=40: expected no --scale with it"),
    ({"scale": 2, "peak_replicas": 3, "capacity_rps": 20}, "--peak-replicas",
     "--peak-replicas=3: expected no --scale with it"),
    ({"peak_replicas": 3, "capacity_rps": 20, "peak_rps": 40}, "--peak-rps",
     "--peak-rps=40: expected no --peak-replicas with it"),
    ({"peak_replicas": 3}, "--peak-replicas", "--peak-replicas=3: expected --capacity-rps R too"),
    ({"capacity_rps": 20}, "--capacity-rps", "--capacity-rps=20: expected --peak-replicas N too"),
    ({"peak_replicas": 0, "capacity_rps": 20}, "--peak-replicas", "--peak-replicas=0: expected an integer in 1..10000"),
    ({"peak_rps": -5}, "--peak-rps", "--peak-rps=-5: expected a number in >0..1000000 req/s"),
    ({"peak_replicas": 2, "capacity_rps": 0}, "--capacity-rps", "--capacity-rps=0: expected a number in >0..1000000"),
], ids=["scale-and-peak-rps", "scale-and-peak-replicas", "both-peaks", "replicas-without-capacity",
        "capacity-without-replicas", "zero-replicas", "negative-peak", "zero-capacity"])
def test_ambiguous_or_bad_sizing_is_refused_naming_the_option(given, key, words):
    with pytest.raises(OptionError) as err:
        Options(**given).validate()
    assert err.value.key == key
    assert str(err.value).startswith(words), str(err.value)


@pytest.mark.parametrize("given,key", [
    ({"peak_rps": 1e6}, "--peak-rps"),                          # a scale of ~37,000: over --scale's 1000
    ({"peak_replicas": 10000, "capacity_rps": 1e6}, "--peak-replicas"),
], ids=["peak-rps-too-high", "peak-replicas-too-high"])
def test_a_chosen_scale_outside_scales_range_is_refused(given, key):
    with pytest.raises(OptionError) as err:
        trace_scale(Options(**given).validate(), RATES)
    assert err.value.key == key and "expected a value giving a scale in >0..1000" in str(err.value)


def test_the_load_tester_prints_and_records_the_scale_it_chose(tmp_path):
    stub = start_stub_server(tmp_path, delay_ms=5)
    trace = tmp_path / "trace.txt"
    trace.write_text("1\n2\n4\n2\n")
    try:
        proc = subprocess.run([PYTHON, "loadtester/load_tester.py", "--url", stub.extra["url"], "--trace", str(trace),
                               "--peak-replicas", "2", "--capacity-rps", "10", "--arrivals", "uniform",
                               "--no-progress", "--out", str(tmp_path / "out")],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        stub.stop()
    assert proc.returncode == 0, proc.stderr
    # The peak over a 60 s window of a 4 s trace is its mean, 2.25 req/s; (2 - 0.5) x 10 = 15 req/s.
    scale = round(15 / 2.25, 6)
    assert f"trace scale {scale:g} (--peak-replicas 2 at 10 req/s each" in proc.stderr
    assert "replayed at 15.00 req/s" in proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["trace_scale"]["scale"] == scale
    assert summary["run"]["parameters"]["peak_replicas"] == 2 and summary["run"]["parameters"]["scale"] is None
    assert summary["requests"]["scheduled"] == int(sum([1, 2, 4, 2]) * scale)
    assert summary["cost"] is None, "no --prometheus: no replica series, no cost"


@pytest.mark.parametrize("series,duration_s,expected", [
    ({}, 10.0, None),
    ({"desired_replicas": [[0, 3]]}, 10.0, None),                       # only the workers cost
    ({"workers": [[0, 2]]}, 10.0, {"replica_seconds": 20.0, "mean_replicas": 2.0}),
    ({"workers": [[0, 1], [4, 3], [6, 1]]}, 10.0, {"replica_seconds": 14.0, "mean_replicas": 1.4}),
    ({"workers": [[2, 2]]}, 10.0, {"replica_seconds": 20.0, "mean_replicas": 2.0}),   # held before the first
    ({"workers": [[0, 1], [8, 5], [12, 1]]}, 10.0, {"replica_seconds": 18.0, "mean_replicas": 1.8}),  # cut at the end
], ids=["no-series", "no-workers", "constant", "up-and-down", "first-sample-late", "past-the-end"])
def test_replica_seconds_integrate_the_workers_series(series, duration_s, expected):
    cost = replica_cost(series, duration_s)
    if expected is None:
        assert cost is None
    else:
        assert cost == {**expected, "series": "workers"}


def test_the_console_table_shows_the_replica_seconds():
    summary = {"requests": {"scheduled": 1, "sent": 1, "ok": 1, "errors": {}},
               "throughput": {"duration_s": 10.0, "offered_rps": 0.1, "achieved_rps": 0.1},
               "latency_ms": {k: 5.0 for k in ("p50", "p90", "p95", "p99", "max")},
               "slo": {"slo_ms": 500, "window_attainment": 1.0, "windows_met": 1, "windows": 1, "window_s": 10,
                       "request_attainment": 1.0, "requests_under_slo": 1},
               "sender_lag_ms": {"p99": 0.1, "max": 0.1, "late_sends": 0, "late_threshold_ms": 10}}
    assert "replica-seconds" not in format_summary(summary)
    summary["cost"] = replica_cost({"workers": [[0, 1], [4, 3], [6, 1]]}, 10.0)
    assert "replica-seconds       14 (mean 1.40 workers over the run, from Prometheus)" in format_summary(summary)
