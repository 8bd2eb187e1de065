"""A cluster's request-rate history, as Prometheus answers a range query, turned into a trace (wl.txt).

Pure: the range and its chunks, the PromQL sent, the answer's series checked and turned into one rate per
second, and the comments that say how. The command line (loadtester/export_trace_cli.py) asks Prometheus.

Each step of the range query gives one rate, the average over the step's window; every second of the step
gets it, so the trace is flat within a step. With the default query the window is the step plus one scrape
interval less 1 ms: it then holds the last scrape at or before the step's start and the last one before its
end, and rate() divides the counter's increase between those two by their distance (the extrapolation to
the window's edges cancels out). With a step that is a multiple of the scrape interval, a step holds the
requests counted between those scrapes: every request is counted once, up to one scrape interval early.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence

from loadtester.workload import MAX_RATE_RPS

DEFAULT_QUERY = "sum(rate(inference_requests_total[$window]))"
WINDOW = "$window"  # in --query: the step plus one scrape interval, less 1 ms
GAP_FILLS = ("interpolate", "zero")
# Points per range query: under what Prometheus accepts (loadtester.prometheus.MAX_POINTS).
STEPS_PER_QUERY = 10_000
MAX_RANGE_S = 31 * 86400

_DURATION = re.compile(r"(\d+)([wdhms])")
_UNIT_S = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_YEAR_10000_S = 253_402_300_800


class ExportError(ValueError):
    """What Prometheus answered cannot be a trace. kind: 'bad_query' (the query is the problem: several series,
    negative or infinite rates) or 'no_data' (nothing to export in the range)."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def parse_duration_s(text: str) -> int:
    """'30m', '24h', '1h30m', '2d', '90s' -> seconds; raises ValueError for anything else or zero."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(text)
    seconds = sum(int(n) * _UNIT_S[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(text)
    return seconds


def parse_time_s(text: str) -> float:
    """Unix seconds ('1767225600') or an ISO 8601 time ('2026-01-01T00:00:00Z'; UTC when it names no zone)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        value = moment.timestamp()
    if not 0 <= value < _YEAR_10000_S:  # NaN included
        raise ValueError(text)
    return value


