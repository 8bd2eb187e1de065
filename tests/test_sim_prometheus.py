"""The simulator's Prometheus (sim/prometheus.py), one hand-computed case per edge of Prometheus 2.42's
semantics. Window 30 s (the default RATE_WINDOW_S), scrapes every 5 s unless a case says otherwise.

The same arithmetic against a real Prometheus is in test_sim_prometheus_real.py.
"""

from __future__ import annotations

import math

import pytest

from autoscaler.config import Config
from autoscaler.outcomes import Outcome, QueryResult
from sim.prometheus import PromEmulator, UnsupportedQueryError
from sim.scrape import LE_BOUNDS_S, TargetSample, le_counts
from sim.promql_functions import bucket_quantile

CONFIG = Config()
QUERY = {name: CONFIG.query("query_" + name)
         for name in ("rate_rps", "p95_s", "inflight", "queue", "cpu_cores", "age_s")}
EVERY_5S_TO_30 = tuple(range(0, 35, 5))
EMPTY = QueryResult(Outcome.EMPTY)


def sample(requests: float = 0.0, latencies_s: tuple[float, ...] = (), inflight: float = 0.0, queue: float = 0.0,
           cpu_s: float = 0.0) -> TargetSample:
    buckets = le_counts(latencies_s)
    return TargetSample(requests_total=requests, latency_bucket_counts=buckets, latency_sum_s=sum(latencies_s),
                        latency_count=buckets[-1], inflight=inflight, queue_depth=queue, cpu_seconds_total=cpu_s)


def series(times_s, **columns) -> dict[float, TargetSample]:
    """One target's samples: `columns` are sample() arguments, one value per time."""
    return {t: sample(**{name: values[i] for name, values in columns.items()}) for i, t in enumerate(times_s)}


def emulator(targets: dict[str, dict[float, TargetSample]], config: Config = CONFIG) -> PromEmulator:
    """Every target's samples scraped in time order; a target missing at a scrape time is gone then."""
    prom = PromEmulator(scrape_interval_s=5, window_s=config.rate_window_s, config=config)
    for t in sorted({t for samples in targets.values() for t in samples}):
        prom.scrape(t, {name: samples[t] for name, samples in targets.items() if t in samples})
    return prom


def same(got: float | None, expected: float | None) -> bool:
    """None (no series) only as None, NaN only as NaN, numbers to 12 digits."""
    if expected is None or got is None:
        return got is expected
    if math.isnan(expected):
        return math.isnan(got)
    return got == pytest.approx(expected, rel=1e-12)


def linear(times_s, start: float = 100.0, per_s: float = 2.0) -> list[float]:
    return [start + per_s * t for t in times_s]


