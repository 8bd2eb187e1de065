"""The load tester's options: every default and every range check lives here and nowhere else.

The fields are declared with settings/, which converts and range-checks each value and words the errors;
this module adds the checks no range expresses (URLs, paths, the open-file limit), which the capacity
probe's options (loadtester/capacity_cli.py) share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from loadtester.fd_limit import fd_limit_reachable, max_inflight_limit
from loadtester.trace_sizing import PEAK_MARGIN, PEAK_WINDOW_S
from settings import SettingError, check_fields, expected, format_number, setting, specs

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DEFAULT_TRACE = REPO_DIR / "wl.txt"
BUNDLED_IMAGES = PACKAGE_DIR / "images"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_ENDPOINT = "/predict"
ARRIVALS = ("poisson", "uniform")


class OptionError(SettingError):
    """A bad option value; the message names the option, the value and what is allowed."""


def default_out_dir() -> Path:
    import time

    return Path("runs") / time.strftime("loadtest-%Y%m%d-%H%M%S", time.gmtime())


@dataclass(frozen=True)
class Options:
    url: str = setting(DEFAULT_URL, flag="--url", metavar="URL", doc=(
        "base URL of the service, http://HOST:PORT"))
    endpoint: str = setting(DEFAULT_ENDPOINT, flag="--endpoint", metavar="PATH", doc="path requests are POSTed to")
    trace: Path = setting(DEFAULT_TRACE, flag="--trace", metavar="FILE", default_text="the repository's wl.txt",
                          doc="workload trace: one line per second, requests in that second")
    images: Path = setting(BUNDLED_IMAGES, flag="--images", metavar="DIR", default_text="the bundled photos", doc=(
        "directory of JPEG/PNG files to send, cycled in name order"))
    arrivals: str = setting("poisson", flag="--arrivals", choices=ARRIVALS, doc=(
        "arrival times within each second: poisson (random, seeded) or uniform (evenly spaced)"))
    seed: int = setting(0, flag="--seed", metavar="N", lo=0, hi=2**32 - 1, doc=(
        "random seed of the poisson arrivals; the same seed gives the same schedule"))
    scale: float | None = setting(None, flag="--scale", metavar="X", lo=0, hi=1000, lo_open=True, default_text="1",
                                  doc=("multiply every rate of the trace by this factor (bigger clusters); not with "
                                       "--peak-replicas or --peak-rps"))
    peak_replicas: int | None = setting(None, flag="--peak-replicas", metavar="N", lo=1, hi=10000, doc=(
        f"scale the trace so its peak (the highest {PEAK_WINDOW_S:g} s mean rate, after --speedup) needs N "
        f"replicas of --capacity-rps each: (N - {PEAK_MARGIN:g}) x that capacity, as the simulator sizes it"))
    capacity_rps: float | None = setting(None, flag="--capacity-rps", metavar="R", unit="req/s", lo=0, hi=1e6,
                                         lo_open=True, doc=(
                                             "one replica's rate within the SLO, for --peak-replicas: the "
                                             "capacity probe's CAPACITY_RPS_PER_REPLICA"))
    peak_rps: float | None = setting(None, flag="--peak-rps", metavar="R", unit="req/s", lo=0, hi=1e6, lo_open=True,
                                     doc=(f"scale the trace so its peak (the highest {PEAK_WINDOW_S:g} s mean rate, "
                                          "after --speedup) is R req/s"))
    speedup: float = setting(1.0, flag="--speedup", metavar="X", lo=0, hi=1000, lo_open=True, doc=(
        "replay the trace this many times faster (time compression; rates scale up too)"))
    duration_s: float | None = setting(None, flag="--duration", metavar="S", lo=0, hi=7 * 86400, lo_open=True,
                                       default_text="the whole trace", doc=(
                                           "stop the replay after this many seconds of wall-clock time"))
    timeout_s: float = setting(30.0, flag="--timeout", metavar="S", lo=0, hi=3600, lo_open=True, doc=(
        "per-request timeout in seconds, from sending to the end of the response"))
    # validate() also holds it to the open-file limit less spares (loadtester/fd_limit.py).
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
        """A copy with every value converted to its field's type (the command line passes text, the Python
        API whatever it was given) and checked; raises OptionError naming the first bad one."""
        values = check_fields(self, OptionError)
        values["max_inflight"] = _check_max_inflight(values["max_inflight"])
        values["url"] = check_url(values["url"])
        _check_sizing(values)
        check_endpoint(values["endpoint"])
        if values["status_file"] is not None:
            check_file_target("--status-file", values["status_file"])
        if values["prometheus"] is not None:
            values["prometheus"] = check_url(values["prometheus"], option="--prometheus")
        return replace(self, **values)

    def as_dict(self) -> dict:
        """JSON-ready values, recorded in summary.json so a run can be repeated."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def _check_sizing(values: dict) -> None:
    """At most one way to size the trace: --scale, --peak-replicas (with --capacity-rps) or --peak-rps."""
    given = [(flag, values[name]) for name, flag in (("scale", "--scale"), ("peak_replicas", "--peak-replicas"),
                                                     ("peak_rps", "--peak-rps")) if values[name] is not None]
    if len(given) > 1:
        (first, _), (second, value) = given[:2]
        raise OptionError.not_allowed(second, format_number(value), f"not with {first}",
                                      f"no {first} with it (the trace is sized one way: --scale, --peak-replicas "
                                      "or --peak-rps)")
    if values["peak_replicas"] is not None and values["capacity_rps"] is None:
        raise OptionError.not_allowed("--peak-replicas", format_number(values["peak_replicas"]), "with --capacity-rps",
                                      "--capacity-rps R too (one replica's within-SLO rate: the capacity probe's "
                                      "CAPACITY_RPS_PER_REPLICA)")
    if values["capacity_rps"] is not None and values["peak_replicas"] is None:
        raise OptionError.not_allowed("--capacity-rps", format_number(values["capacity_rps"]), "with --peak-replicas",
                                      "--peak-replicas N too (it sizes nothing on its own)")


