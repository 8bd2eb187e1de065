"""`python -m loadtester export-trace`: Prometheus' request rate written as a trace (wl.txt).

Pure tables first (Prometheus' answers, the steps and their gaps, durations and times, the written file),
then the command line's refusals, then a real Prometheus backfilled with promtool (tests/prometheus_backfill.py)
holding the counters of a replayed trace: three replicas scraped every 5 s at different offsets, one joining
late, one restarting (its counter starts again from 0), a 31 s Prometheus outage, an idle stretch.

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

from loadtester.cli import main
from loadtester.export_trace import (ExportError, Filled, Range, chunks, comments, fill_gaps, parse_duration_s,
                                     parse_time_s, per_second, plan_range, promql_for, step_rates)
from loadtester.prometheus import PrometheusError, range_result
from loadtester.schedule import build_schedule
from loadtester.workload import format_workload, load_workload, parse_workload
from tests import support
from tests.prometheus_backfill import backfill, start_prometheus

# --- Prometheus' answers --------------------------------------------------------------------------------
RNG = Range(start_s=1000, steps=4, step_s=5)  # steps end at 1005, 1010, 1015, 1020


def series(values, **labels):
    return {"metric": labels, "values": [[t, v] for t, v in values]}


STEP_RATES = [
    ("one-series", [[series([(1005, "2"), (1010, "3"), (1015, "4"), (1020, "5")])]], [2, 3, 4, 5], 0),
    ("labelled-single-series", [[series([(1005, "1"), (1020, "1.5")], job="x")]], [1, None, None, 1.5], 0),
    ("chunks-joined", [[series([(1005, "2"), (1010, "3")])], [series([(1015, "4"), (1020, "5")])]],
     [2, 3, 4, 5], 0),
    ("missing-points-are-none", [[series([(1010, "3")])]], [None, 3, None, None], 0),
    ("nan-is-none-and-counted", [[series([(1005, "NaN"), (1010, "0"), (1015, "NaN"), (1020, "1")])]],
     [None, 0, None, 1], 2),
    ("no-series", [[]], [None] * 4, 0),
]


@pytest.mark.parametrize("answers, rates, nans", [c[1:] for c in STEP_RATES], ids=[c[0] for c in STEP_RATES])
def test_step_rates(answers, rates, nans):
    assert step_rates(answers, RNG) == (rates, nans)


STEP_RATE_ERRORS = [
    ("two-series", [[series([(1005, "1")], instance="a"), series([(1005, "1")], instance="b")]],
     ['2 series', 'instance="a"', 'instance="b"', "sum("]),
    ("two-series-across-chunks", [[series([(1005, "1")], code="200")], [series([(1015, "1")], code="503")]],
     ["2 series"]),
    ("negative", [[series([(1005, "-0.5")])]], ["-0.5", "expected a request rate"]),
    ("infinite", [[series([(1010, "+Inf")])]], ["+Inf", "expected a request rate"]),
    ("over-the-trace-maximum", [[series([(1010, "100001")])]], ["100001", "0..100000"]),
    ("off-the-steps", [[series([(1007, "1")])]], ["1007", "off the query's steps"]),
    ("after-the-range", [[series([(1025, "1")])]], ["1025"]),
]


@pytest.mark.parametrize("answers, words", [c[1:] for c in STEP_RATE_ERRORS], ids=[c[0] for c in STEP_RATE_ERRORS])
def test_step_rates_refuse(answers, words):
    with pytest.raises(ExportError) as caught:
        step_rates(answers, RNG)
    assert caught.value.kind == "bad_query" and all(w in str(caught.value) for w in words), str(caught.value)


ANSWERS = [
    ("matrix", 200, '{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[]}]}}',
     None, None),
    ("parse-error", 400, '{"status":"error","errorType":"bad_data","error":"parse error at char 5"}', "bad_query",
     "parse error at char 5"),
    ("execution-error", 422, '{"status":"error","errorType":"execution","error":"too many samples"}', "error",
     "too many samples"),
    ("overloaded", 503, '{"status":"error","errorType":"unavailable","error":"busy"}', "error", "busy"),
    ("proxy-page", 502, "<html>Bad Gateway</html>", "error", "HTTP 502"),
    ("not-json", 200, "hello", "bad_response", "hello"),
    ("instant-answer", 200, '{"status":"success","data":{"resultType":"vector","result":[]}}', "bad_response",
     "vector"),
]


@pytest.mark.parametrize("status, body, kind, words", [c[1:] for c in ANSWERS], ids=[c[0] for c in ANSWERS])
def test_range_answers(status, body, kind, words):
    if kind is None:
        assert range_result(status, body) == [{"metric": {}, "values": []}]
        return
    with pytest.raises(PrometheusError) as caught:
        range_result(status, body)
    assert caught.value.kind == kind and words in str(caught.value)


# --- steps, gaps and the range ----------------------------------------------------------------------------
FILLS = [
    # id, rates per step, --gaps, widen (a step longer than the scrape interval), the result
    ("no-gaps", [1, 2, 3], "interpolate", False, Filled((1, 2, 3), 0, 0, ())),
    ("zeros-are-data", [0, 4, 0], "interpolate", False, Filled((0, 4, 0), 0, 0, ())),
    ("inner-gap-straight-line", [2, None, None, 8], "interpolate", False, Filled((2, 4, 6, 8), 0, 0, ((1, 2),))),
    ("ends-cut-off", [None, 3, None, 5, None, None], "interpolate", False, Filled((3, 4, 5), 1, 2, ((1, 1),))),
    ("zero-fills-every-gap", [None, 3, None, 5, None], "zero", False,
     Filled((0, 3, 0, 5, 0), 0, 0, ((0, 0), (2, 2), (4, 4)))),
    ("two-inner-gaps", [1, None, 3, None, None, None, 7], "interpolate", False,
     Filled((1, 2, 3, 4, 5, 6, 7), 0, 0, ((1, 1), (3, 5)))),
    ("widened-around-a-gap", [1, 9, None, 9, 5], "interpolate", True, Filled((1, 2, 3, 4, 5), 0, 0, ((1, 3),), True)),
    ("widened-at-the-ends", [None, 9, 3, 4, 9, None], "interpolate", True, Filled((3, 4), 2, 2, (), True)),
    ("widened-gaps-merge", [1, 9, None, 9, None, 9, 7], "interpolate", True,
     Filled((1, 2, 3, 4, 5, 6, 7), 0, 0, ((1, 5),), True)),
    ("zero-fill-never-widens", [1, 9, None, 9, 5], "zero", True, Filled((1, 9, 0, 9, 5), 0, 0, ((2, 2),))),
]


@pytest.mark.parametrize("rates, fill, widen, filled", [c[1:] for c in FILLS], ids=[c[0] for c in FILLS])
def test_fill_gaps(rates, fill, widen, filled):
    assert fill_gaps(rates, fill, widen) == filled


@pytest.mark.parametrize("rates, fill, words", [
    ([None, None], "interpolate", "no data"), ([None, None], "zero", "no data"),
    ([0, None, 0], "interpolate", "every step's rate is 0"), ([0.0, None], "zero", "every step's rate is 0"),
], ids=["nothing-interpolate", "nothing-zero", "all-zero-interpolate", "all-zero-zero"])
def test_nothing_to_export(rates, fill, words):
    with pytest.raises(ExportError) as caught:
        fill_gaps(rates, fill)
    assert caught.value.kind == "no_data" and words in str(caught.value)


@pytest.mark.parametrize("start, end, step, expected", [
    (1000, 1020, 5, Range(1000, 4, 5)),
    (1000.7, 1020.9, 5, Range(1000, 4, 5)),
    (1000, 1024.9, 5, Range(1000, 4, 5)),
    (1000, 1001, 1, Range(1000, 1, 1)),
], ids=["whole-steps", "start-rounded-down", "partial-last-step-dropped", "one-second"])
def test_plan_range(start, end, step, expected):
    assert plan_range(start, end, step) == expected


@pytest.mark.parametrize("start, end, step, words", [
    (1000, 1004, 5, "shorter than one step"), (1000, 900, 5, "shorter than one step"),
    (0, 32 * 86400, 60, "at most 31 days"),
], ids=["under-a-step", "end-before-start", "over-31-days"])
def test_plan_range_refuses(start, end, step, words):
    with pytest.raises(ValueError, match=words):
        plan_range(start, end, step)


@pytest.mark.parametrize("steps, per_query, expected", [
    (4, 10, [(1005, 1020)]),
    (10, 10, [(1005, 1050)]),
    (25, 10, [(1005, 1050), (1055, 1100), (1105, 1125)]),
], ids=["one-query", "exactly-full", "three-queries"])
def test_chunks_cover_every_step_once(steps, per_query, expected):
    assert chunks(Range(1000, steps, 5), per_query) == expected


@pytest.mark.parametrize("query, step, scrape, expected", [
    ("sum(rate(inference_requests_total[$window]))", 5, 5.0, "sum(rate(inference_requests_total[9999ms]))"),
    ("sum(rate(x[$window]))", 10, 2.5, "sum(rate(x[12499ms]))"),
    ('sum(rate(x{job="a"}[1m]))', 5, 5.0, 'sum(rate(x{job="a"}[1m]))'),
], ids=["default", "step-and-fractional-scrape", "own-window-untouched"])
def test_promql_for(query, step, scrape, expected):
    assert promql_for(query, step, scrape) == expected


@pytest.mark.parametrize("text, seconds", [
    ("30m", 1800), ("24h", 86400), ("1h30m", 5400), ("2d", 172800), ("90s", 90), ("1w", 604800), (" 5m ", 300),
], ids=["minutes", "hours", "hours-minutes", "days", "seconds", "week", "spaces"])
def test_durations(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "24x", "h", "0m", "-1h", "1.5h", "1h 30m"],
                         ids=["empty", "no-unit", "bad-unit", "no-number", "zero", "negative", "fraction",
                              "inner-space"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration_s(text)


@pytest.mark.parametrize("text, unix_s", [
    ("1767225600", 1767225600.0), ("1767225600.5", 1767225600.5), ("2026-01-01T00:00:00Z", 1767225600.0),
    ("2026-01-01T01:00:00+01:00", 1767225600.0), ("2026-01-01T00:00:00", 1767225600.0),
], ids=["unix", "unix-fraction", "iso-utc", "iso-zone", "iso-no-zone-is-utc"])
def test_times(text, unix_s):
    assert parse_time_s(text) == unix_s


@pytest.mark.parametrize("text", ["yesterday", "nan", "inf", "2026-13-01T00:00:00Z", "-5", "1e20",
                                  "1969-12-31T23:59:59Z"],
                         ids=["word", "nan", "infinite", "month-13", "negative", "past-year-9999", "before-1970"])
def test_bad_times(text):
    with pytest.raises(ValueError):
        parse_time_s(text)


# --- the written file -------------------------------------------------------------------------------------
@pytest.mark.parametrize("rates, comment_lines, expected", [
    ([20.0, 0.0, 1.23456], [], "20\n0\n1.235\n"),
    ([0.0004, 0.0005001, 99999.9994], [], "0\n0.001\n99999.999\n"),
    ([1], ["title", "", "two\nlines"], "# title\n#\n# two\n# lines\n1\n"),
], ids=["decimals-dropped", "rounded-to-a-thousandth", "comment-lines"])
def test_format_workload(rates, comment_lines, expected):
    assert format_workload(rates, comment_lines) == expected


def test_the_file_loads_as_the_trace_it_holds_and_says_how_it_was_made():
    filled = fill_gaps([None, 2.0, None, None, 8.0, 1.2346, None], "interpolate")
    rng = Range(start_s=1767225600, steps=7, step_s=5)
    header = comments(filled, rng, prometheus_url="http://prom:9090", promql="sum(rate(x[9999ms]))",
                      query="sum(rate(inference_requests_total[$window]))", scrape_interval_s=5.0,
                      fill="interpolate", nan_points=1)
    text = format_workload(per_second(filled, 5), header)
    trace = parse_workload(text, "exported.txt")
    assert trace.rates_rps == (2.0,) * 5 + (4.0,) * 5 + (6.0,) * 5 + (8.0,) * 5 + (1.235,) * 5
    head = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    for words in ("Query: sum(rate(x[9999ms]))", "Prometheus: http://prom:9090", "Step: 5 s",
                  "Line 1 is the second from 2026-01-01T00:00:05Z (unix 1767225605); 25 s",
                  "Gaps: 2 steps (10 s) filled with a straight line", "NaN: 1 step gave NaN", "  5-14 s.",
                  "Trimmed: 5 s without data before line 1", "and 5 s after", "scrape interval (5 s)",
                  "Total: 106.2 requests over 25 s"):
        assert words in head, words


# --- the command line's refusals ------------------------------------------------------------------------
def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["export-trace", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


REFUSALS = [
    ("since-word", ["--since", "yesterday"], "--since='yesterday': expected a duration such as 30m"),
    ("since-too-long", ["--since", "32d"], "--since='32d': expected a duration such as 30m, 24h or 1h30m, at most 31d"),
    ("start-and-since", ["--start", "1767225600", "--since", "1h"], "--start and --since both"),
    ("start-after-end", ["--start", "1767229200", "--end", "1767225600"], "shorter than one step"),
    ("end-word", ["--end", "later"], "--end='later': expected unix seconds or an ISO 8601 time"),
    ("step-under-scrape", ["--step-s", "1"], "--step-s=1: expected at least --scrape-interval-s (2 s)"),
    ("step-fraction", ["--step-s", "2.5"], "--step-s=2.5: expected an integer in 1..3600 s"),
    ("scrape-zero", ["--scrape-interval-s", "0"], "--scrape-interval-s=0: expected a number in >0..3600 s"),
    ("gaps-choice", ["--gaps", "hold"], "--gaps='hold': expected one of interpolate | zero"),
    ("prometheus-not-url", ["--prometheus", "prom:9090"], "--prometheus='prom:9090': expected an http:// or https://"),
    ("out-in-missing-directory", ["--out", "/nonexistent-dir/trace.txt"], "--out='/nonexistent-dir/trace.txt'"),
]


@pytest.mark.parametrize("args, words", [c[1:] for c in REFUSALS], ids=[c[0] for c in REFUSALS])
def test_bad_options_exit_2_naming_the_option(capsys, tmp_path, args, words):
    out = [] if "--out" in args else ["--out", str(tmp_path / "t.txt")]
    code, _, err = run_cli(capsys, *out, *args)
    assert code == 2 and words in err, err
    assert not (tmp_path / "t.txt").exists()


def test_without_out_argparse_exits_2(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["export-trace", "--since", "1h"])
    assert caught.value.code == 2 and "--out" in capsys.readouterr().err


def test_unreachable_prometheus_exits_1(capsys, tmp_path):
    code, _, err = run_cli(capsys, "--out", str(tmp_path / "t.txt"), "--prometheus",
                           f"http://127.0.0.1:{support.free_port()}")
    assert code == 1 and "cannot reach Prometheus" in err and "connection refused" in err, err
    assert not (tmp_path / "t.txt").exists()


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
