"""The local stack's sizing as a pure function of one measured worker: every value follows from the
measurement (here a hand-made one), so a faster or slower machine changes the numbers, not the behaviour."""

from __future__ import annotations

import math

import pytest

from autoscaler.config import Config, load_config
from loadtester.capacity_report import CapacityReport, Step
from planning.sizing import PEAK_UTILIZATION, QUICK_PEAK_OF_SATURATION, derive, timings_for


def measured(saturation: float, batch_ms: float, unloaded_ms: float = 20.0, startup_s: float = 3.0) -> CapacityReport:
    """A probe result whose latency curve crosses 400 ms at 80% of saturation."""
    steps = [Step(f * saturation, f * saturation, 100, 0, 50, p95, p95 * 1.1, 40 + 200 * f)
             for f, p95 in ((0.3, 100.0), (0.5, 150.0), (0.65, 250.0), (0.8, 400.0), (0.9, 800.0), (1.0, 2000.0))]
    return CapacityReport(url="http://x/predict", replicas=1, saturation_rps=saturation, saturation_concurrency=16,
                          unloaded_p50_ms=unloaded_ms, unloaded_p95_ms=unloaded_ms, model_ms_at_saturation=batch_ms,
                          max_batch_size=8, steps=steps, sweep=[], load_generator_cpu=0.05, duration_s=40,
                          startup_s=startup_s)


@pytest.mark.parametrize("saturation, batch_ms, unloaded_ms, expected_slo", [
    (22.0, 320.0, 57.0, 1150),   # the Zen 3 machine the old constants came from (1000 ms then): 8 / 22 req/s
    (60.0, 140.0, 30.0, 450),    # a Zen 5: the model's time is the longer
    (600.0, 13.0, 3.0, 50),      # a fast backend: never below one rounding step
    (46.0, 40.0, 30.0, 600),     # decoding shares a CPU quota: batches stay small, a batch's worth takes 174 ms
], ids=["zen3", "zen5", "ten-times-faster", "cpu-bound-outside-the-model"])
def test_the_slo_is_three_full_batches_plus_the_unloaded_latency(saturation, batch_ms, unloaded_ms, expected_slo):
    sizing = derive(measured(saturation, batch_ms, unloaded_ms), quick=False, max_replicas=2)
    assert sizing.slo_ms == expected_slo


@pytest.mark.parametrize("saturation", [10.0, 60.0, 500.0], ids=["slow", "fast", "very-fast"])
def test_capacity_estimates_scale_with_the_machine(saturation):
    sizing = derive(measured(saturation, 8000 / saturation), quick=False, max_replicas=2, slo_ms=400)
    # The curve reaches 400 ms at 80% of saturation; Little's law at that rate.
    assert sizing.capacity_within_slo_rps == pytest.approx(0.8 * saturation, rel=1e-3)
    assert sizing.target_inflight_per_replica == pytest.approx(0.8 * saturation * (40 + 160) / 1000, rel=1e-2)
    assert sizing.worker_capacity_rps == saturation


@pytest.mark.parametrize("quick, max_replicas, peak_of_saturation", [
    (False, 2, (2 - 0.5) * PEAK_UTILIZATION),
    (False, 7, (7 - 0.5) * PEAK_UTILIZATION),
    (True, 2, QUICK_PEAK_OF_SATURATION),
    (True, 7, QUICK_PEAK_OF_SATURATION),
], ids=["full-2-cores", "full-8-cores", "quick-2-cores", "quick-8-cores"])
def test_the_trace_peak_needs_the_top_of_the_range(quick, max_replicas, peak_of_saturation):
    sizing = derive(measured(60.0, 133.0), quick=quick, max_replicas=max_replicas)
    assert sizing.peak_rps == pytest.approx(peak_of_saturation * 60.0, rel=1e-3)
    needed = math.ceil(sizing.peak_rps / (PEAK_UTILIZATION * sizing.worker_capacity_rps))
    assert needed == (2 if quick else max_replicas)
    # The slo policy at its default plans for more than one worker at the peak, so every run scales up ...
    planned = Config().target_utilization * sizing.capacity_within_slo_rps
    assert sizing.peak_rps > planned
    # ... and one worker carries the quiet phases (wl.txt's 2 req/s of a 32.6 req/s peak).
    assert sizing.peak_rps * 2.0 / 32.6 < PEAK_UTILIZATION * sizing.worker_capacity_rps
    assert sizing.scale_for(32.6) == pytest.approx(sizing.peak_rps / 32.6, abs=1e-4)


def test_explicit_values_win_over_derived_ones():
    sizing = derive(measured(60.0, 133.0), quick=False, max_replicas=2, slo_ms=300, max_queue=40)
    assert (sizing.slo_ms, sizing.max_queue) == (300, 40)
    assert sizing.scale_for(32.6, trace_scale=0.5) == 0.5
    assert ("SLO p95", "300 ms", "given by --slo-ms") in sizing.derivation


def test_a_given_worker_capacity_skips_the_probe_and_says_what_it_assumed():
    sizing = derive(None, quick=True, max_replicas=2, worker_capacity_rps=25.0)
    assert sizing.source == "--worker-capacity-rps" and sizing.probe is None
    assert sizing.capacity_within_slo_rps == pytest.approx(0.75 * 25.0)
    assert any("assumed" in how for _, _, how in sizing.derivation)


@pytest.mark.parametrize("startup_s, quick, horizon_s", [
    (3.3, True, 4.1), (1.0, True, 3), (30.0, True, 15), (4.0, False, 8.0), (1.0, False, 4), (60.0, False, 30),
], ids=["quick-measured", "quick-floor", "quick-cap", "full-measured", "full-floor", "full-cap"])
def test_the_forecast_looks_one_or_two_start_ups_ahead(startup_s, quick, horizon_s):
    assert timings_for(quick, startup_s).forecast_horizon_s == horizon_s


@pytest.mark.parametrize("quick, rise_s, confirm_s", [(True, 4, 3), (False, 8, 6)], ids=["quick", "full"])
def test_the_windows_are_a_valid_autoscaler_configuration_in_polls_as_the_defaults(quick, rise_s, confirm_s):
    timings = timings_for(quick, 2.0)
    config = load_config([], {**timings.autoscaler_env(), "POLICY": "slo"})
    assert config.rise_window_s == rise_s == 4 * config.poll_interval_s
    assert config.forecast_confirm_s == confirm_s == 3 * config.poll_interval_s


def test_the_queue_holds_seconds_of_one_workers_work():
    sizing = derive(measured(60.0, 133.0, startup_s=1.0), quick=False, max_replicas=2)
    assert sizing.max_queue == 180          # 3 s at 60 req/s
    slow_start = derive(measured(60.0, 133.0, startup_s=4.0), quick=False, max_replicas=2)
    assert slow_start.max_queue == 360      # 1.5 start-ups