# --- rate() -------------------------------------------------------------------------------------------
RATE_CASES = [
    # Samples 0..30 are all in [0, 30]; no increase in the first interval, 50 in all. A left-open window
    # (0, 30] (Prometheus 3) would see 5..30 and extrapolate 5 s back: 50 * 30/25 / 30 = 2.0.
    pytest.param({"a": series(EVERY_5S_TO_30, requests=[100, 100, 110, 120, 130, 140, 150])}, 30, 50 / 30,
                 id="sample-at-window-start-is-in-2.42-closed-range"),
    # Window [2, 32] holds 5..30 (increase 50 over 25 s): 3 s and 2 s to the edges, both < 1.1 x 5 s, so
    # extrapolated in full: 50 * (25 + 3 + 2) / 25 / 30.
    pytest.param({"a": series(EVERY_5S_TO_30, requests=linear(EVERY_5S_TO_30))}, 32, 50 * 30 / 25 / 30,
                 id="extrapolated-to-both-window-edges"),
    # Samples 0..25, no scrape at 30. At 30.4: window [0.4, 30.4] holds 5..25 (40 over 20 s), 4.6 s to the
    # start, 5.4 s to the end: 5.4 < 5.5 = 1.1 x the 5 s average, so in full: 40 * 30 / 20 / 30.
    pytest.param({"a": series(range(0, 30, 5), requests=linear(range(0, 30, 5)))}, 30.4, 40 * 30 / 20 / 30,
                 id="end-gap-under-1.1-average-intervals-extrapolated"),
    # At 30.6: 4.4 s to the start, 5.6 s >= 5.5 s to the end: the series ended, only half an interval.
    pytest.param({"a": series(range(0, 30, 5), requests=linear(range(0, 30, 5)))}, 30.6,
                 40 * (20 + 4.4 + 2.5) / 20 / 30, id="end-gap-over-1.1-average-intervals-half-interval"),
    # Appears at 15 with 100 requests: 15 s to the start is over 5.5 s, and the zero point (15 * 100/30 =
    # 50 s back) is farther still: half an interval. 30 * (15 + 2.5) / 15 / 30.
    pytest.param({"a": series((15, 20, 25, 30), requests=[100, 110, 120, 130])}, 30, 17.5 / 15,
                 id="starts-inside-window-half-interval"),
    # Appears at 15 with 2 requests: the counter was 0 only 15 * 2/30 = 1 s before: 30 * (15 + 1) / 15 / 30.
    pytest.param({"a": series((15, 20, 25, 30), requests=[2, 12, 22, 32])}, 30, 16 / 15,
                 id="starts-inside-window-zero-point-clamp"),
    # Zero point 15 * 8/30 = 4 s back: 2.42 clamps first (15 -> 4 s), then 4 s < 5.5 s is extrapolated in
    # full: 30 * 19 / 15 / 30. Prometheus >= 2.5x applies the 1.1 rule first (2.5 s) and would give 17.5/15.
    pytest.param({"a": series((15, 20, 25, 30), requests=[8, 18, 28, 38])}, 30, 19 / 15,
                 id="zero-point-clamp-before-threshold-2.42-order"),
    # Restart at 15: 100, 110, 120, then 5, 15, 25, 35. Increase 35 - 100 + 120 = 55 over the full window.
    pytest.param({"a": series(EVERY_5S_TO_30, requests=[100, 110, 120, 5, 15, 25, 35])}, 30, 55 / 30,
                 id="counter-reset"),
    # b is gone from the scrape at 20 (stale there) but its samples 0..15 stay in the window: b ends
    # 15 s before the end (half an interval): 30 * 17.5 / 15 / 30; a is 2/s.
    pytest.param({"a": series(EVERY_5S_TO_30, requests=linear(EVERY_5S_TO_30)),
                  "b": series((0, 5, 10, 15), requests=[100, 110, 120, 130])}, 30, 2.0 + 17.5 / 15,
                 id="target-disappears-mid-window"),
    pytest.param({"a": series((30,), requests=[100])}, 30, None, id="single-sample-no-rate"),
]


@pytest.mark.parametrize("targets, at_s, expected", RATE_CASES)
def test_rate(targets, at_s, expected):
    assert same(emulator(targets).value(QUERY["rate_rps"], at_s), expected)


def test_cpu_cores_is_the_rate_of_the_cpu_counter():
    # 0.5 CPU-s per second on a, 0.25 on b: the cpu query reads its own counter, not the requests one.
    prom = emulator({"a": series(EVERY_5S_TO_30, cpu_s=[0.5 * t for t in EVERY_5S_TO_30], requests=[0] * 7),
                     "b": series(EVERY_5S_TO_30, cpu_s=[10 + 0.25 * t for t in EVERY_5S_TO_30], requests=[0] * 7)})
    assert prom.value(QUERY["cpu_cores"], 30) == pytest.approx(0.75, rel=1e-12)
    assert prom.value(QUERY["rate_rps"], 30) == 0.0


# --- histogram_quantile(0.95, sum by (le) (rate(...))) ---------------------------------------------------
def histogram(*latencies_s: float) -> dict[str, dict[float, TargetSample]]:
    """One target: nothing observed at 0, `latencies_s` observed by 30 (rate scales every bucket alike)."""
    return {"a": {0: sample(), 30: sample(requests=len(latencies_s), latencies_s=latencies_s)}}


