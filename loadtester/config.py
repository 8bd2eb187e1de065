"""The load tester's options: every default and every range check lives here and nowhere else."""

from __future__ import annotations

import math
import resource
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DEFAULT_TRACE = REPO_DIR / "wl.txt"
BUNDLED_IMAGES = PACKAGE_DIR / "images"
ARRIVALS = ("poisson", "uniform")

# Sockets beyond the in-flight cap: the event loop, log files, the preflight probe, Prometheus queries.
_SPARE_FDS = 64


class OptionError(ValueError):
    """A bad option value; the message names the option, the value and what is allowed."""

    def __init__(self, option: str, value: object, allowed: str):
        super().__init__(f"{option}: {value!r} is not allowed; expected {allowed}")
        self.option = option
        self.value = value
        self.allowed = allowed


def _flag(name: str, help_text: str, **extra) -> dict:
    """Field metadata: the command-line flag that sets it and its help text (units included)."""
    return {"flag": name, "help": help_text, **extra}


def default_out_dir() -> Path:
    import time

    return Path("runs") / time.strftime("loadtest-%Y%m%d-%H%M%S", time.gmtime())


@dataclass
class Options:
    url: str = field(default="http://127.0.0.1:8000", metadata=_flag(
        "--url", metavar="URL", help_text="base URL of the service, http://HOST:PORT"))
    endpoint: str = field(default="/predict", metadata=_flag(
        "--endpoint", metavar="PATH", help_text="path requests are POSTed to"))
    trace: Path = field(default=DEFAULT_TRACE, metadata=_flag(
        "--trace", metavar="FILE", help_text="workload trace: one line per second, requests in that second (default: the repository's wl.txt)"))
    images: Path = field(default=BUNDLED_IMAGES, metadata=_flag(
        "--images", metavar="DIR", help_text="directory of JPEG/PNG files to send, cycled in name order (default: the bundled photos)"))
    arrivals: str = field(default="poisson", metadata=_flag(
        "--arrivals", "arrival times within each second: poisson (random, seeded) or uniform (evenly spaced)",
        choices=ARRIVALS))
    seed: int = field(default=0, metadata=_flag(
        "--seed", metavar="N", help_text="random seed of the poisson arrivals; the same seed gives the same schedule"))
    scale: float = field(default=1.0, metadata=_flag(
        "--scale", metavar="X", help_text="multiply every rate of the trace by this factor (bigger clusters)"))
    speedup: float = field(default=1.0, metadata=_flag(
        "--speedup", metavar="X", help_text="replay the trace this many times faster (time compression; rates scale up too)"))
    duration_s: float | None = field(default=None, metadata=_flag(
        "--duration", metavar="S", help_text="stop the replay after this many seconds of wall-clock time (default: the whole trace)"))
    timeout_s: float = field(default=30.0, metadata=_flag(
        "--timeout", metavar="S", help_text="per-request timeout in seconds, from sending to the end of the response"))
    max_inflight: int = field(default=1000, metadata=_flag(
        "--max-inflight", metavar="N", help_text="safety cap on requests in flight; requests over it are counted as dropped, never delayed"))
    out: Path = field(default_factory=default_out_dir, metadata=_flag(
        "--out", metavar="DIR", help_text="directory for requests.csv, summary.json, timeline.png (default: runs/loadtest-<UTC time>)"))
    slo_ms: float = field(default=500.0, metadata=_flag(
        "--slo-ms", metavar="MS", help_text="latency objective in milliseconds, for the SLO attainment figures and the plot"))
    window_s: float = field(default=10.0, metadata=_flag(
        "--window", metavar="S", help_text="length in seconds of the windows whose p95 is compared with the SLO"))
    prometheus: str | None = field(default=None, metadata=_flag(
        "--prometheus", metavar="URL", help_text="Prometheus base URL; when given, the replica count over the run is fetched and plotted"))
    status_file: Path | None = field(default=None, metadata=_flag(
        "--status-file", metavar="FILE", help_text="rewrite FILE every second with a JSON snapshot of the replay "
        "(elapsed, offered and achieved req/s, p95 of the last window, errors), for a program watching the run"))
    progress: bool = field(default=True, metadata=_flag(
        "--no-progress", "do not show the live progress bar", negate=True))

    def validate(self) -> "Options":
        """Check every value, normalise types; raise OptionError naming the first bad one."""
        self.url = _check_url(self.url)
        if not isinstance(self.endpoint, str) or not self.endpoint.startswith("/") or any(c.isspace() for c in self.endpoint):
            raise OptionError("--endpoint", self.endpoint, "a path starting with '/' and without spaces")
        self.trace = Path(self.trace)
        self.images = Path(self.images)
        self.out = Path(self.out)
        if self.status_file is not None:
            self.status_file = Path(self.status_file)
            if not self.status_file.parent.is_dir():
                raise OptionError("--status-file", str(self.status_file), "a file in an existing directory")
        if self.arrivals not in ARRIVALS:
            raise OptionError("--arrivals", self.arrivals, " or ".join(ARRIVALS))
        self.seed = _int_in("--seed", self.seed, 0, 2**32 - 1)
        self.scale = _float_in("--scale", self.scale, 0.0, 1000.0, low_open=True)
        self.speedup = _float_in("--speedup", self.speedup, 0.0, 1000.0, low_open=True)
        if self.duration_s is not None:
            self.duration_s = _float_in("--duration", self.duration_s, 0.0, 7 * 86400.0, low_open=True)
        self.timeout_s = _float_in("--timeout", self.timeout_s, 0.0, 3600.0, low_open=True)
        fd_limit = _raise_fd_limit()
        self.max_inflight = _int_in("--max-inflight", self.max_inflight, 1, max(1, fd_limit - _SPARE_FDS),
                                    why=f" (open-file limit {fd_limit})")
        self.slo_ms = _float_in("--slo-ms", self.slo_ms, 0.0, 3_600_000.0, low_open=True)
        self.window_s = _float_in("--window", self.window_s, 0.0, 3600.0, low_open=True)
        if self.prometheus is not None:
            self.prometheus = _check_url(self.prometheus, option="--prometheus")
        self.progress = bool(self.progress)
        return self

    def as_dict(self) -> dict:
        """JSON-ready values, recorded in summary.json so a run can be repeated."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def option_fields():
    """(field, flag metadata) pairs, for building the command line from the one definition above."""
    return [(f, f.metadata) for f in fields(Options)]


def _check_url(value: object, option: str = "--url") -> str:
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionError(option, value, "an http:// or https:// URL with a host, e.g. http://127.0.0.1:8000")
    try:
        parts.port
    except ValueError:
        raise OptionError(option, value, "a port between 1 and 65535") from None
    return text


def _float_in(option: str, value: object, low: float, high: float, low_open: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    low_ok = number > low if low_open else number >= low
    if not (math.isfinite(number) and low_ok and number <= high):
        bound = ">" if low_open else ">="
        raise OptionError(option, value, f"a number {bound} {low:g} and <= {high:g}")
    return number


def _int_in(option: str, value: object, low: int, high: int, why: str = "") -> int:
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise OptionError(option, value, f"a whole number between {low} and {high}{why}") from None
    if not low <= number <= high:
        raise OptionError(option, value, f"a whole number between {low} and {high}{why}")
    return number


def _raise_fd_limit() -> int:
    """Lift the soft open-file limit to the hard one: each request in flight holds a socket."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return hard if soft == resource.RLIM_INFINITY else soft
