"""Declaring settings: `setting()` makes a dataclass field, `specs()` reads the fields back as `Spec`s, and
the --help and docs text of a setting (`shown_default`, `help_text`, `add_flags`) come from there."""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, field, fields
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Sequence


def setting(default: object = MISSING, doc: str = "", unit: str = "", lo: float | None = None,
            hi: float | None = None, *, default_factory=MISSING, choices: Sequence[str] | None = None,
            zero_means: str = "", lo_open: bool = False, env: str | None = None, flag: str | None = None,
            flag_aliases: Sequence[str] = (), metavar: str | None = None, switch: bool = False,
            default_text: str = ""):
    """A dataclass field that carries what reading, checking, --help and the docs need.

    doc: what it means and why the default is what it is (the docs' tables print it).
    unit: 's', 'ms', 'replicas'... shown after ranges and in --help.
    lo, hi: the allowed range, both ends included (None: no bound that side); lo_open excludes lo ('> 0').
    choices: the only values allowed. zero_means: what a 0 or empty value stands for; 0 passes the range.
    env, flag: the environment variable and the command-line flag that set it (None: not that way); a flag
    without dashes is a positional argument; flag_aliases are more spellings of the flag (-v, --verbose).
    metavar: the value's name in --help. switch: a flag without a value that sets the opposite of the default.
    default_text: how the docs and --help say the default when the value itself says little (a path computed
    at import, a name made from the time). A field without a default is a required flag (unless a
    variable can set it).
    """
    metadata = {"doc": doc, "unit": unit, "lo": lo, "hi": hi, "lo_open": lo_open,
                "choices": tuple(choices) if choices else None, "zero_means": zero_means, "env": env,
                "flag": flag, "flag_aliases": tuple(flag_aliases), "metavar": metavar, "switch": switch,
                "default_text": default_text}
    return field(default=default, default_factory=default_factory, metadata=metadata)


def named_after_fields(cls):
    """Class decorator, above @dataclass: a field that names no environment variable or flag of its own is
    set by NAME_IN_CAPITALS and --name-with-dashes, so the autoscaler's 40-odd fields need not spell each
    name three times."""
    for f in fields(cls):
        f.metadata = MappingProxyType({**f.metadata, "env": f.metadata.get("env") or f.name.upper(),
                                       "flag": f.metadata.get("flag") or "--" + f.name.replace("_", "-")})
    return cls


_KINDS = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}


def _kind(annotation: object) -> tuple[type, bool]:
    """(type a raw string is parsed into, whether None is allowed) from a field's annotation, which
    `from __future__ import annotations` leaves as text such as 'float | None'."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    names = [part.strip().rsplit(".", 1)[-1] for part in text.split("|")]
    kinds = [name for name in names if name != "None"]
    if len(kinds) != 1 or kinds[0] not in _KINDS:
        raise TypeError(f"a setting is a str, int, float, bool or Path, optionally '| None'; not {text!r}")
    return _KINDS[kinds[0]], len(kinds) < len(names)


@dataclass(frozen=True)
class Spec:
    """One setting as reading, checking and documenting see it: the field's name, type and default, and
    what `setting()` declared. Made by `specs()`."""

    name: str
    kind: type = str
    optional: bool = False
    default: object = None  # None also when the field's default comes from a default_factory
    required: bool = False  # no default at all
    doc: str = ""
    unit: str = ""
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    choices: tuple[str, ...] | None = None
    zero_means: str = ""
    env: str | None = None
    flag: str | None = None
    flag_aliases: tuple[str, ...] = ()
    metavar: str | None = None
    switch: bool = False
    default_text: str = ""

    @property
    def has_range(self) -> bool:
        return self.lo is not None or self.hi is not None

    @property
    def allowed(self) -> str:
        """What the docs' 'Allowed' columns and errors show: the choices, the range ('>0..1000' when 0 itself
        is not allowed; '>= 1' or '> 0' with no upper end) or '' for any value."""
        if self.choices:
            return " | ".join(self.choices)
        lo, hi = format_number(self.lo), format_number(self.hi)
        if self.lo is not None and self.hi is not None:
            return f"{'>' if self.lo_open else ''}{lo}..{hi}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {lo}"
        return f"<= {hi}" if self.hi is not None else ""


@cache
def specs(cls: type) -> tuple[Spec, ...]:
    """One Spec per field of a settings dataclass, in field order (the order of the docs' tables)."""
    out = []
    for f in fields(cls):
        kind, optional = _kind(f.type)
        default = None if f.default is MISSING else f.default
        required = f.default is MISSING and f.default_factory is MISSING
        out.append(Spec(name=f.name, kind=kind, optional=optional, default=default, required=required,
                        **f.metadata))
    return tuple(out)


def format_number(value: object) -> str:
    """2.0 -> '2', 0.05 -> '0.05', 1e6 -> '1000000', 2**31 -> '2147483648'; anything else as str()."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def shown_default(spec: Spec) -> str:
    """The default as --help and the docs say it: default_text when given; on/off for a bool; for an empty
    or 0 default that stands for something, what it stands for."""
    if spec.default_text:
        return spec.default_text
    if isinstance(spec.default, bool):
        return "on" if spec.default else "off"
    if spec.default is None:
        return "none"
    if spec.default == "":
        return spec.zero_means or "empty"
    text = format_number(spec.default)
    return f"{text} = {spec.zero_means}" if spec.zero_means and spec.default == 0 else text


def help_text(spec: Spec) -> str:
    """--help of one setting: its meaning, unit, default and the environment variable that also sets it."""
    unit = f" [{spec.unit}]" if spec.unit else ""
    says_default = not spec.switch and (spec.default is not None or spec.default_text)  # a switch says it all
    notes = [f"default: {shown_default(spec)}"] if says_default else []
    if spec.zero_means and spec.default and not spec.default_text:  # shown_default says it for a 0 default
        notes.append(f"{'empty' if spec.kind is str else '0'} = {spec.zero_means}")
    if spec.env:
        notes.append(f"env {spec.env}")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"{spec.doc}{unit}{tail}".replace("%", "%%")  # argparse formats help with %


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One argument per field that has a flag. Every default is None, meaning 'not given', so that the
    environment and the field's own default still apply; values stay text for `read_values()` or the
    class's validate() to parse, so a bad one gets the same message as from the environment. Choices are
    checked there too (argparse's own wording would differ), except for a positional argument."""
    for spec in specs(cls):
        if not spec.flag:
            continue
        text = help_text(spec)
        if not spec.flag.startswith("-"):
            parser.add_argument(spec.flag, choices=spec.choices, help=text)
        elif spec.switch:
            parser.add_argument(spec.flag, *spec.flag_aliases, dest=spec.name, default=None, help=text,
                                action="store_false" if spec.default else "store_true")
        else:
            metavar = spec.metavar or ("|".join(spec.choices) if spec.choices else spec.name.upper())
            parser.add_argument(spec.flag, *spec.flag_aliases, dest=spec.name, default=None, metavar=metavar,
                                required=spec.required and not spec.env, help=text)
