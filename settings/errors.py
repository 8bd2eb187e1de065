"""The one wording of a refused value, `KEY=VALUE: expected WHAT`, and the error that carries its parts.

KEY is the environment variable or flag the value was given under, VALUE the value as given, WHAT what
is allowed. Scripts and tests read `SettingError.key`, `.value` and `.allowed` rather than the sentence.
"""

from __future__ import annotations

from pathlib import Path


class SettingError(ValueError):
    """A setting's value is not allowed.

    key: the variable or flag; value: the value as given (text from the environment or a flag, else the
    Python value); allowed: the range or choices as the docs' tables write them ('1..64', '>0..10',
    '>= 1', 'fast | safe'), else in words what the rule allows ('true or false', 'an http:// URL').
    An error about several settings together has key '' and value None, and its message says why.
    """

    def __init__(self, message: str, key: str = "", value: object = None, allowed: str = ""):
        super().__init__(message)
        self.key = key
        self.value = value
        self.allowed = allowed

    @classmethod
    def not_allowed(cls, key: str, value: object, allowed: str, expected: str = "") -> "SettingError":
        """The error in the one wording; `expected` says `allowed` in a sentence where the type or the unit
        helps ('an integer in 1..64 workers'), else the message says `allowed` itself."""
        return cls(f"{key}={shown_value(value)}: expected {expected or allowed}", key, value, allowed)


def shown_value(value: object) -> str:
    """A value as the message shows it: text that reads as a number as written (MIN_REPLICAS=0, nan),
    other text quoted (POLICY='magic'), a Python value as repr() (0.0, 2.5), a path as its text quoted."""
    if isinstance(value, Path):
        return repr(str(value))
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return repr(value)
        return value
    return repr(value)