P95_CASES = [
    # 90 in le=0.05, 10 in le=0.3: rank 95 is 5 of the 10 in (0.25, 0.3]: 0.25 + 0.05 * 5/10.
    pytest.param(histogram(*[0.04] * 90, *[0.28] * 10), 0.275, id="interpolated-inside-a-bucket"),
    # All in the lowest bucket (0, 0.005]: interpolated from 0, 0.005 * 95/100.
    pytest.param(histogram(*[0.001] * 100), 0.005 * 0.95, id="lowest-bucket-interpolates-from-0"),
    # Rank 95 falls among the 10 slower than 10 s: the +Inf bucket has nothing to interpolate towards, so
    # Prometheus answers its highest finite bound, 10 s (not +Inf).
    pytest.param(histogram(*[0.04] * 90, *[20.0] * 10), 10.0, id="in-the-+Inf-bucket-highest-finite-bound"),
    # Two targets add up per le before the quantile: 50 fast on a, 50 at 0.7 s on b: rank 95 is 45 of the
    # 50 in (0.6, 0.75]: 0.6 + 0.15 * 45/50.
    pytest.param({"a": histogram(*[0.04] * 50)["a"], "b": histogram(*[0.7] * 50)["a"]}, 0.6 + 0.15 * 45 / 50,
                 id="sum-by-le-over-targets"),
    # Scraped, but nothing observed in the window: 0/0.
    pytest.param({"a": {0: sample(), 30: sample()}}, math.nan, id="idle-nan"),
    pytest.param({"a": {30: sample(requests=1, latencies_s=(0.1,))}}, None, id="single-sample-empty"),
]


@pytest.mark.parametrize("targets, expected", P95_CASES)
def test_p95(targets, expected):
    assert same(emulator(targets).value(QUERY["p95_s"], 30), expected)


INF = math.inf
BUCKET_QUANTILE_CASES = [
    # Counts 5, 3, 10 are not monotonic (a partial scrape); the envelope 5, 5, 10 puts rank 5 in the
    # first bucket: 0.1 * 5/5. Without the fix the binary search lands in +Inf: 0.2.
    pytest.param(0.5, [(0.1, 5), (0.2, 3), (INF, 10)], 0.1, id="ensure-monotonic"),
    # le="1" and le="1.0" are one bucket of 5: rank 3 -> 1.0 * 3/5 (not 1.0 from the second copy).
    pytest.param(0.3, [(1.0, 2), (1.0, 3), (INF, 10)], 0.6, id="coalesce-equal-bounds"),
    pytest.param(0.1, [(-1.0, 5), (INF, 10)], -1.0, id="non-positive-lowest-bound-returned-as-is"),
    pytest.param(0.5, [(0.1, 5), (1.0, 10)], math.nan, id="no-+Inf-bucket-nan"),
    pytest.param(0.5, [(INF, 10)], math.nan, id="only-+Inf-bucket-nan"),
    pytest.param(0.5, [(0.1, 0), (INF, 0)], math.nan, id="no-observations-nan"),
    pytest.param(1.5, [(0.1, 5), (INF, 10)], INF, id="q-above-1-+inf"),
    pytest.param(-0.5, [(0.1, 5), (INF, 10)], -INF, id="q-below-0--inf"),
]


@pytest.mark.parametrize("q, buckets, expected", BUCKET_QUANTILE_CASES)
def test_bucket_quantile(q, buckets, expected):
    assert same(bucket_quantile(q, buckets), expected)


def test_le_counts_uses_le_semantics():
    # 0.005 is counted in le="0.005" (bound inclusive); 11 s only in +Inf.
    counts = le_counts([0.005, 0.0051, 11.0])
    assert len(counts) == len(LE_BOUNDS_S)
    assert counts[:2] == (1.0, 2.0) and counts[-2:] == (2.0, 3.0)


