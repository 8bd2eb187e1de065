"""`python -m local demo|compare [options]` (`make demo`, `make compare`).

Exit status: 0 done, 1 a part failed to start or died (its log is printed), 2 bad option, 130 interrupted.
Whatever happens, every child is stopped before this exits.
"""

from __future__ import annotations

import shlex
import signal
import sys

from comparison.targets import target_lines
from local.config import OptionError, load_options
from local.machine import describe_machine
from processes.children import StartError
from local.report import TIMELINE, console_summary, write_comparison, write_demo_report
from local.run import execute, plan_for, prepare_trace, size_run
from planning.sizing import Sizing
from local.stack import check_ports
from processes.services import prometheus_binary


class Interrupted(Exception):
    pass


def _on_signal(signum, frame):
    # Once: the stack's `with` blocks stop every child on the way out; a second signal must not cut that short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        options = load_options(argv)
    except OptionError as exc:
        print(f"local: bad option: {exc}\n(python -m local --help lists every option)", file=sys.stderr)
        return 2
    command = "python -m local " + shlex.join(argv)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        prometheus_binary()
        check_ports(options)
        return demo(options, command) if options.mode == "demo" else compare(options, command)
    except StartError as exc:
        print(f"local: {exc}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt):
        print("local: interrupted; every process of the run was stopped", file=sys.stderr)
        return 130


def _sized(options, out_dir) -> Sizing:
    sizing = size_run(options, out_dir)
    print(f"local: sizing from {sizing.source}:", flush=True)
    for name, value, how in sizing.derivation:
        print(f"local:   {name}: {value} ({how})", flush=True)
    return sizing


def demo(options, command: str) -> int:
    run_dir = options.run_dir()
    machine = describe_machine()
    sizing = _sized(options, run_dir)
    trace, scale, trace_text = prepare_trace(options, sizing, run_dir)
    plan = plan_for(options.policy, options, trace, scale, run_dir)
    print(f"local: run directory {run_dir}/; trace: {trace_text}", flush=True)
    result = execute(options, sizing, plan)
    report = write_demo_report(run_dir, options, sizing, result, machine, trace_text, command)
    print(console_summary(run_dir, result))
    _check_stopped(result)
    print(f"report: {report} (timeline: {run_dir / TIMELINE})")
    return 0


def compare(options, command: str) -> int:
    out_dir = options.run_dir()
    machine = describe_machine()
    sizing = _sized(options, out_dir)
    trace, scale, trace_text = prepare_trace(options, sizing, out_dir)
    names = options.compare_runs
    # Interleaved (A B A B): a drift of the machine's speed then hits every policy alike.
    order = [(k, name) for k in range(options.repeat) for name in names]
    print(f"local: comparison in {out_dir}/; trace: {trace_text}; runs: {', '.join(names)}, "
          f"{options.repeat} time(s) each, interleaved", flush=True)
    results: dict[str, list[dict]] = {name: [] for name in names}
    failed = {}
    for index, (k, name) in enumerate(order):
        run_name = name if options.repeat == 1 else f"{name}-{k + 1}"
        plan = plan_for(name, options, trace, scale, out_dir / run_name)
        label = f"run {index + 1}/{len(order)} {run_name}"
        print(f"\nlocal: === {label} ===", flush=True)
        try:
            check_ports(options)  # the previous run's servers must be gone
            result = execute(options, sizing, plan, label=label)
            _check_stopped(result)
        except StartError as exc:
            # One broken run must not throw away the others' half hour: report it and go on.
            print(f"local: the {run_name} run failed: {exc}", file=sys.stderr, flush=True)
            failed[run_name] = str(exc).splitlines()[0]
            continue
        results[name].append(result)
        write_demo_report(plan.run_dir, options, sizing, result, machine, trace_text, command)
        print(console_summary(plan.run_dir, result), flush=True)
    if not any(results.values()):
        raise StartError("every run of the comparison failed")
    outcome = write_comparison(out_dir, options, sizing, results, machine, trace_text, command, failed)
    print("\n" + "\n".join(outcome["table"]) + "\n\n" + "\n".join(target_lines(outcome["targets"])))
    for line in outcome["indistinguishable"]:
        print(line)
    for name, why in failed.items():
        print(f"failed run {name}: {why}")
    print(f"report: {out_dir / 'report.md'} (plot: {out_dir / 'comparison.png'})")
    return 1 if failed else 0


def _check_stopped(result: dict) -> None:
    stop = result["stop"]
    if stop.get("processes_left") or stop.get("ports_listening"):
        raise StartError(f"after stopping, processes {stop['processes_left']} and ports {stop['ports_listening']} "
                         "were still there")


if __name__ == "__main__":
    sys.exit(main())
