"""Profiles: fitted to the capacity probe's measurement so the simulated replica saturates and idles as it did."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from loadtester.capacity_report import CapacityReport, Step
from sim.profile import Profile, ProfileError, default_profile, from_capacity_report, load_profile
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
    assert profile.saturation_rps == pytest.approx(57.2, rel=1e-3)      # a full batch per 8 / saturation
    assert profile.unloaded_ms == pytest.approx(26.7, rel=1e-3)
    assert profile.startup_s == 3.31 and profile.queue_limit == 24 and profile.max_batch_size == 8
    # The autoscaler's figures as local/sizing.py derives them from the same measurement.
    assert profile.slo_ms == 450.0
    assert profile.capacity_within_slo_rps == REPORT.recommendations(450.0)["capacity_rps_per_replica"]


def test_the_fitted_replica_is_as_fast_unloaded_as_the_probe_measured():
    profile = from_capacity_report(REPORT, "test")

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
    assert p.model_s(1) == pytest.approx(0.025) and p.unloaded_ms == pytest.approx(29.0)
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
