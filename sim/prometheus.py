"""What Prometheus 2.42 (Debian's) would show the autoscaler, for the trace-driven simulator.

The simulator records one scrape of every live replica per scrape interval (`PromEmulator.scrape`);
the emulator answers the autoscaler's six default queries (autoscaler/config.py DEFAULT_QUERY_*) at any
evaluation time from one scrape interval before the newest scrape on, with Prometheus' own arithmetic
(sim/promql_functions.py, ported from its v2.42.0 source). It implements the collector's `Querier` protocol, so
`autoscaler.collector.PrometheusSource` turns its answers into `Metrics` by the collector's own rules,
and the answers go through `autoscaler.prometheus.parse_response` as a real server's JSON would.

Emulated exactly (tests/test_sim_prometheus_real.py compares with a real Prometheus 2.42):
- range selection `[t - W, t]`, closed at both ends as in 2.42 (3.0 made it left-open), skipping
  staleness markers;
- rate(): extrapolatedRate with counter resets, the 1.1 x average-interval rule and the zero-point clamp
  applied before that rule (2.42's order; later versions clamp after it);
- avg_over_time() with its Kahan-compensated running mean; sum(), sum by (le), max();
- histogram_quantile(): bucketQuantile with coalescing, the monotonicity fix, interpolation from 0 in the
  lowest bucket, the +Inf bucket rule (the highest *finite* bound, not +Inf) and NaN for no observations;
- instant selection with a 5 min lookback, closed at t - 5 min (engine.go vectorSelectorSingle); a
  target absent from a scrape gets a staleness marker at that scrape (scrape/scrape.go scrapeAndReport
  does so for a failed scrape; endOfRunStaleness stamps a removed target's markers with that time too),
  so instant queries drop it at once while range queries still use its earlier samples;
- timestamp() of a selector is the sample's own timestamp; time() the evaluation time; times are
  integer milliseconds as in the TSDB.

Not emulated: any query other than the six defaults (an error, raised when the emulator is built from a
Config that sets one); label sets (one series per target and metric, although the service labels its
request counter by endpoint and code, which only matters for series that start inside a window); the
delay before a removed target's staleness markers are written (scrape.go endOfRunStaleness writes them
about two intervals later, timestamped at the next scrape); scrape offsets and jitter between targets
(the simulator chooses the scrape times); the _sum/_count series of the histogram, which no default
query reads; native histograms; query timeouts and errors.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from typing import Callable, Mapping

import numpy as np

from autoscaler.collector import PrometheusSource
from autoscaler.config import (DEFAULT_QUERY_AGE_S, DEFAULT_QUERY_CPU_CORES, DEFAULT_QUERY_INFLIGHT,
                               DEFAULT_QUERY_P95_S, DEFAULT_QUERY_QUEUE, DEFAULT_QUERY_RATE_RPS, Config)
from autoscaler.decision import Metrics
from autoscaler.outcomes import QueryResult
from autoscaler.prometheus import parse_response
from sim.promql_functions import avg_over_time, bucket_quantile, extrapolated_rate
from sim.scrape import (BUCKET_COLS, COUNTER_COLUMNS, CPU_COL, INFLIGHT_COL, LE_BOUNDS_S, P95_QUANTILE, QUEUE_COL,
                        REQUESTS_COL, TargetSample)

class UnsupportedQueryError(ValueError):
    """A PromQL string the emulator does not evaluate: it knows only the autoscaler's default queries."""


class _TargetSeries:
    """Every series of one target. They are scraped together, so they share timestamps; a None row is a
    staleness marker."""

    __slots__ = ("times_ms", "rows")

    def __init__(self) -> None:
        self.times_ms: list[int] = []
        self.rows: list[np.ndarray | None] = []

    @property
    def live(self) -> bool:
        return bool(self.rows) and self.rows[-1] is not None

    def append(self, t_ms: int, row: np.ndarray | None) -> None:
        self.times_ms.append(t_ms)
        self.rows.append(row)

    def drop_before(self, t_ms: int) -> None:
        k = bisect_left(self.times_ms, t_ms)
        del self.times_ms[:k], self.rows[:k]

    def in_range(self, start_ms: int, end_ms: int) -> tuple[list[int], list[np.ndarray]]:
        """Samples in [start, end], markers skipped: promql/engine.go matrixIterSlice (`t >= mint`)."""
        lo, hi = bisect_left(self.times_ms, start_ms), bisect_right(self.times_ms, end_ms)
        kept = [(t, row) for t, row in zip(self.times_ms[lo:hi], self.rows[lo:hi]) if row is not None]
        return [t for t, _ in kept], [row for _, row in kept]

    def at(self, t_ms: int, lookback_ms: int) -> tuple[int, np.ndarray] | None:
        """The instant sample: promql/engine.go vectorSelectorSingle. The newest sample at or before t,
        unless it is older than the lookback or is a staleness marker."""
        i = bisect_right(self.times_ms, t_ms) - 1
        if i < 0 or self.times_ms[i] < t_ms - lookback_ms or self.rows[i] is None:
            return None
        return self.times_ms[i], self.rows[i]