# --- avg_over_time() ------------------------------------------------------------------------------------
INFLIGHT_CASES = [
    # 0..6 at 0..30, all in the closed window [0, 30]: 3.0 (left-open would drop 0 and give 3.5).
    pytest.param({"a": series(EVERY_5S_TO_30, inflight=range(7))}, 30, 3.0, id="mean-over-closed-window"),
    pytest.param({"a": series(EVERY_5S_TO_30, inflight=range(7)), "b": series(EVERY_5S_TO_30, inflight=[1] * 7)},
                 30, 4.0, id="summed-over-targets"),
    pytest.param({"a": series((30,), inflight=[3])}, 30, 3.0, id="single-sample-is-its-own-mean"),
    # b is gone from 20 on: its 2, 4 at 10, 15 are still in the window.
    pytest.param({"a": series(EVERY_5S_TO_30, inflight=[1] * 7), "b": series((10, 15), inflight=[2, 4])},
                 30, 4.0, id="gone-target-still-averaged"),
    pytest.param({"a": series((0,), inflight=[3])}, 31, None, id="no-sample-in-window-empty"),
]


@pytest.mark.parametrize("targets, at_s, expected", INFLIGHT_CASES)
def test_inflight(targets, at_s, expected):
    assert same(emulator(targets).value(QUERY["inflight"], at_s), expected)


# --- instant selectors: queue and age ---------------------------------------------------------------------
# a lives 0..30 with queue 2; b lives 0..10 with queue 3 and is missing from the scrape at 15 (stale there).
GONE_AT_15 = {"a": series(EVERY_5S_TO_30, queue=[2] * 7), "b": series((0, 5, 10), queue=[3] * 3)}

INSTANT_CASES = [
    pytest.param(GONE_AT_15, "queue", 10, 5.0, id="queue-both-live"),
    pytest.param(GONE_AT_15, "queue", 14.999, 5.0, id="queue-before-the-staleness-marker"),
    pytest.param(GONE_AT_15, "queue", 15, 2.0, id="queue-stale-at-once-when-gone"),
    # b back at 25 after its marker: a fresh sample counts again.
    pytest.param({**GONE_AT_15, "b": series((0, 5, 10, 25), queue=[3] * 4)}, "queue", 25, 5.0,
                 id="queue-target-back-after-marker"),
    # No scrape after 30 (Prometheus stopped scraping: no markers): the 5 min lookback [t - 300, t].
    pytest.param(GONE_AT_15, "queue", 330, 2.0, id="queue-lookback-includes-exactly-300s"),
    pytest.param(GONE_AT_15, "queue", 330.001, None, id="queue-lookback-expired-empty"),
    pytest.param(GONE_AT_15, "age_s", 32.5, 2.5, id="age-since-newest-sample"),
    pytest.param(GONE_AT_15, "age_s", 14.999, 4.999, id="age-between-scrapes"),
    pytest.param(GONE_AT_15, "age_s", 330.001, None, id="age-empty-after-lookback"),
]


@pytest.mark.parametrize("targets, query, at_s, expected", INSTANT_CASES)
def test_instant_queries(targets, query, at_s, expected):
    assert same(emulator(targets).value(QUERY[query], at_s), expected)


# --- through the collector --------------------------------------------------------------------------------
def busy_target(times_s=EVERY_5S_TO_30, per_s: float = 2.0, latency_s: float = 0.04):
    """Serves `per_s` requests per second at `latency_s`, 1 in flight, 1 queued, half a core."""
    return {t: sample(requests=per_s * t, latencies_s=(latency_s,) * int(per_s * t), inflight=1, queue=1,
                      cpu_s=0.5 * t) for t in times_s}


def test_collect_gives_the_collectors_metrics():
    # Zero clamp from 0 at the window start: no extrapolation, exactly 2/s; 0.04 s sits in (0.025, 0.05].
    metrics = emulator({"a": busy_target(), "b": busy_target()}).collect(30)
    assert metrics.problem is None and metrics.errors == ()
    assert metrics.rate_rps == pytest.approx(4.0) and metrics.cpu_cores == pytest.approx(1.0)
    assert metrics.p95_ms == pytest.approx((0.025 + 0.025 * 0.95) * 1000)
    assert metrics.inflight == pytest.approx(2.0) and metrics.queue_depth == 2.0


def test_collect_idle_nan_p95_is_no_error():
    metrics = emulator({"a": {0: sample(), 5: sample()}}).collect(5)
    assert metrics.p95_ms is None and metrics.rate_rps == 0.0 and metrics.errors == ()


