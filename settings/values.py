"""Reading and checking settings: text from the environment or a flag, or a value passed from Python,
converted to its field's type and checked against its choices and range; errors worded by `Messages`."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from settings.fields import SettingError, Spec, format_number, specs

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Messages:
    """How one settings class words its errors. Each template is str.format()ted with:
    {key} the setting's variable or flag (whichever `key` says), {given} the value as written or passed,
    {value} the value after conversion, {shown} that number without a trailing .0, {source} where the
    value came from (`from_env` or `from_flag`, formatted with {env} and {flag}; empty for a value passed
    from Python), {expected} the type's entry in `type_names` (itself formatted with these), {choices}
    joined by `choice_separator`, {lo} and {hi} as `format_number` writes them, {lo_op} '>' or '>=',
    {unit} ' ms' or ''."""

    key: str  # "env" or "flag"
    bad_type: str  # the text cannot be read as the type
    not_a_choice: str
    out_of_range: str
    type_names: Mapping[type, str] = field(default_factory=dict)
    not_finite: str | None = None  # None: a NaN or an infinity gets out_of_range
    choice_separator: str = ", "
    from_env: str = ""
    from_flag: str = ""
    # Makes the exception from (message, key, value as given): the class's own SettingError subclass.
    error: Callable[[str, str, object], SettingError] = SettingError


def check(spec: Spec, given: object, messages: Messages, source: str = "") -> object:
    """`given` converted to the setting's type and checked; raises the class's SettingError otherwise.

    Text is parsed ('40e6' is a valid int, 2.5 is not; true/yes/on/1 and false/no/off/0 for a bool); a
    Python value is converted the same way (2 -> 2.0 for a float field, '7' -> 7 for an int one). Then:
    one of the choices, finite, within the range (a 0 that `zero_means` something always passes).
    """
    if given is None and spec.optional:
        return None
    try:
        value = _convert(spec.kind, given)
    except (TypeError, ValueError, OverflowError):
        _fail(messages.bad_type, spec, messages, given, None, source)
    if spec.choices and value not in spec.choices:
        _fail(messages.not_a_choice, spec, messages, given, value, source)
    if spec.kind in (int, float):
        if spec.zero_means and value == 0:
            return value
        finite = math.isfinite(value)
        if not finite and messages.not_finite:
            _fail(messages.not_finite, spec, messages, given, value, source)
        if spec.has_range and not (finite and _within(spec, value)):
            _fail(messages.out_of_range, spec, messages, given, value, source)
    return value


def check_fields(obj: object, messages: Messages, skip: frozenset[str] | set[str] = frozenset()) -> dict:
    """Every field of a settings object checked (validate() calls it); {name: converted value}, which a
    mutable class stores back and a frozen one, built from read_values(), already holds."""
    return {spec.name: check(spec, getattr(obj, spec.name), messages)
            for spec in specs(type(obj)) if spec.name not in skip}


def read_values(cls: type, messages: Messages, environ: Mapping[str, str] | None = None,
                flags: argparse.Namespace | Mapping[str, object] | None = None,
                blank_env_is_unset: bool = False) -> dict:
    """{field name: checked value} for the settings that a flag (given, not None) or else an environment
    variable sets; the rest keep their defaults. Text is stripped first. `environ` defaults to os.environ.
    blank_env_is_unset: a variable set to '' or spaces counts as not set (for the classes where no
    setting is meaningfully empty; the autoscaler's QUERY_AGE_S='' turns a check off)."""
    environ = os.environ if environ is None else environ
    flags = vars(flags) if isinstance(flags, argparse.Namespace) else (flags or {})
    values = {}
    for spec in specs(cls):
        given = flags.get(spec.name)
        if given is not None:
            source = messages.from_flag
        elif spec.env and spec.env in environ and not (blank_env_is_unset and not environ[spec.env].strip()):
            given, source = environ[spec.env], messages.from_env
        else:
            continue
        if isinstance(given, str):
            given = given.strip()
        values[spec.name] = check(spec, given, messages, source.format(env=spec.env, flag=spec.flag))
    return values


def _convert(kind: type, given: object) -> object:
    if kind is bool:
        if not isinstance(given, str):
            return bool(given)
        word = given.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError(given)
    if kind is int:
        if isinstance(given, str):
            try:
                return int(given)
            except ValueError:
                given = float(given)  # '40e6' pixels is a whole number; '2.5' workers is not, and never rounded
        if isinstance(given, float) and not given.is_integer():  # NaN and infinities included
            raise ValueError(given)
        return int(given)
    if kind is float:
        return float(given)
    if kind is Path:
        return Path(given)
    return given


def _within(spec: Spec, value: float) -> bool:
    above_lo = value > spec.lo if spec.lo_open else value >= spec.lo
    return above_lo and value <= spec.hi


def _fail(template: str, spec: Spec, messages: Messages, given: object, value: object, source: str):
    key = (spec.env if messages.key == "env" else spec.flag) or spec.name
    fill = {"key": key, "given": given, "value": value, "shown": format_number(value), "source": source,
            "choices": messages.choice_separator.join(spec.choices or ()), "lo": format_number(spec.lo),
            "hi": format_number(spec.hi), "lo_op": ">" if spec.lo_open else ">=",
            "unit": f" {spec.unit}" if spec.unit else ""}
    fill["expected"] = messages.type_names.get(spec.kind, "").format(**fill)
    raise messages.error(template.format(**fill), key, given) from None
