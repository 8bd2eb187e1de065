"""`python -m loadtester --find-capacity --url URL [--slo-ms MS] [--replicas N] [--json FILE] [--env-file FILE]`.

Prints the measured table and the values to give the autoscaler (--env-file writes them as the autoscaler's
KEY=VALUE variables, for kustomize or `env`); the last line is always
`capacity: N req/s at saturation, M req/s within the SLO`, for scripts. Exit codes as the load tester's:
0 measured, 1 unreachable or nothing measurable, 2 bad option, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from loadtester.capacity import ProbeError, ProbeSettings, measure, read_info
from loadtester.capacity_report import autoscaler_env, env_file_text, summary_line, table_lines
from loadtester.config import OptionError, check_endpoint, check_file_target, check_url, option_like
from loadtester.http_client import UnreachableError, resolve_target
from loadtester.images import ImageDirError, load_images
from settings import add_flags, read_values, setting

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class ProbeOptions:
    """The flags of `--find-capacity`; those a replay has too are declared as its (`option_like`)."""

    url: str = option_like("url", doc="base URL of the service")
    endpoint: str = option_like("endpoint", doc="path the images are POSTed to")
    slo_ms: float = option_like("slo_ms", doc="latency objective: p95 in ms that the within-SLO rate must keep")
    replicas: int = setting(1, flag="--replicas", metavar="N", unit="replicas", lo=1, hi=100_000, doc=(
        "replicas serving --url while it is measured; per-replica values are divided by it (keep the "
        "autoscaler off meanwhile)"))
    json_path: Path | None = setting(None, flag="--json", metavar="FILE", doc=(
        "also write the whole measurement, with the recommendations, to FILE"))
    env_path: Path | None = setting(None, flag="--env-file", metavar="FILE", doc=(
        "also write the autoscaler's values (CAPACITY_RPS_PER_REPLICA, TARGET_INFLIGHT_PER_REPLICA, SLO_P95_MS) "
        "to FILE as KEY=VALUE lines: k8s/autoscaler-measured.env merges them into the autoscaler's ConfigMap"))
    images: Path = option_like("images", doc="JPEG/PNG files to send")
    step_s: float = setting(ProbeSettings.open_step_s, flag="--step-seconds", metavar="S", unit="s", lo=0, hi=600,
                            lo_open=True, doc=(
                                "length of each open-loop step; the whole probe takes about 10 times this"))
    timeout_s: float = option_like("timeout_s", default=ProbeSettings.timeout_s, doc="per-request timeout")
    seed: int = option_like("seed", doc="seed of the open-loop arrivals")
    quiet: bool = setting(False, flag="-q", flag_aliases=("--quiet",), switch=True,
                          doc="no progress lines on stderr")

    def validate(self) -> "ProbeOptions":
        """Checked beyond the ranges (the URL, the endpoint, where --json goes); raises OptionError."""
        if self.json_path is not None:
            check_file_target("--json", self.json_path)
        if self.env_path is not None:
            check_file_target("--env-file", self.env_path)
        return replace(self, url=check_url(self.url), endpoint=check_endpoint(self.endpoint))

    def probe_settings(self) -> ProbeSettings:
        step_s = self.step_s
        return ProbeSettings(unloaded_s=max(0.5, step_s / 2), closed_step_s=max(0.5, step_s * 0.6),
                             open_step_s=step_s, timeout_s=self.timeout_s, seed=self.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="load_tester.py --find-capacity",
        description="Measure what the service behind --url sustains: saturation throughput (closed loop), the "
                    "latency-versus-load curve (open-loop steps) and the rate within the SLO; print the values "
                    "for the autoscaler's CAPACITY_RPS_PER_REPLICA and TARGET_INFLIGHT_PER_REPLICA.")
    parser.add_argument("--find-capacity", action="store_true", help="this mode (required)")
    add_flags(parser, ProbeOptions)  # values stay text: read_options() converts and checks them
    return parser


def read_options(argv: list[str] | None) -> ProbeOptions:
    """The flags, converted and checked; raises OptionError (argparse exits 2 on a malformed command line)."""
    args = build_parser().parse_args(argv)
    return ProbeOptions(**read_values(ProbeOptions, {}, args, error=OptionError)).validate()


def main(argv: list[str] | None = None) -> int:
    try:
        options = read_options(argv)
        photos = load_images(options.images)
    except (OptionError, ImageDirError) as exc:
        print(f"load_tester: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    say = (lambda _: None) if options.quiet else (lambda text: print(f"probe: {text}", file=sys.stderr, flush=True))
    try:
        target = resolve_target(options.url, options.endpoint)
        report = measure(target, photos, options.probe_settings(), replicas=options.replicas, info=read_info(target),
                         say=say)
    except (UnreachableError, ProbeError) as exc:
        print(f"load_tester: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print("load_tester: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("\n".join(table_lines(report, options.slo_ms)))
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(report.as_dict(options.slo_ms), indent=2) + "\n")
        print(f"measurement: {options.json_path}")
    if options.env_path is not None:
        options.env_path.write_text(env_file_text(autoscaler_env(report, options.slo_ms)))
        print(f"autoscaler values: {options.env_path}")
    print(summary_line(report, options.slo_ms))
    return EXIT_OK