def test_collect_quantile_in_the_inf_bucket_is_the_largest_bound_in_ms():
    # Prometheus gives 10 s, a finite value: the collector keeps it as it keeps any latency (an SLO miss).
    metrics = emulator({"a": busy_target(latency_s=30.0)}).collect(30)
    assert metrics.p95_ms == pytest.approx(LE_BOUNDS_S[-2] * 1000) and metrics.errors == ()


def test_collect_single_scrape_has_no_rate_yet():
    metrics = emulator({"a": {0: sample(requests=3, inflight=1)}}).collect(0)
    assert metrics.rate_rps is None and metrics.inflight == 1.0 and metrics.problem is None
    assert ("rate_rps", EMPTY) in metrics.errors and ("p95_s", EMPTY) in metrics.errors


def test_collect_holds_on_stale_data():
    # Scraping stopped at 30 (no markers): at 61 the newest sample is 31 s old, over STALE_AFTER_S=30.
    metrics = emulator({"a": busy_target()}).collect(61)
    assert str(metrics.problem) == "stale: newest sample 31s old" and metrics.rate_rps is None


def test_collect_after_every_target_is_gone():
    prom = emulator({"a": busy_target()})
    prom.scrape(35, {})  # the only target is missing: stale at once
    soon = prom.collect(36)
    assert ("age_s", EMPTY) in soon.errors and soon.queue_depth is None
    assert soon.rate_rps is not None and soon.problem is None  # the window still has its samples
    later = prom.collect(66)
    assert str(later.problem) == "no series from job resnet18-inference"


def test_collect_without_the_age_query():
    # Without it nothing is stale: at 61 the window [31, 61] is empty but the queue's last sample counts.
    metrics = emulator({"a": busy_target()}, config=Config(query_age_s="")).collect(61)
    assert metrics.problem is None and metrics.rate_rps is None and metrics.queue_depth == 1.0


# --- what is not emulated, and bounds -----------------------------------------------------------------------
def test_a_query_that_is_not_a_default_is_refused():
    prom = emulator({"a": busy_target()})
    with pytest.raises(UnsupportedQueryError, match="not one of the default queries"):
        prom.value('sum(rate(inference_requests_total{job="other"}[30s]))', 30)
    prom.eval_time_s = 30
    with pytest.raises(UnsupportedQueryError):
        prom.query("up")


def test_a_config_with_a_custom_query_is_refused_at_construction():
    with pytest.raises(UnsupportedQueryError, match="QUERY_QUEUE="):
        PromEmulator(5, 30, config=Config(query_queue="sum(inference_queue_depth)"))


def test_window_must_match_the_config():
    with pytest.raises(ValueError, match="RATE_WINDOW_S=30"):
        PromEmulator(5, 10, config=Config())
    # Without a config the emulator's own follows window_s.
    assert PromEmulator(5, 10).value(Config(rate_window_s=10).query("query_rate_rps"), 0) is None


def test_scrapes_must_come_in_time_order():
    prom = emulator({"a": busy_target()})
    with pytest.raises(ValueError, match="not after the previous one"):
        prom.scrape(30, {"a": sample()})


def test_query_before_the_evaluation_time_is_set():
    with pytest.raises(RuntimeError, match="eval_time_s"):
        PromEmulator(5, 30).query(QUERY["queue"])


def test_memory_stays_bounded_with_churning_targets():
    # An hour of 5 s scrapes, 40 targets live at a time, each replaced after 10 min: only the last 5 min
    # (lookback) plus one interval stay, and gone targets are forgotten entirely.
    prom = PromEmulator(scrape_interval_s=5, window_s=30)
    kept_rows = (300 + 5) // 5 + 1
    for t in range(0, 3600, 5):
        generation = t // 600
        prom.scrape(t, {f"g{generation}-{i}": sample(requests=t) for i in range(40)})
        assert prom.retained_samples() <= 2 * 40 * kept_rows  # the live and the previous generation
    assert len(prom._targets) <= 2 * 40
    with pytest.raises(ValueError, match="already dropped"):
        prom.value(QUERY["queue"], 3000)
    assert prom.value(QUERY["queue"], 3595) == 0.0