def check_chosen_scale(scale: float, sized_by: str, given: object) -> float:
    """The scale that --peak-replicas or --peak-rps chose, held to --scale's range."""
    spec = next(s for s in specs(Options) if s.name == "scale")
    if not spec.lo < scale <= spec.hi:
        raise OptionError.not_allowed(sized_by, format_number(given), spec.allowed,
                                      f"a value giving a scale in {spec.allowed} (it gives {scale:g})")
    return scale


def option_like(name: str, **changes):
    """A field declared as Options' `name` is (its flag, type, range), with `changes` (default, doc): what
    the capacity probe's options share with a replay's."""
    f = Options.__dataclass_fields__[name]
    declared = {**f.metadata, **changes}
    return setting(declared.pop("default", f.default), **declared)


def _check_max_inflight(value: int) -> int:
    """Each request in flight holds a socket: at most the open-file limit (once raised) less spares."""
    limit = max_inflight_limit()
    if value > limit:
        spec = replace(next(s for s in specs(Options) if s.name == "max_inflight"), hi=limit)
        raise OptionError.not_allowed("--max-inflight", value, spec.allowed,
                                      f"{expected(spec)} (open-file limit {fd_limit_reachable()})")
    return value


def check_url(value: object, option: str = "--url") -> str:
    """An http(s) URL with a host, without its trailing slash."""
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionError.not_allowed(option, value, "an http:// or https:// URL with a host, e.g. " + DEFAULT_URL)
    try:
        parts.port
    except ValueError:
        raise OptionError.not_allowed(option, value, "a port between 1 and 65535") from None
    return text


def check_endpoint(value: object, option: str = "--endpoint") -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        raise OptionError.not_allowed(option, value, "a path starting with '/' and without spaces")
    return value


def check_file_target(option: str, path: Path) -> Path:
    """A file the run will write: its directory must exist."""
    if not path.parent.is_dir():
        raise OptionError.not_allowed(option, path, "a file in an existing directory")
    return path
