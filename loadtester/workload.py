"""The workload trace format (wl.txt); nothing else in the package knows it.

One line per second of the trace, holding the number of requests to send in that second: a
non-negative number, fractional values allowed (0.5 means one request every other second on
average). Blank lines and everything after a `#` are ignored. Example:

    # quiet start
    2
    2.5
    10   # ramp
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

# A written trace keeps rates to this many decimals: a thousandth of a request per second.
RATE_DECIMALS = 3

# A single second beyond this is almost certainly a typo (an extra digit), not a plan.
MAX_RATE_RPS = 100_000.0


class WorkloadError(ValueError):
    """A trace that cannot be used; the message names the file, the line and the offending text."""

    def __init__(self, source: str, line_no: int, text: str, reason: str):
        where = f"{source}:{line_no}" if line_no else source
        shown = f": {text!r}" if text else ""
        super().__init__(f"{where}: {reason}{shown}")
        self.source = source
        self.line_no = line_no
        self.text = text
        self.reason = reason


@dataclass(frozen=True)
class Workload:
    source: str
    rates_rps: tuple[float, ...]  # index = second of the trace

    @property
    def duration_s(self) -> int:
        return len(self.rates_rps)

    @property
    def total_requests(self) -> float:
        return math.fsum(self.rates_rps)


def parse_workload(text: str, source: str = "<trace>") -> Workload:
    rates: list[float] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0].strip()
        if not content:
            continue
        if len(content.split()) != 1:
            raise WorkloadError(source, line_no, raw.strip(), "expected one number per line (requests in that second)")
        try:
            rate = float(content)
        except ValueError:
            raise WorkloadError(source, line_no, raw.strip(), "not a number") from None
        if not math.isfinite(rate) or rate < 0:
            raise WorkloadError(source, line_no, raw.strip(), "expected a finite number >= 0")
        if rate > MAX_RATE_RPS:
            raise WorkloadError(source, line_no, raw.strip(), f"more than {MAX_RATE_RPS:g} requests in one second")
        rates.append(rate)
    if not rates:
        raise WorkloadError(source, 0, "", "no rates found (every line is blank or a comment)")
    if sum(rates) <= 0:
        raise WorkloadError(source, 0, "", "every rate is 0, so there is nothing to send")
    return Workload(source=source, rates_rps=tuple(rates))


def format_workload(rates_rps: Sequence[float], comments: Sequence[str] = ()) -> str:
    """The trace as wl.txt text: the comments first (each line behind `# `), then one rate per line, rounded to
    RATE_DECIMALS (what `parse_workload` reads back); the caller keeps the rates finite, >= 0 and under
    MAX_RATE_RPS."""
    lines = [f"# {line}".rstrip() for comment in comments for line in comment.splitlines() or [""]]
    lines += [_rate_text(rate) for rate in rates_rps]
    return "\n".join(lines) + "\n"


def _rate_text(rate: float) -> str:
    text = f"{rate:.{RATE_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def load_workload(path: str | Path) -> Workload:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkloadError(str(path), 0, "", "no such file") from None
    except IsADirectoryError:
        raise WorkloadError(str(path), 0, "", "is a directory, not a trace file") from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(str(path), 0, "", f"not a text file ({exc.reason})") from None
    except OSError as exc:
        raise WorkloadError(str(path), 0, "", f"cannot read it ({exc.strerror})") from None
    return parse_workload(text, source=str(path))
