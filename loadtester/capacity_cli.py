"""`python -m loadtester --find-capacity --url URL [--slo-ms MS] [--replicas N] [--json FILE]`.

Prints the measured table and the values to give the autoscaler; the last line is always
`capacity: N req/s at saturation, M req/s within the SLO`, for scripts. Exit codes as the load tester's:
0 measured, 1 unreachable or nothing measurable, 2 bad option, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loadtester.capacity import ProbeError, ProbeSettings, measure, read_info
from loadtester.capacity_report import summary_line, table_lines
from loadtester.config import BUNDLED_IMAGES, OptionError, _check_url, _float_in, _int_in
from loadtester.http_client import UnreachableError, resolve_target
from loadtester.images import ImageDirError, load_images

EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="load_tester.py --find-capacity",
        description="Measure what the service behind --url sustains: saturation throughput (closed loop), the "
                    "latency-versus-load curve (open-loop steps) and the rate within the SLO; print the values "
                    "for the autoscaler's CAPACITY_RPS_PER_REPLICA and TARGET_INFLIGHT_PER_REPLICA.")
    parser.add_argument("--find-capacity", action="store_true", help="this mode (required)")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the service (default: %(default)s)")
    parser.add_argument("--endpoint", default="/predict", help="path requests are POSTed to (default: %(default)s)")
    parser.add_argument("--slo-ms", default="500", metavar="MS",
                        help="latency objective: p95 in ms that the within-SLO rate must keep (default: %(default)s)")
    parser.add_argument("--replicas", default="1", metavar="N",
                        help="replicas serving --url while it is measured; per-replica values are divided by it "
                             "(default: %(default)s)")
    parser.add_argument("--json", dest="json_path", default=None, metavar="FILE",
                        help="also write the whole measurement, with the recommendations, to FILE")
    parser.add_argument("--images", default=str(BUNDLED_IMAGES), metavar="DIR",
                        help="JPEG/PNG files to send (default: the bundled photos)")
    parser.add_argument("--step-seconds", default=str(ProbeSettings.open_step_s), metavar="S",
                        help="length of each open-loop step, s; the whole probe takes about 10 times this "
                             "(default: %(default)s)")
    parser.add_argument("--timeout", default=str(ProbeSettings.timeout_s), metavar="S",
                        help="per-request timeout, s (default: %(default)s)")
    parser.add_argument("--seed", default="0", metavar="N", help="seed of the open-loop arrivals (default: 0)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def settings_from(args: argparse.Namespace) -> ProbeSettings:
    step_s = _float_in("--step-seconds", args.step_seconds, 0.0, 600.0, low_open=True)
    return ProbeSettings(unloaded_s=max(0.5, step_s / 2), closed_step_s=max(0.5, step_s * 0.6), open_step_s=step_s,
                         timeout_s=_float_in("--timeout", args.timeout, 0.0, 3600.0, low_open=True),
                         seed=_int_in("--seed", args.seed, 0, 2**32 - 1))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        url = _check_url(args.url)
        if not args.endpoint.startswith("/"):
            raise OptionError("--endpoint", args.endpoint, "a path starting with '/'")
        slo_ms = _float_in("--slo-ms", args.slo_ms, 0.0, 3_600_000.0, low_open=True)
        replicas = _int_in("--replicas", args.replicas, 1, 100_000)
        settings = settings_from(args)
        photos = load_images(args.images)
        json_path = Path(args.json_path) if args.json_path else None
        if json_path is not None and not json_path.parent.is_dir():
            raise OptionError("--json", args.json_path, "a file in an existing directory")
    except (OptionError, ImageDirError) as exc:
        print(f"load_tester: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    say = (lambda _: None) if args.quiet else (lambda text: print(f"probe: {text}", file=sys.stderr, flush=True))
    try:
        target = resolve_target(url, args.endpoint)
        report = measure(target, photos, settings, replicas=replicas, info=read_info(target), say=say)
    except (UnreachableError, ProbeError) as exc:
        print(f"load_tester: error: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print("load_tester: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("\n".join(table_lines(report, slo_ms)))
    if json_path is not None:
        json_path.write_text(json.dumps(report.as_dict(slo_ms), indent=2) + "\n")
        print(f"measurement: {json_path}")
    print(summary_line(report, slo_ms))
    return EXIT_OK
