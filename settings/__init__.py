"""One way to declare, read, check and document settings: the service's (inference/config.py, environment
variables), the autoscaler's (autoscaler/config.py, variables and flags), the load tester's and its capacity
probe's (loadtester/config.py, loadtester/capacity_cli.py: flags and a Python API), the local stack's
(local/config.py, flags and some variables) and the simulator's command lines (sim/cli.py, sim/matrix.py).

A settings class is a dataclass whose fields are made with `setting()`: the default, what it means, its
unit, range or choices, what 0 or empty stands for, and the environment variable and flag that set it.
Everything else comes from that one definition:

    specs(cls)                    one `Spec` per field, in order: docs/tables.py builds the docs' tables from them
    add_flags(parser, cls)        the argparse arguments, with --help text from `help_text()`
    read_values(cls, environ, flags, error=...)
                                  the values set by flags, else by environment variables, each parsed and checked
    check(spec, value, error=...) one value converted to its field's type and checked (choices, range, finite)
    check_fields(obj, error=...)  every field of an object, for its validate()

A refused value raises `SettingError` (a ValueError), or the subclass a module passes as `error`, in one
wording for every module: `KEY=VALUE: expected WHAT` (settings/errors.py), e.g.
`MIN_REPLICAS=0: expected an integer in 1..10000 replicas`. The error carries `key` (the variable or flag
the value was given under), `value` (as given) and `allowed` (the range or choices), which tests and
scripts read instead of the sentence. Checks between settings (MIN_REPLICAS <= MAX_REPLICAS) are each
module's, in its own words.

Why not pydantic-settings, which does most of this: the autoscaler's image and every restart of its pod
would pay for it. Measured on the development machine (Python 3.11): `import pydantic_settings` takes
90-105 ms and 26 MB of memory (8.6 MB -> 34.8 MB RSS) against 16 ms for importing autoscaler/config.py
(82 ms for all of `python -m autoscaler`), and its packages add ~10.8 MB to the image (pydantic 4.3 MB,
pydantic_core 5.3 MB, pydantic_settings 0.8 MB, python-dotenv, annotated-types, typing-inspection).
This package is the standard library only.
"""

from settings.errors import SettingError
from settings.fields import Spec, add_flags, format_number, help_text, named_after_fields, setting, shown_default, specs
from settings.values import check, check_fields, expected, read_values

__all__ = ["SettingError", "Spec", "setting", "named_after_fields", "specs", "format_number", "shown_default",
           "help_text", "add_flags", "check", "check_fields", "expected", "read_values"]