def iso_utc(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Range:
    """`steps` steps of `step_s` seconds from `start_s` (whole seconds); step k ends, and is evaluated, at
    start_s + (k + 1) * step_s and covers trace seconds k * step_s .. (k + 1) * step_s - 1."""

    start_s: int
    steps: int
    step_s: int

    @property
    def end_s(self) -> int:
        return self.start_s + self.steps * self.step_s

    def step_end_s(self, k: int) -> int:
        return self.start_s + (k + 1) * self.step_s


def plan_range(start_s: float, end_s: float, step_s: int) -> Range:
    """The whole steps between two times, the start rounded down to a second; raises ValueError when not
    even one step fits or the range is longer than MAX_RANGE_S."""
    start = math.floor(start_s)
    steps = math.floor((end_s - start) / step_s)
    if steps < 1:
        raise ValueError(f"the range {iso_utc(start_s)} .. {iso_utc(end_s)} is shorter than one step ({step_s} s)")
    if steps * step_s > MAX_RANGE_S:
        raise ValueError(f"the range is {steps * step_s / 86400:.1f} days long: at most {MAX_RANGE_S // 86400} days")
    return Range(start, steps, step_s)


def chunks(rng: Range, per_query: int = STEPS_PER_QUERY) -> list[tuple[int, int]]:
    """(first, last) evaluation times of each range query, at most `per_query` steps each."""
    return [(rng.step_end_s(k), rng.step_end_s(min(k + per_query, rng.steps) - 1))
            for k in range(0, rng.steps, per_query)]


def window_ms(step_s: int, scrape_interval_s: float) -> int:
    # Less 1 ms, so that a scrape exactly one window back (a closed range in Prometheus 2) is not the window's
    # first sample: that would stretch the window over two scrape intervals.
    return round((step_s + scrape_interval_s) * 1000) - 1


def promql_for(query: str, step_s: int, scrape_interval_s: float) -> str:
    return query.replace(WINDOW, f"{window_ms(step_s, scrape_interval_s)}ms")


def step_rates(answers: Sequence[Sequence[dict]], rng: Range) -> tuple[list[float | None], int]:
    """One rate per step from the series of every chunk's answer (None where a step has no point or NaN),
    and how many points were NaN; raises ExportError."""
    labels = {tuple(sorted(series.get("metric", {}).items())) for answer in answers for series in answer}
    if len(labels) > 1:
        shown = ", ".join("{" + ", ".join(f'{k}="{v}"' for k, v in one) + "}" for one in sorted(labels)[:3])
        raise ExportError(f"the query gives {len(labels)} series ({shown}{', ...' if len(labels) > 3 else ''}): "
                          "expected one, the cluster's total; aggregate it, e.g. sum(...)", "bad_query")
    rates: list[float | None] = [None] * rng.steps
    nan_points = 0
    for answer in answers:
        for series in answer:
            for stamp, text in series.get("values", []):
                k = round((float(stamp) - rng.start_s) / rng.step_s) - 1
                if not 0 <= k < rng.steps or abs(float(stamp) - rng.step_end_s(k)) > 1e-3:
                    raise ExportError(f"a point at {stamp}, off the query's steps", "bad_query")
                value = float(text)
                if math.isnan(value):
                    nan_points += 1
                    continue
                if not 0 <= value <= MAX_RATE_RPS:
                    raise ExportError(f"the query gives {text} at {iso_utc(float(stamp))}: expected a request "
                                      f"rate in requests per second, 0..{MAX_RATE_RPS:g}", "bad_query")
                rates[k] = value
    return rates, nan_points


@dataclass(frozen=True)
class Filled:
    rates: tuple[float, ...]               # one per step, from step `first_step` on
    first_step: int                        # steps trimmed at the start
    trimmed_end_steps: int                 # steps trimmed at the end
    gaps: tuple[tuple[int, int], ...]      # runs of filled steps, (first, last), counted from first_step
    widened: bool = False                  # the steps next to a step without data were filled too

    @property
    def filled_steps(self) -> int:
        return sum(b - a + 1 for a, b in self.gaps)


def fill_gaps(rates: Sequence[float | None], fill: str, widen: bool = False) -> Filled:
    """interpolate: steps without data between two with data get the straight line between them, and those
    before the first or after the last are cut off; zero: every step without data is 0. Raises ExportError
    when no step has data or every rate is 0.

    widen (interpolate only, for a step longer than the scrape interval): the steps next to one without data
    count as without data too. Their window misses its first or last scrapes, and rate() then extrapolates
    only half a scrape interval beyond the scrapes it has: they read low, down to about half.
    """
    widen = widen and fill == "interpolate"
    if widen:
        missing = [v is None for v in rates]
        rates = [None if any(missing[max(0, k - 1):k + 2]) else v for k, v in enumerate(rates)]
    have = [k for k, v in enumerate(rates) if v is not None]
    if not have:
        raise ExportError("no data in the range", "no_data")
    first, last = (have[0], have[-1]) if fill == "interpolate" else (0, len(rates) - 1)
    kept = list(rates[first:last + 1])
    gaps, k = [], 0
    while k < len(kept):
        if kept[k] is not None:
            k += 1
            continue
        end = k
        while end + 1 < len(kept) and kept[end + 1] is None:
            end += 1
        before, after = kept[k - 1] if k else None, kept[end + 1] if end + 1 < len(kept) else None
        for j in range(k, end + 1):
            if fill == "zero" or before is None or after is None:
                kept[j] = 0.0
            else:
                kept[j] = before + (after - before) * (j - k + 1) / (end - k + 2)
        gaps.append((k, end))
        k = end + 1
    if not any(v > 0 for v in kept):
        raise ExportError("every step's rate is 0: no requests in the range", "no_data")
    return Filled(tuple(kept), first, len(rates) - 1 - last, tuple(gaps), widen)


def per_second(filled: Filled, step_s: int) -> list[float]:
    return [rate for rate in filled.rates for _ in range(step_s)]


def _runs_text(gaps: Sequence[tuple[int, int]], step_s: int, shown: int = 8) -> str:
    runs = [f"{a * step_s}-{(b + 1) * step_s - 1} s" for a, b in gaps[:shown]]
    return ", ".join(runs) + (f" and {len(gaps) - shown} more" if len(gaps) > shown else "")


def comments(filled: Filled, rng: Range, *, prometheus_url: str, promql: str, query: str,
             scrape_interval_s: float, fill: str, nan_points: int) -> list[str]:
    """The file's header: where the trace comes from and what was done to it."""
    step = rng.step_s
    first_s = rng.start_s + filled.first_step * step
    seconds = len(filled.rates) * step
    rates = per_second(filled, step)
    total = math.fsum(rates)
    lines = [
        "Request-rate trace exported from Prometheus by `python -m loadtester export-trace`; replay it with",
        "`python -m loadtester --trace FILE`. One line per second: the requests to send in that second (req/s,",
        "rounded to 0.001).",
        "",
        f"Prometheus: {prometheus_url}",
        f"Query: {promql}",
        f"Line 1 is the second from {iso_utc(first_s)} (unix {first_s}); {seconds} s to {iso_utc(first_s + seconds)}.",
        f"Step: {step} s. Prometheus gives one rate per step, the average over its window; every second of a",
        "step holds it, so the trace is flat within a step.",
    ]
    if query == DEFAULT_QUERY:
        lines += [f"Window: the step plus one scrape interval ({scrape_interval_s:g} s), less 1 ms. Each step's rate "
                  "is the counter's",
                  "increase between the last scrapes at or before the step's start and its end, divided by their",
                  "distance: every request is counted once, up to one scrape interval early."]
    elif WINDOW in query:
        lines += [f"Window: {WINDOW} is the step plus one scrape interval ({scrape_interval_s:g} s), less 1 ms."]
    if filled.gaps:
        how = "a straight line between the steps around them" if fill == "interpolate" else "0"
        lines += [f"Gaps: {filled.filled_steps} steps ({filled.filled_steps * step} s) filled with {how}:",
                  f"  {_runs_text(filled.gaps, step)}."]
        if filled.widened:
            lines += ["  The steps without data and, the step being longer than the scrape interval, those next to",
                      "  them: rate() reads these low, extrapolating only half a scrape interval past its scrapes."]
    else:
        lines += ["Gaps: none."]
    if nan_points:
        lines += [f"NaN: {nan_points} step{'s' if nan_points != 1 else ''} gave NaN, taken as without data."]
    if filled.first_step or filled.trimmed_end_steps:
        lines += [f"Trimmed: {filled.first_step * step} s without data before line 1 (from {iso_utc(rng.start_s)}) "
                  f"and {filled.trimmed_end_steps * step} s after the last line."]
    lines += ["", f"Total: {total:.1f} requests over {seconds} s, mean {total / seconds:.3f} req/s, "
                  f"peak {max(rates):.3f} req/s.", ""]
    return lines
