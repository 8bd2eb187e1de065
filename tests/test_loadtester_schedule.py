"""The schedule is a pure function of (trace, seed, options) with the counts the trace asks for."""

from __future__ import annotations

import numpy as np
import pytest

from loadtester.schedule import build_schedule

RATES = [3.0, 0.0, 7.5, 12.0, 1.0, 0.5, 0.5, 20.0]


@pytest.mark.parametrize("arrivals", ["poisson", "uniform"])
def test_same_inputs_same_schedule(arrivals):
    a = build_schedule(RATES, seed=11, arrivals=arrivals)
    b = build_schedule(list(RATES), seed=11, arrivals=arrivals)
    np.testing.assert_array_equal(a.offsets_s, b.offsets_s)
    np.testing.assert_array_equal(a.trace_second, b.trace_second)


def test_seed_changes_poisson_schedule():
    a = build_schedule(RATES, seed=1)
    b = build_schedule(RATES, seed=2)
    assert len(a) != len(b) or not np.array_equal(a.offsets_s, b.offsets_s)


@pytest.mark.parametrize("arrivals", ["poisson", "uniform"])
def test_offsets_sorted_within_their_second(arrivals):
    s = build_schedule(RATES * 5, seed=3, arrivals=arrivals)
    assert np.all(np.diff(s.offsets_s) >= 0)
    np.testing.assert_array_equal(np.floor(s.offsets_s).astype(int), s.trace_second)
    assert s.duration_s == len(RATES) * 5


UNIFORM_COUNTS = [
    ("whole-numbers", [3, 0, 5], [3, 0, 5]),
    ("half-carries-over", [0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]),
    ("thirds", [1 / 3] * 6, [0, 0, 1, 0, 0, 1]),
    ("mixed", [2.5, 2.5, 0.25, 0.75], [2, 3, 0, 1]),
]


@pytest.mark.parametrize("rates, counts", [c[1:] for c in UNIFORM_COUNTS], ids=[c[0] for c in UNIFORM_COUNTS])
def test_uniform_counts_per_second_are_exact(rates, counts):
    s = build_schedule(rates, arrivals="uniform")
    assert np.bincount(s.trace_second, minlength=len(rates)).tolist() == counts


def test_uniform_is_evenly_spaced():
    s = build_schedule([4.0], arrivals="uniform")
    np.testing.assert_allclose(s.offsets_s, [0.0, 0.25, 0.5, 0.75])


def test_poisson_counts_match_in_expectation():
    rates = [5.0, 20.0, 0.0, 50.0]
    runs = np.array([np.bincount(build_schedule(rates, seed=seed).trace_second, minlength=4)
                     for seed in range(300)])
    mean = runs.mean(axis=0)
    # Standard error of a Poisson mean over 300 runs is sqrt(rate/300); 5 of them is a loose bound.
    for rate, observed in zip(rates, mean):
        assert abs(observed - rate) <= 5 * np.sqrt(max(rate, 1e-9) / 300) + 1e-9, (rate, observed)
    assert runs[:, 2].max() == 0


def test_poisson_gaps_are_exponential():
    s = build_schedule([100.0] * 100, seed=5)
    gaps = np.diff(s.offsets_s)
    # Exponential with mean 1/100 s: coefficient of variation 1 (uniform spacing would give ~0).
    assert gaps.mean() == pytest.approx(0.01, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.1)


OPTIONS = [
    # id, kwargs, expected count, expected duration_s
    ("scale-doubles", {"scale": 2.0}, 2 * 40, 4.0),
    ("scale-halves", {"scale": 0.5}, 20, 4.0),
    ("speedup-compresses", {"speedup": 4.0}, 40, 1.0),
    ("duration-cuts", {"duration_s": 2.0}, 20, 2.0),
    ("duration-after-speedup", {"speedup": 2.0, "duration_s": 1.0}, 20, 1.0),
    ("duration-longer-than-trace", {"duration_s": 100.0}, 40, 4.0),
]


@pytest.mark.parametrize("kwargs, count, duration_s", [o[1:] for o in OPTIONS], ids=[o[0] for o in OPTIONS])
def test_scale_speedup_duration(kwargs, count, duration_s):
    s = build_schedule([10.0] * 4, arrivals="uniform", **kwargs)
    assert len(s) == count
    assert s.duration_s == duration_s
    assert s.offsets_s.max() < duration_s


def test_speedup_only_rescales_time():
    base = build_schedule(RATES, seed=9)
    fast = build_schedule(RATES, seed=9, speedup=3.0)
    np.testing.assert_allclose(fast.offsets_s * 3.0, base.offsets_s)
    np.testing.assert_array_equal(fast.trace_second, base.trace_second)


def test_uniform_arrivals_fall_in_their_trace_second():
    s = build_schedule([2.0, 0.0, 3.0], arrivals="uniform")
    assert np.bincount(s.offsets_s.astype(np.int64), minlength=3).tolist() == [2, 0, 3]
