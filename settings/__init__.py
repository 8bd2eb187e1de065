"""One way to declare, read, check and document settings, shared by the four configuration modules:
inference/config.py (environment variables), autoscaler/config.py (variables and flags),
loadtester/config.py (flags and a Python API) and local/config.py (flags and some variables).

A settings class is a dataclass whose fields are made with `setting()`: the default, what it means, its
unit, range or choices, what 0 or empty stands for, and the environment variable and flag that set it.
Everything else comes from that one definition:

    specs(cls)                    one `Spec` per field, in order: docs/tables.py builds the docs' tables from them
    add_flags(parser, cls)        the argparse arguments, with --help text from `help_text()`
    read_values(cls, messages, environ, flags)
                                  the values set by flags, else by environment variables, each parsed and checked
    check(spec, value, messages)  one value converted to its field's type and checked (choices, range, finite)
    check_fields(obj, messages)   every field of an object, for its validate()

Errors are `SettingError` (a ValueError) naming the variable or flag, the value and what is allowed. Each
class words them with its own `Messages`: the four kept the wording they had, which their tests and
users' scripts match on; only the machinery is shared.

Why not pydantic-settings, which does most of this: the autoscaler's image and every restart of its pod
would pay for it. Measured on the development machine (Python 3.11): `import pydantic_settings` takes
90-105 ms and 26 MB of memory (8.6 MB -> 34.8 MB RSS) against 16 ms for importing autoscaler/config.py
(82 ms for all of `python -m autoscaler`), and its packages add ~10.8 MB to the image (pydantic 4.3 MB,
pydantic_core 5.3 MB, pydantic_settings 0.8 MB, python-dotenv, annotated-types, typing-inspection).
Its errors would also need re-wording to keep the messages above. This package is the standard library only.
"""

from settings.fields import (SettingError, Spec, add_flags, format_number, help_text, named_after_fields, setting,
                             shown_default, specs)
from settings.values import Messages, check, check_fields, read_values

__all__ = ["SettingError", "Spec", "setting", "named_after_fields", "specs", "format_number", "shown_default",
           "help_text", "add_flags", "Messages", "check", "check_fields", "read_values"]
