"""The status line of the local stack: what it shows from the load tester's status file and the autoscaler's
decision log, redrawn in place on a terminal, plain lines now and then elsewhere."""

from __future__ import annotations

import io
import json

import pytest

from local.live import PLAIN_EVERY_S, LiveLine, last_decisions, render

STATUS = {"elapsed_s": 42.0, "total_s": 90.0, "offered_rps": 38.2, "achieved_rps": 37.9, "p95_ms": 312.4,
          "errors": 3}
HOLD = {"event": "decision", "direction": "hold", "current": 2, "desired": 2, "ready": 1, "reason": "hold: x"}
UP = {"event": "decision", "direction": "up", "current": 1, "desired": 2, "ready": 1,
      "reason": "scale-up: panic, demand 1.71 replicas"}


@pytest.mark.parametrize("status, decision, scaled, expected", [
    (None, None, None, "run 1/4 slo | starting the replay"),
    (STATUS, None, None, "run 1/4 slo | 42/90s | offered 38.2/s ok 37.9/s | p95 312/450ms | errors 3"),
    ({**STATUS, "p95_ms": None}, HOLD, None,
     "run 1/4 slo | 42/90s | offered 38.2/s ok 37.9/s | p95 -/450ms | errors 3 | workers 1 ready/2 desired"),
    (STATUS, HOLD, UP, "run 1/4 slo | 42/90s | offered 38.2/s ok 37.9/s | p95 312/450ms | errors 3 | workers 1 "
                       "ready/2 desired | last up 1->2 (panic, demand 1.71 replicas)"),
], ids=["before-the-first-status", "no-decision-yet", "idle-window", "after-a-scale-up"])
def test_the_line_shows_progress_load_latency_errors_replicas_and_the_last_scale(status, decision, scaled, expected):
    assert render(status, decision, scaled, 450, "run 1/4 slo") == expected


def write_log(path, records, junk_first: bool = False):
    lines = (["{\"cut\": "] if junk_first else []) + [json.dumps(r, separators=(",", ":")) for r in records]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("records, newest, scaled", [
    ([], None, None),
    ([UP, HOLD], HOLD, UP),
    ([HOLD], HOLD, None),
    ([{"event": "config"}, UP], UP, UP),
], ids=["empty", "hold-after-up", "only-holds", "config-line-skipped"])
def test_the_decision_log_tail_gives_the_newest_and_the_last_scaling_decision(tmp_path, records, newest, scaled):
    log = tmp_path / "decisions.jsonl"
    write_log(log, records, junk_first=True)
    assert last_decisions(log) == (newest, scaled)


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "log-file"])
def test_a_terminal_gets_one_redrawn_line_and_a_log_plain_lines_now_and_then(tmp_path, tty):
    status, log = tmp_path / "status.json", tmp_path / "decisions.jsonl"
    status.write_text(json.dumps(STATUS))
    write_log(log, [UP, HOLD])
    now = [0.0]
    stream = FakeTerminal(tty)
    line = LiveLine(stream, status, log, 450, "slo", clock=lambda: now[0])
    for _ in range(4):  # 2 s of updates every 0.5 s
        line.update()
        now[0] += 0.5
    now[0] += PLAIN_EVERY_S
    line.update()
    line.close()
    text = stream.getvalue()
    if tty:
        assert text.count("\r\x1b[2K") == 6 and text.endswith("\n") and text.count("\n") == 1
    else:
        assert "\r" not in text and text.count("\n") == 2  # the first update and one PLAIN_EVERY_S later
        assert all(row.startswith("local: slo | 42/90s") for row in text.splitlines())
    assert "last up 1->2" in text


def test_a_missing_status_file_and_log_do_not_break_the_line(tmp_path):
    stream = FakeTerminal(False)
    line = LiveLine(stream, tmp_path / "none.json", tmp_path / "none.jsonl", 450)
    line.update()
    assert stream.getvalue() == "local: starting the replay\n"
