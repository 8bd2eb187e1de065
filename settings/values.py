"""Reading and checking settings: text from the environment or a flag, or a value passed from Python,
converted to its field's type and checked against its choices and range; a refused value raises the
class's SettingError in the one wording of settings/errors.py."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Mapping

from settings.errors import SettingError
from settings.fields import Spec, specs

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number"}


def check(spec: Spec, given: object, key: str | None = None, error: type[SettingError] = SettingError) -> object:
    """`given` converted to the setting's type and checked; raises `error` otherwise.

    Text is parsed ('40e6' is a valid int, 2.5 is not; true/yes/on/1 and false/no/off/0 for a bool); a
    Python value is converted the same way (2 -> 2.0 for a float field, '7' -> 7 for an int one). Then:
    one of the choices, finite, within the range (a 0 that `zero_means` something always passes).
    key: what the value was given as; by default the environment variable, else the flag, else the name.
    """
    key = key or spec.env or spec.flag or spec.name
    if given is None and spec.optional:
        return None
    try:
        value = _convert(spec.kind, given)
    except (TypeError, ValueError, OverflowError):
        raise _refused(spec, key, given, error) from None
    if spec.choices and value not in spec.choices:
        raise _refused(spec, key, given, error)
    if spec.kind in (int, float):
        if spec.zero_means and value == 0:
            return value
        if not (math.isfinite(value) and _within(spec, value)):
            raise _refused(spec, key, given, error)
    return value


def check_fields(obj: object, error: type[SettingError] = SettingError,
                 skip: frozenset[str] | set[str] = frozenset()) -> dict:
    """Every field of a settings object checked (validate() calls it): {name: converted value}, for a
    validate() that returns a checked copy, or nothing new where read_values() built the object."""
    return {spec.name: check(spec, getattr(obj, spec.name), error=error)
            for spec in specs(type(obj)) if spec.name not in skip}


def read_values(cls: type, environ: Mapping[str, str] | None = None,
                flags: argparse.Namespace | Mapping[str, object] | None = None, *,
                blank_env_is_unset: bool = False, error: type[SettingError] = SettingError) -> dict:
    """{field name: checked value} for the settings that a flag (given, not None) or else an environment
    variable sets; the rest keep their defaults. Text is stripped first; an error names the flag or the
    variable, whichever gave the value. `environ` defaults to os.environ.
    blank_env_is_unset: a variable set to '' or spaces counts as not set (for the classes where no
    setting is meaningfully empty; the autoscaler's QUERY_AGE_S='' turns a check off)."""
    environ = os.environ if environ is None else environ
    flags = vars(flags) if isinstance(flags, argparse.Namespace) else (flags or {})
    values = {}
    for spec in specs(cls):
        given = flags.get(spec.name)
        if given is not None:
            key = spec.flag
        elif spec.env and spec.env in environ and not (blank_env_is_unset and not environ[spec.env].strip()):
            given, key = environ[spec.env], spec.env
        else:
            continue
        if isinstance(given, str):
            given = given.strip()
        values[spec.name] = check(spec, given, key, error)
    return values


def expected(spec: Spec) -> str:
    """What a setting allows, as the error says it: 'one of fast | safe', 'an integer in 1..64 workers',
    'a number > 0 s', 'an integer in 8..1000 images, or 0', 'true or false'."""
    if spec.choices:
        return f"one of {spec.allowed}"
    word = _TYPE_WORDS.get(spec.kind, "")
    if not spec.has_range:
        return word
    both_ends = spec.lo is not None and spec.hi is not None
    text = f"{word} {'in ' if both_ends else ''}{spec.allowed}{' ' + spec.unit if spec.unit else ''}"
    zero_outside = spec.lo is not None and (spec.lo > 0 or (spec.lo == 0 and spec.lo_open))
    return text + (", or 0" if spec.zero_means and zero_outside else "")


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
    above_lo = spec.lo is None or (value > spec.lo if spec.lo_open else value >= spec.lo)
    return above_lo and (spec.hi is None or value <= spec.hi)


def _refused(spec: Spec, key: str, given: object, error: type[SettingError]) -> SettingError:
    return error.not_allowed(key, given, spec.allowed or _TYPE_WORDS.get(spec.kind, ""), expected(spec))
