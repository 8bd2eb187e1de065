"""Profiles: fitted to the capacity probe's measurement so the simulated replica saturates and idles as it did."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from loadtester.capacity_report import CapacityReport, Step
from sim.profile import Profile, ProfileError, default_profile
from sim.profile_sources import from_capacity_report, light_steps, load_profile, replay_step
from sim.replica import OK, PENDING, Replica

REPORT = CapacityReport(
    url="http://127.0.0.1:8000/predict", replicas=1, saturation_rps=57.2, saturation_concurrency=16,
    unloaded_p50_ms=26.7, unloaded_p95_ms=29.5, model_ms_at_saturation=123.9, max_batch_size=8,
    steps=[Step(16.3, 16.3, 65, 0, 30.4, 59.8, 66.9, 36.5), Step(41.5, 41.5, 166, 0, 62.0, 124.9, 145.3, 66.4),
           Step(53.5, 53.5, 214, 0, 78.8, 157.8, 177.8, 85.0), Step(63.8, 63.5, 255, 1, 203.8, 442.2, 469.3, 219.3)],
    sweep=[(1, 36.0, 0), (16, 57.2, 0)], load_generator_cpu=0.04, duration_s=50.3, startup_s=3.31,
    info={"max_batch_size": 8, "max_batch_delay_ms": 2.0, "max_queue": 24, "request_timeout_s": 10.0})


@pytest.mark.parametrize("kind", ["probe-json", "calibration-cache"])
def test_a_probe_measurement_loads_and_keeps_its_figures(tmp_path, kind):
    path = tmp_path / "m.json"
    data = REPORT.as_dict(450.0)
    if kind == "calibration-cache":
        data = {"measured_at": "2026-12-01 12:41:42 UTC", "machine": {}, "report": REPORT.as_dict()}
    path.write_text(json.dumps(data))
    profile = load_profile(path)
    # A full batch takes the forward measured at saturation (not 8 / the closed loop's 57.2 req/s).
    assert profile.model_s(8) * 1000 == pytest.approx(123.9, abs=1e-3)
    assert profile.saturation_rps == pytest.approx(8 / 0.1239, rel=1e-3)
    # One image: the closed loop's unloaded latency less preprocess, the default overhead and the delay.
    assert profile.model_s(1) * 1000 == pytest.approx(26.7 - 1.5 - 0.5 - 2.0, abs=1e-3)
    assert profile.startup_s == 3.31 and profile.queue_limit == 24 and profile.max_batch_size == 8
    # The autoscaler's figures as planning/sizing.py derives them from the same measurement.
    assert profile.slo_ms == 450.0
    assert profile.capacity_within_slo_rps == REPORT.recommendations(450.0)["capacity_rps_per_replica"]


def test_without_the_overhead_fit_the_fitted_replica_is_as_fast_unloaded_as_the_probe_measured():
    profile = from_capacity_report(REPORT, "test", fit_overhead=False)

    class Sink:
        latency_s = np.full(1, np.nan)
        code = np.full(1, PENDING)

        def record(self, ids, codes, latency_s, replica_id):
            self.latency_s[ids], self.code[ids] = latency_s, codes

    sink = Sink()
    replica = Replica(0, profile, 0.0, sink)
    replica.add_arrivals(np.array([1.0]), np.array([0]))
    replica.advance(5.0)
    assert sink.code[0] == OK and sink.latency_s[0] * 1000 == pytest.approx(26.7)


def test_a_sim_profile_round_trips(tmp_path):
    profile = replace(default_profile(), startup_s=9.0, queue_limit=100)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(profile.as_dict()))
    loaded = load_profile(path)
    assert replace(loaded, source=profile.source) == profile


def test_the_default_profile_is_the_documented_machine():
    p = default_profile()
    assert p.saturation_rps == pytest.approx(60.0, rel=1e-3)
    assert p.model_s(1) == pytest.approx(0.025) and p.unloaded_ms == pytest.approx(27.0)   # no batching wait
    assert p.capacity_within_slo_rps == pytest.approx(0.9 * p.saturation_rps, rel=1e-3)


@pytest.mark.parametrize("text, words", [
    ("[1, 2]", "expected a JSON object"),
    ('{"format": "sim-profile", "queue_limit": 4}', "queue_limit=4 must be >= max_batch_size"),
    ('{"format": "sim-profile", "startup_s": "slow"}', "startup_s='slow' must be a number"),
    ('{"saturation_rps": 50, "steps": "x"}', "not a usable profile"),
], ids=["not-an-object", "queue-below-a-batch", "not-a-number", "broken-report"])
def test_bad_profiles_name_the_problem(tmp_path, text, words):
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert words in str(exc.value) and str(path) in str(exc.value)


def test_start_up_draws_are_seeded_and_include_the_pod_overhead():
    p = replace(default_profile(), startup_s=3.0, startup_sigma=0.2, pod_overhead_s=2.0)
    a = p.startup_draws_s(np.random.default_rng(5), 1000)
    b = p.startup_draws_s(np.random.default_rng(5), 1000)
    np.testing.assert_array_equal(a, b)
    assert a.min() > 2.0 and np.median(a) == pytest.approx(5.0, abs=0.1)
    assert (a < p.startup_bound_s()).mean() == pytest.approx(0.99, abs=0.01)
    assert isinstance(Profile().startup_bound_s(), float)


@pytest.mark.parametrize("model_ms, saturation_rps, full_ms", [
    (123.9, 57.2, 123.9),          # the forward at saturation, though 8 / 57.2 req/s is 139.9 ms
    (100.0, 57.2, 100.0),          # a forward far shorter than the closed loop's cycle is still the batch
    (150.0, 57.2, 150.0),          # ... and a longer one
    (None, 57.2, 8000 / 57.2),     # no Server-Timing: only the closed loop's cycle is known
    (None, 50.0, 160.0),
], ids=["forward", "short-forward", "long-forward", "no-server-timing", "no-server-timing-slow"])
def test_a_full_batch_takes_the_forward_measured_at_saturation(model_ms, saturation_rps, full_ms):
    report = replace(REPORT, model_ms_at_saturation=model_ms, saturation_rps=saturation_rps)
    profile = from_capacity_report(report, "test", fit_overhead=False)
    assert profile.model_s(8) * 1000 == pytest.approx(full_ms, abs=1e-3)
    assert profile.model_s(1) * 1000 == pytest.approx(26.7 - 1.5 - 0.5 - 2.0, abs=1e-3)


def test_the_overhead_closes_the_gap_to_the_light_open_loop_steps():
    fitted = from_capacity_report(REPORT, "test")
    bare = from_capacity_report(REPORT, "test", fit_overhead=False)
    light = light_steps(REPORT)
    # 85% of 57.2 req/s is 48.6: the steps at 16.3 and 41.5 req/s, not those at 53.5 and 63.8.
    assert [k for k, _ in light] == [0, 1]
    gaps = [s.mean_ms - replay_step(bare, REPORT, (k, s))["mean_ms"] for k, s in light]
    assert fitted.overhead_ms == pytest.approx(0.5 + np.mean(gaps), abs=1e-3)
    # The overhead moves every latency and no batch: after the fit the light steps' mean gap is zero.
    after = [s.mean_ms - replay_step(fitted, REPORT, (k, s))["mean_ms"] for k, s in light]
    assert np.mean(after) == pytest.approx(0.0, abs=2e-3)
    assert fitted.model_s(1) == bare.model_s(1) and fitted.model_s(8) == bare.model_s(8)


@pytest.mark.parametrize("steps, overhead_ms", [
    ([Step(63.8, 63.5, 255, 1, 203.8, 442.2, 469.3, 219.3)], 0.5),   # only a saturated step
    ([Step(16.3, 16.3, 10, 0, 30.4, 59.8, 66.9, 36.5)], 0.5),        # too few requests to trust
    ([Step(16.3, 16.3, 65, 0, 10.0, 12.0, 13.0, 10.0)], 0.0),        # faster than the replica: never below 0
], ids=["only-saturated", "too-few-requests", "faster-than-the-replica"])
def test_the_overhead_fit_keeps_the_default_without_a_usable_light_step(steps, overhead_ms):
    profile = from_capacity_report(replace(REPORT, steps=steps), "test")
    assert profile.overhead_ms == pytest.approx(overhead_ms)


CALIBRATION = Path(__file__).parent / "fixtures" / "sim-calibration" / "capacity-38f8d2e5cbe8886c.json"


def test_the_fitted_replica_replays_the_probe_s_own_latency_curve():
    """Every open-loop step of the recorded calibration (2026-12-01, 2-core Zen 5), with the probe's own arrivals,
    through the profile fitted to it: p95 within 13% (-10% to +12%) and the mean within 6% of what the probe
    measured (the earlier fit, a full batch of 8 / saturation and a 0.5 ms overhead, was +5% to +45% on p95)."""
    data = json.loads(CALIBRATION.read_text())
    report = CapacityReport.from_dict(data["report"])
    profile = load_profile(CALIBRATION)
    assert profile.model_s(8) * 1000 == pytest.approx(121.63, abs=0.01)
    assert 3.0 < profile.overhead_ms < 5.0
    for k, step in enumerate(report.steps):
        sim = replay_step(profile, report, (k, step))
        assert sim["p95_ms"] == pytest.approx(step.p95_ms, rel=0.13), step
        assert sim["mean_ms"] == pytest.approx(step.mean_ms, rel=0.06), step
