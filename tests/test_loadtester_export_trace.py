"""`python -m loadtester export-trace`: Prometheus' request rate written as a trace (wl.txt).

Pure tables first (Prometheus' answers, the steps and their gaps, durations and times, the written file),
then the command line's refusals. The round trip through a real Prometheus, and the queries it answers:
tests/test_loadtester_export_trace_prometheus.py.
"""

from __future__ import annotations

import pytest

from loadtester.cli import main
from loadtester.export_trace import (ExportError, Filled, Range, chunks, comments, fill_gaps, parse_duration_s,
                                     parse_time_s, per_second, plan_range, promql_for, step_rates)
from loadtester.prometheus import PrometheusError, range_result
from loadtester.workload import format_workload, parse_workload
from tests import support

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
