"""The configuration tables of the docs pages, generated from the settings dataclasses.

Each function reads the fields of one dataclass as `settings.specs()` gives them (default, unit, range,
documentation, as each field's `setting()` declared them) and returns the markdown table as a list of
lines, one row per field in field order.
`tests/test_docs.py` fails when a table in docs/ differs from what its function returns, so a table
cannot drift from the code. To refresh one after changing a setting, print them and paste:

    python docs/tables.py              # every table, each under the page and heading it belongs to
    python docs/tables.py autoscaler   # one of: service, autoscaler, autoscaler-queries, loadtester,
                                       # capacity-probe, local, sim, sim-matrix, sim-tune, torch-wheels
"""

from __future__ import annotations

import sys
from pathlib import Path

from settings import format_number, specs

REPO = Path(__file__).resolve().parent.parent

MiB = 1024 * 1024


def _cell(text: object) -> str:
    """A table cell: pipes escaped, so a value such as `a|b` cannot split the row, and outside code spans
    `<` written as `&lt;`, so a placeholder such as <pidfile> is shown instead of read as an HTML tag."""
    parts = str(text).replace("|", "\\|").split("`")
    return "`".join(part if i % 2 else part.replace("<", "&lt;") for i, part in enumerate(parts))


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], align: tuple[str, ...] | None = None) -> list[str]:
    align = align or ("---",) * len(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return lines


# --- inference/config.py: ServiceConfig ------------------------------------------------------------

def service_rows() -> list[tuple[str, str, str, str, str]]:
    """(variable, default, unit, allowed, meaning) per field of ServiceConfig."""
    from inference.config import ServiceConfig

    rows = []
    for spec in specs(ServiceConfig):
        default = spec.default
        if default == "":
            shown = "(unset)"
        elif spec.unit == "bytes" and isinstance(default, int) and default >= MiB and default % MiB == 0:
            shown = f"{default} ({default // MiB} MiB)"
        else:
            shown = str(default)
        rows.append((f"`{spec.env}`", f"`{shown}`", spec.unit, spec.allowed, spec.doc))
    return rows


def service_table() -> list[str]:
    return _table(("Variable", "Default", "Unit", "Allowed", "Meaning"), service_rows())


# --- autoscaler/config.py: Config -------------------------------------------------------------------

def autoscaler_rows() -> list[tuple[str, str, str, str, str]]:
    """(env var / flag, unit, default, allowed, why) per field of the autoscaler's Config."""
    from autoscaler.config import Config

    rows = []
    for spec in specs(Config):
        default = spec.default
        if spec.name.startswith("query_"):
            shown = "see [the queries](#default-queries)"
        elif default == "":
            shown = f"empty = {spec.zero_means}" if spec.zero_means else "(empty)"
        else:
            shown = f"`{default}`"
            if spec.zero_means:
                shown += f" (0 = {spec.zero_means})"
        rows.append((f"`{spec.env}` / `{spec.flag}`", spec.unit, shown, spec.allowed, spec.doc))
    return rows


def autoscaler_table() -> list[str]:
    return _table(("Env var / flag", "Unit", "Default", "Allowed", "Why this default"), autoscaler_rows())


def autoscaler_queries_table() -> list[str]:
    """The default PromQL of every query_* field, as sent before {job} and {window} are filled in."""
    from autoscaler.config import Config

    rows = []
    for spec in specs(Config):
        if spec.name.startswith("query_"):
            template = spec.default.format(job="{job}", window="{window}")  # undo the doubled literal braces
            rows.append((f"`{spec.env}`", f"`{template}`"))
    return _table(("Knob", "Default PromQL"), rows)


# --- the command lines declared with settings/: the load tester, its capacity probe, the simulator -------

def option_rows(cls: type) -> list[tuple[str, str, str, str]]:
    """(option, default, allowed, meaning) per field of a command line's settings dataclass; choices are
    shown with the option, so their 'Allowed' cell is empty."""
    rows = []
    for spec in specs(cls):
        option = ", ".join((spec.flag, *spec.flag_aliases))
        if spec.choices:
            option += f" {'|'.join(spec.choices)}"
        elif spec.metavar:
            option += f" {spec.metavar}"
        if spec.required:
            shown = "required"
        elif spec.default_text:
            stated = spec.default_text
            shown = f"`{stated}`" if "/" in stated else stated  # a path reads as one, and keeps its <...>
        elif spec.switch:
            shown = "off"
        elif spec.default is None:
            shown = "none"
        else:
            shown = f"`{format_number(spec.default)}`"
        allowed = "" if spec.choices else " ".join(part for part in (spec.allowed, spec.unit) if spec.allowed and part)
        rows.append((f"`{option}`", shown, allowed, spec.doc))
    return rows


def option_table(cls: type, first: str = "Option") -> list[str]:
    return _table((first, "Default", "Allowed", "Meaning"), option_rows(cls))


def loadtester_table() -> list[str]:
    from loadtester.config import Options

    return option_table(Options)


def capacity_probe_table() -> list[str]:
    from loadtester.capacity_cli import ProbeOptions

    return option_table(ProbeOptions)


def sim_table() -> list[str]:
    from sim.cli import SimOptions

    return option_table(SimOptions, "Flag")


def sim_matrix_table() -> list[str]:
    from sim.matrix import MatrixOptions

    return option_table(MatrixOptions, "Flag")


def sim_tune_table() -> list[str]:
    from sim.tune_cli import TuneOptions

    return option_table(TuneOptions, "Flag")


def torch_wheels_table() -> list[str]:
    """`make setup`'s torch step: set through the environment (make passes it on), or its flags."""
    from containers.torch_wheels import TorchOptions

    rows = [(f"`{spec.env}` / {option}" if spec.env else option, *rest)
            for spec, (option, *rest) in zip(specs(TorchOptions), option_rows(TorchOptions))]
    return _table(("Variable / flag", "Default", "Allowed", "Meaning"), rows)


# --- local/config.py: Options (the generator lives with the options) ----------------------------------

def local_table() -> list[str]:
    from local.config import options_table

    return options_table()


# page, heading the table sits under, generator
TABLES = {
    "service": ("docs/service.md", "Configuration", service_table),
    "autoscaler": ("docs/autoscaler.md", "Configuration", autoscaler_table),
    "autoscaler-queries": ("docs/autoscaler.md", "Default queries", autoscaler_queries_table),
    "loadtester": ("docs/loadtester.md", "Options", loadtester_table),
    "capacity-probe": ("docs/loadtester.md", "Finding a deployment's capacity: `--find-capacity`",
                       capacity_probe_table),
    "local": ("docs/local-stack.md", "Options", local_table),
    "sim": ("docs/simulator.md", "The command line", sim_table),
    "sim-matrix": ("docs/simulator.md", "The matrix's flags", sim_matrix_table),
    "sim-tune": ("docs/simulator.md", "The tuner's flags", sim_tune_table),
    "torch-wheels": ("docs/install.md", "Where torch comes from", torch_wheels_table),
}


def main(argv: list[str]) -> int:
    names = argv or list(TABLES)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        print(f"unknown table(s) {', '.join(unknown)}; expected some of {', '.join(TABLES)}", file=sys.stderr)
        return 2
    for i, name in enumerate(names):
        page, heading, generate = TABLES[name]
        if len(names) > 1:
            print(("\n" if i else "") + f"<!-- {page}, under '{heading}' -->")
        print("\n".join(generate()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
