"""`python -m loadtester export-trace` against a real Prometheus: a replayed trace exported back as a trace.

A real Prometheus backfilled with promtool (tests/prometheus_backfill.py) holds the counters of a replayed
trace: three replicas scraped every 5 s at different offsets, one joining late, one restarting (its counter
starts again from 0), a 31 s Prometheus outage, an idle stretch. Then --since against --start, and what each
kind of query gives (refused, no data, NaN steps, zeros). The pure parts: tests/test_loadtester_export_trace.py.

The round trip checks two things of the exported trace:
- exact where the counters are: a step's requests (its rate times the step) are the requests counted
  between each replica's last scrapes at or before the step's start and its end, to the file's rounding
  (0.0005 req/s a second). Steps whose window touches a join, a restart or the outage are left out: there
  rate() extrapolates from fewer samples or towards zero, by design;
- within Poisson noise of the replayed counts, every step and every second, gaps included (the steps
  holding what the late replica served before its first scrape may only read low: no sample has it). A step's
  exported and replayed counts are two counts of about Lambda requests each (Lambda: the trace's expected
  requests in the step); they may differ by 5 standard deviations of a difference of two such counts,
  5 sqrt(2 Lambda), plus the rounding, plus the bias of measuring up to one scrape interval early: the
  trace's rate range (max - min) over the step and the scrape interval before it, times the scrape
  interval. A second's count against the step's average: 5 sqrt(lambda + Lambda / step^2), plus that
  rate range times (1 + scrape interval / step) (the rate also varies within the step). Filling the
  outage with zeros, a rate per step instead of per second or a shift by a step each break one of these.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from dataclasses import dataclass

import numpy as np
import pytest

from loadtester.schedule import build_schedule
from loadtester.workload import load_workload
from tests import support
from tests.prometheus_backfill import backfill, start_prometheus
from tests.test_loadtester_export_trace import run_cli

# --- a replayed trace, backfilled into a real Prometheus --------------------------------------------------
SCRAPE_S = 5
RUN_S = 600
OUTAGE_S = (400.0, 431.0)   # Prometheus down: no scrape of any replica
EDGE_S = 2 * SCRAPE_S        # around a join, a restart or the outage, rate() extrapolates differently
WINDOW_LESS_S = 0.001


@dataclass(frozen=True)
class Replica:
    name: str
    offset_s: float              # scraped at offset_s + 5 k
    joins_s: float | None = None     # None: serving (counters well above 0) before the range
    restarts_s: float | None = None  # down from its last scrape before this, counters from 0 after


# a is scraped on the steps' boundaries: a window one millisecond longer would hold three of its scrapes.
REPLICAS = (Replica("a", 0.0), Replica("b", 3.5, restarts_s=452.3), Replica("c", 4.75, joins_s=230.4))
INITIAL = {"200": 5000, "503": 300}


def trace_rates() -> np.ndarray:
    """8 req/s, a ramp to 40, 40, a burst of 90, 20 (the outage falls here), 3 with 20 s of nothing."""
    t = np.arange(RUN_S)
    return np.select([t < 100, t < 200, t < 300, t < 350, t < 500, (540 <= t) & (t < 560)],
                     [8.0, 8.0 + 32.0 * (t - 100) / 100, 40.0, 90.0, 20.0, 0.0], 3.0)


def scrape_times(r: Replica) -> list[float]:
    times = [r.offset_s + SCRAPE_S * k for k in range(-3, RUN_S // SCRAPE_S + 2)]
    return [t for t in times if not OUTAGE_S[0] < t < OUTAGE_S[1] and (r.joins_s is None or t >= r.joins_s)]


def down_s(r: Replica) -> tuple[float, float] | None:
    if r.restarts_s is None:
        return None
    return max(t for t in scrape_times(r) if t < r.restarts_s), r.restarts_s


@dataclass
class Replay:
    arrivals: np.ndarray                      # seconds after t0
    replica: np.ndarray                       # index into REPLICAS
    code: np.ndarray                          # "200" or "503"

    def counter(self, r: int, code: str, t: float) -> float:
        """The replica's counter as a scrape at t reads it."""
        rep = REPLICAS[r]
        mine = (self.replica == r) & (self.code == code) & (self.arrivals <= t)
        if rep.restarts_s is not None and t >= rep.restarts_s:
            return float(np.count_nonzero(mine & (self.arrivals > rep.restarts_s)))
        return float(np.count_nonzero(mine)) + (INITIAL[code] if rep.joins_s is None else 0)

    def served(self, r: int, after_s: float, until_s: float) -> int:
        return int(np.count_nonzero((self.replica == r) & (self.arrivals > after_s) & (self.arrivals <= until_s)))


def replay(seed: int = 11) -> Replay:
    """The trace's requests as the load tester schedules them (Poisson arrivals), each to a live replica."""
    arrivals = build_schedule(trace_rates(), seed=seed).offsets_s
    rng = np.random.default_rng(seed)
    replica = np.empty(len(arrivals), dtype=int)
    for i, t in enumerate(arrivals):
        live = [k for k, r in enumerate(REPLICAS) if (r.joins_s is None or t > r.joins_s)
                and not (down_s(r) and down_s(r)[0] < t <= down_s(r)[1])]
        replica[i] = live[rng.integers(len(live))]
    code = np.where(rng.random(len(arrivals)) < 0.1, "503", "200")
    return Replay(arrivals, replica, code)