def _ms(t_s: float) -> int:
    return round(t_s * 1000)


# --- the emulator ------------------------------------------------------------------------------------

class PromEmulator:
    """Scraped samples of the service's replicas, and the default queries over them (a collector Querier).

    `scrape_interval_s` only sets how far before the newest scrape an evaluation may still be: samples
    older than the window or lookback (whichever is longer) plus one interval are dropped.
    """

    # Config field, its default template, the method evaluating it.
    _EMULATED = (("query_rate_rps", DEFAULT_QUERY_RATE_RPS, "_eval_rate_rps"),
                 ("query_p95_s", DEFAULT_QUERY_P95_S, "_eval_p95_s"),
                 ("query_inflight", DEFAULT_QUERY_INFLIGHT, "_eval_inflight"),
                 ("query_queue", DEFAULT_QUERY_QUEUE, "_eval_queue"),
                 ("query_cpu_cores", DEFAULT_QUERY_CPU_CORES, "_eval_cpu_cores"),
                 ("query_age_s", DEFAULT_QUERY_AGE_S, "_eval_age_s"))

    def __init__(self, scrape_interval_s: float, window_s: int, lookback_delta_s: float = 300.0,
                 config: Config | None = None):
        config = config if config is not None else Config(rate_window_s=window_s)
        if config.rate_window_s != window_s:
            raise ValueError(f"window_s={window_s} differs from the config's RATE_WINDOW_S={config.rate_window_s}")
        if scrape_interval_s <= 0 or window_s <= 0 or lookback_delta_s <= 0:
            raise ValueError("scrape_interval_s, window_s and lookback_delta_s must be > 0")
        self.scrape_interval_s = scrape_interval_s
        self.config = config
        self._window_ms = _ms(window_s)
        self._lookback_ms = _ms(lookback_delta_s)
        self._needed_ms = max(self._window_ms, self._lookback_ms)
        self._keep_ms = self._needed_ms + _ms(scrape_interval_s)
        self._evaluators = self._default_queries(config)
        self._source = PrometheusSource(self, config)
        self._targets: dict[str, _TargetSeries] = {}
        self._first_scrape_ms: int | None = None
        self._last_scrape_ms: int | None = None
        self._kept_from_ms = -math.inf     # samples before this may have been dropped
        self._rates_memo: tuple[int, list[np.ndarray]] | None = None
        self.eval_time_s: float | None = None  # when `query` evaluates; `collect` sets it

    def _default_queries(self, config: Config) -> dict[str, Callable[[int], float | None]]:
        evaluators = {}
        for field, default, method in self._EMULATED:
            template = getattr(config, field)
            if template and template != default:
                raise UnsupportedQueryError(f"{field.upper()}={template!r}: the simulator's Prometheus "
                                            f"evaluates only the default query {default!r}")
            if template:
                evaluators[config.query(field)] = getattr(self, method)
        return evaluators

    # --- input ---------------------------------------------------------------------------------------
    def scrape(self, t_s: float, samples: Mapping[str, TargetSample]) -> None:
        """One scrape at `t_s` of every live target; a known target missing from it is gone (stale)."""
        t_ms = _ms(t_s)
        if self._last_scrape_ms is not None and t_ms <= self._last_scrape_ms:
            raise ValueError(f"scrape at {t_s}s is not after the previous one at {self._last_scrape_ms / 1000}s")
        for target_id, series in self._targets.items():
            if target_id not in samples and series.live:
                series.append(t_ms, None)
        for target_id, sample in samples.items():
            self._targets.setdefault(target_id, _TargetSeries()).append(t_ms, sample.row())
        if self._first_scrape_ms is None:
            self._first_scrape_ms = t_ms
        self._last_scrape_ms = t_ms
        self._rates_memo = None
        self._drop_old(t_ms - self._keep_ms)

    def _drop_old(self, before_ms: int) -> None:
        for target_id in list(self._targets):
            series = self._targets[target_id]
            series.drop_before(before_ms)
            if not series.rows:
                del self._targets[target_id]
        if before_ms > self._first_scrape_ms:
            self._kept_from_ms = before_ms

    def retained_samples(self) -> int:
        """Rows kept over all targets (markers included): bounded by targets x (kept span / interval)."""
        return sum(len(s.rows) for s in self._targets.values())

    # --- the Querier protocol ------------------------------------------------------------------------
    def query(self, promql: str) -> QueryResult:
        """The answer a real Prometheus would give at `eval_time_s`, as PrometheusClient reports it."""
        if self.eval_time_s is None:
            raise RuntimeError("set eval_time_s (or call collect(now_s)) before querying")
        t_s = _ms(self.eval_time_s) / 1000
        return _as_query_result(self.value(promql, t_s), t_s, self.config.stale_after_s)

    def collect(self, now_s: float) -> Metrics:
        """What the autoscaler's collector makes of the default queries evaluated at `now_s`."""
        self.eval_time_s = now_s
        return self._source.collect()

    def value(self, promql: str, t_s: float) -> float | None:
        """The query's single value at `t_s` (NaN and inf included), None for an empty result."""
        evaluate = self._evaluators.get(promql)
        if evaluate is None:
            raise UnsupportedQueryError(f"not one of the default queries the simulator emulates: {promql!r} "
                                        f"(emulated: {sorted(self._evaluators)})")
        t_ms = _ms(t_s)
        if t_ms - self._needed_ms < self._kept_from_ms:
            raise ValueError(f"evaluation at {t_s}s needs samples from {(t_ms - self._needed_ms) / 1000}s, "
                             f"already dropped (kept from {self._kept_from_ms / 1000}s)")
        value = evaluate(t_ms)
        return None if value is None else float(value)

    # --- the six default queries ---------------------------------------------------------------------
    def _eval_rate_rps(self, t_ms: int) -> float | None:
        return _sum([rates[REQUESTS_COL] for rates in self._rates(t_ms)])

    def _eval_cpu_cores(self, t_ms: int) -> float | None:
        return _sum([rates[CPU_COL] for rates in self._rates(t_ms)])

    def _eval_p95_s(self, t_ms: int) -> float | None:
        per_le = _sum([rates[BUCKET_COLS] for rates in self._rates(t_ms)])  # sum by (le)
        if per_le is None:
            return None
        return bucket_quantile(P95_QUANTILE, zip(LE_BOUNDS_S, per_le.tolist()))

    def _eval_inflight(self, t_ms: int) -> float | None:
        means = []
        for series in self._targets.values():
            _, rows = series.in_range(t_ms - self._window_ms, t_ms)
            if rows:  # avg_over_time of no samples is no series, not 0
                means.append(avg_over_time(row[INFLIGHT_COL] for row in rows))
        return _sum(means)

    def _eval_queue(self, t_ms: int) -> float | None:
        return _sum([row[QUEUE_COL] for _, row in self._instant(t_ms)])

    def _eval_age_s(self, t_ms: int) -> float | None:
        # timestamp() of a selector gives each sample's own time (promql/engine.go special-cases it);
        # time() is the evaluation time; both as float64(ms) / 1000.
        stamps_ms = [t for t, _ in self._instant(t_ms)]
        return t_ms / 1000 - max(stamps_ms) / 1000 if stamps_ms else None

    def _rates(self, t_ms: int) -> list[np.ndarray]:
        """rate() of every counter column of every target with 2+ samples in the window (memoized: three
        queries at one evaluation time share it)."""
        if self._rates_memo is None or self._rates_memo[0] != t_ms:
            rates = []
            for series in self._targets.values():
                times_ms, rows = series.in_range(t_ms - self._window_ms, t_ms)
                if len(rows) >= 2:
                    rates.append(extrapolated_rate(times_ms, np.stack(rows)[:, :COUNTER_COLUMNS], t_ms,
                                                   self._window_ms))
            self._rates_memo = (t_ms, rates)
        return self._rates_memo[1]

    def _instant(self, t_ms: int) -> list[tuple[int, np.ndarray]]:
        found = (series.at(t_ms, self._lookback_ms) for series in self._targets.values())
        return [hit for hit in found if hit is not None]


def _sum(values: list) -> float | np.ndarray | None:
    """PromQL sum() of an instant vector: no series in, no series out (None); else the plain sum."""
    if not values:
        return None
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def _as_query_result(value: float | None, t_s: float, stale_after_s: float) -> QueryResult:
    """The value as Prometheus' /api/v1/query JSON, read by the client's own parser (its NaN/inf/empty
    outcomes are the collector's contract, kept in one place)."""
    result = [] if value is None else [{"metric": {}, "value": [t_s, _go_float(value)]}]
    body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
    return parse_response(200, body, t_s, stale_after_s)


def _go_float(v: float) -> str:
    """A sample value as Prometheus writes it in JSON (strconv.FormatFloat 'f', -1): NaN, +Inf, -Inf."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)
