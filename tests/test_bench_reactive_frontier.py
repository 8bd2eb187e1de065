"""bench/reactive_frontier.py on a tiny trace: the oracle, slo and the reactive planner at each headroom."""

from __future__ import annotations

import re

import pytest

from bench import reactive_frontier
from sim.matrix import Case


def test_the_frontier_is_the_cheapest_headroom_that_keeps_99_percent(tmp_path):
    trace = tmp_path / "step.txt"
    trace.write_text("40\n" * 60 + "200\n" * 60)   # a 5x step: seen 5 s late, its first window misses
    case = Case("step", trace, ("--scale", "1"), "a step")
    lines = reactive_frontier.frontier(case, [1.0, 1.5], lag_s=5, mean_s=5, hold_s=30, duration_s=None)
    rows = {m.group(1): (int(m.group(2)), int(m.group(3)), float(m.group(4)))
            for m in (re.match(r"\| (.+?) \| [\d.]+% \((\d+)/(\d+)\) \| (\d+) \|", ln) for ln in lines) if m}
    assert list(rows) == ["oracle", "slo", "reactive x1", "reactive x1.5"]
    assert rows["oracle"][0] == rows["oracle"][1] == 12                  # the oracle keeps every window
    assert rows["reactive x1"][0] < 12                                    # reacting 5 s late loses the step's
    assert rows["reactive x1.5"][2] > rows["reactive x1"][2]             # headroom costs replica-seconds
    # The verdict names the cheapest headroom (the grid is in rising order) that kept 99% of the windows.
    kept = [name for name in ("reactive x1", "reactive x1.5") if rows[name][0] >= 0.99 * rows[name][1]]
    oracle_rs = rows["oracle"][2]
    verdict = re.fullmatch(r"(the reactive frontier: (.+?) at ([\d.]+)x the oracle|no headroom of the grid reached 99% "
                           r"of the windows); slo at ([\d.]+)x\.", lines[-2])
    assert verdict, lines[-2]
    assert verdict.group(2) == (kept[0] if kept else None)
    # The verdict's ratios come from unrounded replica-seconds, the table's are whole: equal within rounding.
    if kept:
        assert float(verdict.group(3)) == pytest.approx(rows[kept[0]][2] / oracle_rs, abs=0.011)
    assert float(verdict.group(4)) == pytest.approx(rows["slo"][2] / oracle_rs, abs=0.011)


@pytest.mark.parametrize("argv, words", [
    (["--cases", "nope"], "--cases=nope"),
    (["--lag-s", "-1"], "--lag-s=-1: expected seconds >= 0"),
    (["--mean-s", "0"], "--mean-s=0: expected seconds >= 1"),
    (["--hold-s", "-5"], "--hold-s=-5: expected seconds >= 0"),
    (["--duration", "-1"], "--duration=-1: expected seconds > 0"),
    (["--score-from-s", "-1"], "--score-from-s=-1: expected seconds >= 0"),
    (["--headroom-grid", "1.2,0"], "--headroom-grid=1.2,0: expected comma-separated factors > 0"),
    (["--headroom-grid", "x"], "--headroom-grid=x: expected"),
], ids=["unknown-case", "negative-lag", "zero-mean", "negative-hold", "negative-duration", "negative-score-from",
         "zero-headroom",
        "not-a-number"])
def test_bad_input_exits_2_naming_the_flag(argv, words, capsys):
    assert reactive_frontier.main(argv) == 2
    assert words in capsys.readouterr().err


def test_scoring_from_a_later_second_counts_only_the_windows_from_there(tmp_path):
    trace = tmp_path / "flat.txt"
    trace.write_text("40\n" * 120)
    lines = reactive_frontier.frontier(Case("flat", trace, ("--scale", "1"), "flat"), [1.0], lag_s=5, mean_s=5,
                                       hold_s=30, duration_s=None, from_s=60.0)
    oracle = next(ln for ln in lines if ln.startswith("| oracle |"))
    assert "(6/6)" in oracle and "scored over [60, 120) s" in lines[2]
