"""The configuration tables of the docs pages, generated from the settings dataclasses.

Each function reads the fields of one dataclass as `settings.specs()` gives them (default, unit, range,
documentation, as each field's `setting()` declared them) and returns the markdown table as a list of
lines, one row per field in field order.
`tests/test_docs.py` fails when a table in docs/ differs from what its function returns, so a table
cannot drift from the code. To refresh one after changing a setting, print them and paste:

    python docs/tables.py              # every table, each under the page and heading it belongs to
    python docs/tables.py autoscaler   # one of: service, autoscaler, autoscaler-queries, loadtester, local,
                                       # sim, sim-matrix
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python docs/tables.py` puts docs/ first on the path, not the repository
    sys.path.insert(0, str(REPO))

from settings import format_number, specs  # noqa: E402

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


# --- loadtester/config.py: Options ------------------------------------------------------------------

def loadtester_rows() -> list[tuple[str, str, str]]:
    """(option, default, meaning) per field of the load tester's Options."""
    from loadtester.config import Options

    rows = []
    for spec in specs(Options):
        if spec.choices:
            option = f"{spec.flag} {'|'.join(spec.choices)}"
        elif spec.metavar:
            option = f"{spec.flag} {spec.metavar}"
        else:
            option = spec.flag
        if spec.default_text:
            stated = spec.default_text
            shown = f"`{stated}`" if "/" in stated else stated  # a path reads as one, and keeps its <...>
        elif spec.switch:
            shown = "off"
        elif spec.default is None:
            shown = "none"
        else:
            shown = f"`{format_number(spec.default)}`"
        rows.append((f"`{option}`", shown, spec.doc))
    return rows


def loadtester_table() -> list[str]:
    return _table(("Option", "Default", "Meaning"), loadtester_rows())


# --- local/config.py: Options (the generator lives with the options) ----------------------------------

def local_table() -> list[str]:
    from local.config import options_table

    return options_table()


# --- sim/cli.py and sim/matrix.py: the simulator's command lines (argparse) -----------------------------

def _flags_table(parser) -> list[str]:
    """(flag, default, meaning) per option of an argparse parser, in the order it declares them."""
    rows = []
    for action in parser._actions:  # argparse keeps no public list of its options
        if not action.option_strings or action.dest == "help":
            continue
        flag = ", ".join(action.option_strings)
        if action.choices:
            flag += " " + "|".join(action.choices)
        elif action.metavar or action.nargs != 0:
            flag += " " + (action.metavar or action.dest.upper())
        help_text = (action.help or "") % {**vars(action), "prog": parser.prog}
        if action.required:
            shown = "required"
        elif action.default is None:
            shown = "none"
        else:
            shown = f"`{action.default}`"
        rows.append((f"`{flag}`", shown, help_text))
    return _table(("Flag", "Default", "Meaning"), rows)


def sim_table() -> list[str]:
    from sim.cli import build_parser

    return _flags_table(build_parser())


def sim_matrix_table() -> list[str]:
    from sim.matrix import build_parser

    return _flags_table(build_parser())


# page, heading the table sits under, generator
TABLES = {
    "service": ("docs/service.md", "Configuration", service_table),
    "autoscaler": ("docs/autoscaler.md", "Configuration", autoscaler_table),
    "autoscaler-queries": ("docs/autoscaler.md", "Default queries", autoscaler_queries_table),
    "loadtester": ("docs/loadtester.md", "Options", loadtester_table),
    "local": ("docs/local-stack.md", "Options", local_table),
    "sim": ("docs/simulator.md", "The command line", sim_table),
    "sim-matrix": ("docs/simulator.md", "The matrix's flags", sim_matrix_table),
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
