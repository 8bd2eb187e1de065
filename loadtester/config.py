"""The load tester's options: every default and every range check lives here and nowhere else.

The fields are declared with settings/ (the shared machinery of the four configuration modules), which
converts and range-checks each value; this module adds the checks no range expresses (URLs, paths, the
open-file limit) and the helpers the capacity probe's command line uses for its own options.
"""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from settings import Messages, SettingError, Spec, check, check_fields, setting, specs

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DEFAULT_TRACE = REPO_DIR / "wl.txt"
BUNDLED_IMAGES = PACKAGE_DIR / "images"
ARRIVALS = ("poisson", "uniform")

# Sockets beyond the in-flight cap: the event loop, log files, the preflight probe, Prometheus queries.
_SPARE_FDS = 64


class OptionError(SettingError):
    """A bad option value; the message names the option, the value and what is allowed."""

    def __init__(self, option: str, value: object, allowed: str):
        super().__init__(f"{option}: {value!r} is not allowed; expected {allowed}", option, value)
        self.option = option
        self.allowed = allowed


# Every error reads OPTION: VALUE is not allowed; expected WHAT. OptionError writes the first part, so the
# templates here say only WHAT ("a number > 0 and <= 1000", "poisson or uniform").
MESSAGES = Messages(
    key="flag",
    bad_type="{expected}",
    not_a_choice="{choices}",
    out_of_range="{expected}",
    type_names={int: "a whole number between {lo} and {hi}", float: "a number {lo_op} {lo} and <= {hi}"},
    choice_separator=" or ",
    error=lambda allowed, option, value: OptionError(option, value, allowed))


def default_out_dir() -> Path:
    import time

    return Path("runs") / time.strftime("loadtest-%Y%m%d-%H%M%S", time.gmtime())


@dataclass
class Options:
    url: str = setting("http://127.0.0.1:8000", flag="--url", metavar="URL", doc=(
        "base URL of the service, http://HOST:PORT"))
    endpoint: str = setting("/predict", flag="--endpoint", metavar="PATH", doc="path requests are POSTed to")
    trace: Path = setting(DEFAULT_TRACE, flag="--trace", metavar="FILE", default_text="the repository's wl.txt",
                          doc="workload trace: one line per second, requests in that second")
    images: Path = setting(BUNDLED_IMAGES, flag="--images", metavar="DIR", default_text="the bundled photos", doc=(
        "directory of JPEG/PNG files to send, cycled in name order"))
    arrivals: str = setting("poisson", flag="--arrivals", choices=ARRIVALS, doc=(
        "arrival times within each second: poisson (random, seeded) or uniform (evenly spaced)"))
    seed: int = setting(0, flag="--seed", metavar="N", lo=0, hi=2**32 - 1, doc=(
        "random seed of the poisson arrivals; the same seed gives the same schedule"))
    scale: float = setting(1.0, flag="--scale", metavar="X", lo=0, hi=1000, lo_open=True, doc=(
        "multiply every rate of the trace by this factor (bigger clusters)"))
    speedup: float = setting(1.0, flag="--speedup", metavar="X", lo=0, hi=1000, lo_open=True, doc=(
        "replay the trace this many times faster (time compression; rates scale up too)"))
    duration_s: float | None = setting(None, flag="--duration", metavar="S", lo=0, hi=7 * 86400, lo_open=True,
                                       default_text="the whole trace", doc=(
                                           "stop the replay after this many seconds of wall-clock time"))
    timeout_s: float = setting(30.0, flag="--timeout", metavar="S", lo=0, hi=3600, lo_open=True, doc=(
        "per-request timeout in seconds, from sending to the end of the response"))
    # hi: the open-file limit less _SPARE_FDS, known only when validate() raises the soft limit.
    max_inflight: int = setting(1000, flag="--max-inflight", metavar="N", lo=1, hi=1 << 20, doc=(
        "safety cap on requests in flight; requests over it are counted as dropped, never delayed"))
    out: Path = setting(default_factory=default_out_dir, flag="--out", metavar="DIR",
                        default_text="runs/loadtest-<UTC time>",
                        doc="directory for requests.csv, summary.json, timeline.png")
    slo_ms: float = setting(500.0, flag="--slo-ms", metavar="MS", lo=0, hi=3_600_000, lo_open=True, doc=(
        "latency objective in milliseconds, for the SLO attainment figures and the plot"))
    window_s: float = setting(10.0, flag="--window", metavar="S", lo=0, hi=3600, lo_open=True, doc=(
        "length in seconds of the windows whose p95 is compared with the SLO"))
    prometheus: str | None = setting(None, flag="--prometheus", metavar="URL", doc=(
        "Prometheus base URL; when given, the replica count over the run is fetched and plotted"))
    status_file: Path | None = setting(None, flag="--status-file", metavar="FILE", doc=(
        "rewrite FILE every second with a JSON snapshot of the replay (elapsed, offered and achieved req/s, "
        "p95 of the last window, errors), for a program watching the run"))
    progress: bool = setting(True, flag="--no-progress", switch=True, doc="do not show the live progress bar")

    def validate(self) -> "Options":
        """Check every value and convert it to its field's type (the command line passes text, the Python
        API whatever it was given); raise OptionError naming the first bad one."""
        for name, value in check_fields(self, MESSAGES, skip={"max_inflight"}).items():
            setattr(self, name, value)
        self.max_inflight = _check_max_inflight(self.max_inflight)
        self.url = _check_url(self.url)
        endpoint = self.endpoint
        if not isinstance(endpoint, str) or not endpoint.startswith("/") or any(c.isspace() for c in endpoint):
            raise OptionError("--endpoint", self.endpoint, "a path starting with '/' and without spaces")
        if self.status_file is not None and not self.status_file.parent.is_dir():
            raise OptionError("--status-file", str(self.status_file), "a file in an existing directory")
        if self.prometheus is not None:
            self.prometheus = _check_url(self.prometheus, option="--prometheus")
        return self

    def as_dict(self) -> dict:
        """JSON-ready values, recorded in summary.json so a run can be repeated."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def max_inflight_allowed() -> int:
    """Each request in flight holds a socket, so the cap is the open-file limit (raised first) less spares."""
    return max(1, _raise_fd_limit() - _SPARE_FDS)


def _check_max_inflight(value: object) -> int:
    fd_limit = _raise_fd_limit()
    spec = next(s for s in specs(Options) if s.name == "max_inflight")
    try:
        return check(replace(spec, hi=max_inflight_allowed()), value, MESSAGES)
    except OptionError as exc:
        raise OptionError(exc.option, exc.value, f"{exc.allowed} (open-file limit {fd_limit})") from None


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


# The capacity probe's options are no fields of Options; they get the same checks and messages.

def _float_in(option: str, value: object, low: float, high: float, low_open: bool = False) -> float:
    return check(Spec(option, float, lo=low, hi=high, lo_open=low_open, flag=option), value, MESSAGES)


def _int_in(option: str, value: object, low: int, high: int) -> int:
    return check(Spec(option, int, lo=low, hi=high, flag=option), value, MESSAGES)


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