def openmetrics(run: Replay, t0_s: int) -> str:
    lines = []
    for r, rep in enumerate(REPLICAS):
        for code in INITIAL:
            labels = f'job="inference",instance="{rep.name}",endpoint="/predict",code="{code}"'
            name = f"inference_requests_total{{{labels}}}"
            lines += [f"{name} {run.counter(r, code, t):.0f} {t0_s + t:.3f}" for t in scrape_times(rep)]
    return "\n".join(lines + ["# EOF"]) + "\n"


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory):
    """(Prometheus URL, the replay it holds, the range's start), the server stopped by its PID afterwards."""
    directory = tmp_path_factory.mktemp("export-trace")
    t0_s = int(time.time()) - RUN_S - 3600
    run = replay()
    prometheus = start_prometheus(backfill(openmetrics(run, t0_s), directory), directory)
    try:
        yield prometheus.extra["url"], run, t0_s
    finally:
        prometheus.stop()


def export(url: str, out, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([support.PYTHON, "-m", "loadtester", "export-trace", "--prometheus", url, "--out", str(out),
                           *args], cwd=support.REPO, capture_output=True, text=True, timeout=120)


def expected_gap_steps(step_s: int) -> set[int]:
    """Steps whose window holds fewer than two scrapes of every replica: no rate at all."""
    window_s = step_s + SCRAPE_S - WINDOW_LESS_S
    def samples(rep, end_s):
        return sum(end_s - window_s <= t <= end_s for t in scrape_times(rep))
    return {k for k in range(RUN_S // step_s) if all(samples(rep, (k + 1) * step_s) < 2 for rep in REPLICAS)}


def steady(k: int, step_s: int) -> bool:
    """The step's window keeps clear of joins, restarts and the outage."""
    lo, hi = k * step_s - SCRAPE_S, (k + 1) * step_s
    events = [e for rep in REPLICAS for e in (rep.joins_s, rep.restarts_s) if e is not None]
    near = [(e - EDGE_S, e + EDGE_S) for e in events] + [(OUTAGE_S[0] - SCRAPE_S, OUTAGE_S[1] + SCRAPE_S)]
    return all(hi < a or lo > b for a, b in near)


def before_first_scrape(k: int, step_s: int) -> bool:
    """The step holds requests a replica answered before Prometheus first scraped it: in no sample."""
    lo, hi = k * step_s, (k + 1) * step_s
    return any(rep.joins_s is not None and lo < min(scrape_times(rep)) and hi > rep.joins_s for rep in REPLICAS)


def counted_between_scrapes(run: Replay, k: int, step_s: int) -> float:
    """Each replica's requests between its last scrapes at or before the step's start and its end."""
    total = 0.0
    for r, rep in enumerate(REPLICAS):
        times = scrape_times(rep)
        if min(times) > k * step_s:
            continue  # not in Prometheus yet: not in the sum either
        first = max(t for t in times if t <= k * step_s)
        last = max(t for t in times if t <= (k + 1) * step_s)
        total += run.served(r, first, last) * step_s / (last - first)
    return total


@pytest.mark.parametrize("step_s", [5, 10], ids=["step-5s-default", "step-10s"])
def test_round_trip_matches_the_replayed_counts(backfilled, tmp_path, step_s):
    url, run, t0_s = backfilled
    out = tmp_path / "exported.txt"
    # This Prometheus was fed 5 s scrapes, not the in-cluster 2 s: the flag says so, as a user's would.
    args = (["--start", str(t0_s), "--end", str(t0_s + RUN_S), "--scrape-interval-s", str(SCRAPE_S)]
            + (["--step-s", str(step_s)] if step_s != 5 else []))
    done = export(url, out, *args)
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: {RUN_S} s" in done.stdout

    exported = np.array(load_workload(out).rates_rps)
    text = out.read_text()
    assert len(exported) == RUN_S and f"Step: {step_s} s." in text
    assert f"Query: sum(rate(inference_requests_total[{(step_s + SCRAPE_S) * 1000 - 1}ms]))" in text
    per_step = exported.reshape(-1, step_s)
    assert (per_step == per_step[:, :1]).all(), "a step's seconds differ"
    gaps = expected_gap_steps(step_s)
    assert gaps, "the outage made no gap: the test would prove nothing about gaps"
    if step_s > SCRAPE_S:  # then the steps next to a gap read low, and are filled too
        gaps |= {k + side for k in gaps for side in (-1, 1)}
    listed = {s for a, b in re.findall(r"(\d+)-(\d+) s\b", text.split("Gaps:")[1].split("Total:")[0])
              for s in range(int(a), int(b) + 1)}
    assert listed == {k * step_s + i for k in gaps for i in range(step_s)}
    assert ("those next to" in text) == (step_s > SCRAPE_S)

    # Exact where the counters are: the requests between the scrapes that bound each step.
    steps = [k for k in range(RUN_S // step_s) if steady(k, step_s)]
    assert len(steps) >= 0.7 * RUN_S / step_s
    rounding = step_s * 0.0005 + 1e-9
    off = [(k, per_step[k, 0] * step_s, counted_between_scrapes(run, k, step_s)) for k in steps
           if abs(per_step[k, 0] * step_s - counted_between_scrapes(run, k, step_s)) > rounding]
    assert not off, f"{len(off)} of {len(steps)} steps differ (step, exported, counted): {off[:5]}"

    # Within Poisson noise of what was replayed, every step and every second; only low before a first scrape.
    rates = trace_rates()
    replayed = np.bincount(np.floor(run.arrivals).astype(int), minlength=RUN_S)[:RUN_S].astype(float)
    unseen = [k for k in range(RUN_S // step_s) if before_first_scrape(k, step_s)]
    assert 1 <= len(unseen) <= 2
    problems = []
    for k in range(RUN_S // step_s):
        seconds = slice(k * step_s, (k + 1) * step_s)
        around = rates[max(0, k * step_s - SCRAPE_S):(k + 1) * step_s]  # the step and a scrape interval before it
        change = around.max() - around.min()
        expected = rates[seconds].sum()
        tolerance = 5 * math.sqrt(2 * expected) + change * SCRAPE_S + rounding
        if k in unseen:
            if per_step[k].sum() - replayed[seconds].sum() > tolerance:
                problems.append(f"step {k}, before a first scrape: exported {per_step[k].sum():.1f}, more than "
                                f"replayed {replayed[seconds].sum():.0f} + {tolerance:.1f}")
            continue
        if abs(per_step[k].sum() - replayed[seconds].sum()) > tolerance:
            problems.append(f"step {k}: exported {per_step[k].sum():.1f}, replayed {replayed[seconds].sum():.0f}, "
                            f"tolerance {tolerance:.1f}")
        for i in range(k * step_s, (k + 1) * step_s):
            tolerance = (5 * math.sqrt(rates[i] + expected / step_s / step_s) + change * (1 + SCRAPE_S / step_s)
                         + 0.0005)
            if abs(exported[i] - replayed[i]) > tolerance:
                problems.append(f"second {i}: exported {exported[i]:.3f}, replayed {replayed[i]:.0f}, tolerance "
                                f"{tolerance:.1f}")
    assert not problems, "\n".join(problems[:20])


def test_since_counts_back_from_end(backfilled, tmp_path, capsys):
    url, _, t0_s = backfilled
    by_start, by_since = tmp_path / "start.txt", tmp_path / "since.txt"
    assert run_cli(capsys, "--prometheus", url, "--out", str(by_start), "--start", str(t0_s),
                   "--end", str(t0_s + 300))[0] == 0
    assert run_cli(capsys, "--prometheus", url, "--out", str(by_since), "--since", "5m",
                   "--end", str(t0_s + 300))[0] == 0
    assert by_since.read_text() == by_start.read_text()


QUERY_OUTCOMES = [
    # id, arguments, range shift (s), exit status, words in the error or the file
    ("promql-syntax", ["--query", "sum(rate(inference_requests_total[$window]"], 0, 2, "Prometheus refused the query"),
    ("one-series-per-replica", ["--query", "sum by (instance) (rate(inference_requests_total[$window]))"], 0, 2,
     "the query gives 3 series"),
    ("negative-rates", ["--query", "-sum(rate(inference_requests_total[$window])) - 1"], 0, 2,
     "expected a request rate"),
    ("no-such-metric", ["--query", "sum(rate(no_such_metric_total[$window]))"], 0, 1, "no data in the range"),
    ("every-rate-zero", ["--query", "sum(rate(inference_requests_total[$window])) * 0"], 0, 1,
     "every step's rate is 0"),
    ("range-before-the-data", [], -90_000, 1, "no data in the range"),
    ("nan-steps-are-gaps", ["--query", "10 * sum(rate(inference_requests_total[$window])) / "
                                       "sum(rate(inference_requests_total[$window]))"], 0, 0, "gave NaN"),
    ("zero-fill", ["--gaps", "zero"], 0, 0, "filled with 0"),
]


@pytest.mark.parametrize("args, shift_s, code, words", [c[1:] for c in QUERY_OUTCOMES],
                         ids=[c[0] for c in QUERY_OUTCOMES])
def test_query_outcomes(backfilled, tmp_path, capsys, args, shift_s, code, words):
    url, _, t0_s = backfilled
    out = tmp_path / "t.txt"
    got, _, err = run_cli(capsys, "--prometheus", url, "--out", str(out), "--start", str(t0_s + shift_s),
                          "--end", str(t0_s + RUN_S + shift_s), *args)
    assert got == code, err
    if code:
        assert words in err and not out.exists(), err
    else:
        assert words in out.read_text() and load_workload(out).duration_s == RUN_S
