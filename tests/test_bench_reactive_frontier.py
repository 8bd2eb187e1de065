"""bench/reactive_frontier.py on a tiny trace: the oracle, slo and the reactive planner at each headroom."""

from __future__ import annotations

import re

from bench import reactive_frontier
from sim.matrix import Case


def test_the_frontier_is_the_cheapest_headroom_that_keeps_99_percent(tmp_path):
    trace = tmp_path / "step.txt"
    trace.write_text("40\n" * 60 + "200\n" * 60)   # a 5x step: seen 5 s late, its first window misses
    case = Case("step", trace, ("--scale", "1"), "a step")
    lines = reactive_frontier.frontier(case, [1.0, 1.5], lag_s=5, mean_s=5, hold_s=30, duration_s=None, out=tmp_path)
    rows = {m.group(1): (int(m.group(2)), int(m.group(3)), float(m.group(4)))
            for m in (re.match(r"\| (.+?) \| [\d.]+% \((\d+)/(\d+)\) \| (\d+) \|", ln) for ln in lines) if m}
    assert list(rows) == ["oracle", "slo", "reactive x1", "reactive x1.5"]
    assert rows["oracle"][0] == rows["oracle"][1] == 12                  # the oracle keeps every window
    assert rows["reactive x1"][0] < 12                                    # reacting 5 s late loses the step's
    assert rows["reactive x1.5"][2] > rows["reactive x1"][2]             # headroom costs replica-seconds
    verdict = lines[-2]
    assert verdict.endswith(f"slo at {rows['slo'][2] / rows['oracle'][2]:.2f}x.")
    assert verdict.startswith("the reactive frontier: ") or verdict.startswith("no headroom of the grid")


def test_bad_cases_exit_2(capsys):
    assert reactive_frontier.main(["--cases", "nope"]) == 2
    assert "--cases=nope" in capsys.readouterr().err
