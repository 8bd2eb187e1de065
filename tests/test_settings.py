"""settings/: the machinery the four configuration modules share, on a small class of its own. The
modules' own tests (test_autoscaler_config.py, test_demo_options.py, test_service_model.py,
test_loadtester_workload.py) check each one's wording; these check the rules under it."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from settings import (Messages, SettingError, add_flags, check_fields, help_text, named_after_fields, read_values,
                      setting, shown_default, specs)

MESSAGES = Messages(key="env", bad_type="{key}={given!r}{source}: not {expected}",
                    not_a_choice="{key}={value!r}: not one of {choices}",
                    out_of_range="{key}={shown}: outside {lo_op} {lo}..{hi}{unit}",
                    not_finite="{key}={value}: not finite", type_names={int: "an integer", float: "a number"},
                    from_env=" (from {env})", from_flag=" (from {flag})")


@named_after_fields
@dataclass(frozen=True)
class Knobs:
    workers: int = setting(2, "worker processes", "processes", 1, 64)
    delay_s: float = setting(0.5, "wait", "s", 0, 10, lo_open=True)
    limit: int = setting(0, "cap", "images", 8, 1000, zero_means="no cap")
    mode: str = setting("fast", "how", choices=("fast", "safe"))
    verbose: bool = setting(False, "say more", switch=True)
    name: str = setting("", "label", env="KNOB_NAME", flag="--label")
    path: Path | None = setting(None, "a file")


def read(environ=None, argv=(), **kwargs):
    parser = argparse.ArgumentParser()
    add_flags(parser, Knobs)
    return read_values(Knobs, MESSAGES, environ or {}, parser.parse_args(list(argv)), **kwargs)


def test_names_follow_the_field_unless_declared():
    by_name = {spec.name: spec for spec in specs(Knobs)}
    assert (by_name["delay_s"].env, by_name["delay_s"].flag) == ("DELAY_S", "--delay-s")
    assert (by_name["name"].env, by_name["name"].flag) == ("KNOB_NAME", "--label")
    assert (by_name["path"].kind, by_name["path"].optional) == (Path, True)


def test_flags_win_over_the_environment_and_text_is_parsed_and_stripped():
    values = read({"WORKERS": " 3 ", "DELAY_S": "2"}, ["--workers", "40e0", "--verbose"])
    assert values == {"workers": 40, "delay_s": 2.0, "verbose": True}


def test_a_blank_variable_is_a_value_unless_the_class_says_otherwise():
    assert read({"KNOB_NAME": " "}) == {"name": ""}
    assert read({"KNOB_NAME": " "}, blank_env_is_unset=True) == {}


@pytest.mark.parametrize("environ, message", [
    ({"WORKERS": "2.5"}, "WORKERS='2.5' (from WORKERS): not an integer"),
    ({"WORKERS": "0"}, "WORKERS=0: outside >= 1..64 processes"),
    ({"DELAY_S": "0"}, "DELAY_S=0: outside > 0..10 s"),
    ({"DELAY_S": "nan"}, "DELAY_S=nan: not finite"),
    ({"LIMIT": "4"}, "LIMIT=4: outside >= 8..1000 images"),
    ({"MODE": "slow"}, "MODE='slow': not one of fast, safe"),
], ids=["fraction", "below", "open-bound", "nan", "zero-means-only-zero", "choice"])
def test_errors_name_the_setting_the_value_and_what_is_allowed(environ, message):
    with pytest.raises(SettingError) as err:
        read(environ)
    assert str(err.value) == message and err.value.key == next(iter(environ))


def test_python_values_are_converted_and_checked_too():
    assert check_fields(Knobs(workers="3", delay_s=1), MESSAGES)["workers"] == 3
    assert read({"LIMIT": "0"}) == {"limit": 0}  # 0 means "no cap", whatever the range
    with pytest.raises(SettingError, match="DELAY_S=inf: not finite"):
        check_fields(Knobs(delay_s=math.inf), MESSAGES)


def test_help_and_docs_say_the_default_and_what_zero_means():
    by_name = {spec.name: spec for spec in specs(Knobs)}
    assert shown_default(by_name["limit"]) == "0 = no cap"
    assert shown_default(by_name["verbose"]) == "off"
    assert by_name["delay_s"].allowed == ">0..10" and by_name["mode"].allowed == "fast | safe"
    assert help_text(by_name["workers"]) == "worker processes [processes] (default: 2; env WORKERS)"
