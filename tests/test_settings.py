"""settings/: the machinery and the one error wording of every settings class, on a small class of its own.
The modules' own tests (test_autoscaler_config.py, test_demo_options.py, test_service_model.py,
test_loadtester_workload.py) check their fields and the rules between them; these check the rules under them."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pytest

from settings import (SettingError, add_flags, check_fields, help_text, named_after_fields, read_values, setting,
                      shown_default, specs)


class KnobError(SettingError):
    """A class's own error, as each configuration module has one."""


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
    return read_values(Knobs, environ or {}, parser.parse_args(list(argv)), error=KnobError, **kwargs)


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


# id: (environment, argv, the key, the value as given and what is allowed that the error names)
REFUSED = {
    "fraction": ({"WORKERS": "2.5"}, [], "WORKERS", "2.5", "1..64"),
    "below": ({"WORKERS": "0"}, [], "WORKERS", "0", "1..64"),
    "open-bound": ({"DELAY_S": "0"}, [], "DELAY_S", "0", ">0..10"),
    "nan": ({"DELAY_S": "nan"}, [], "DELAY_S", "nan", ">0..10"),
    "zero-means-only-zero": ({"LIMIT": "4"}, [], "LIMIT", "4", "8..1000"),
    "choice": ({"MODE": "slow"}, [], "MODE", "slow", "fast | safe"),
    "not-a-bool": ({"VERBOSE": "maybe"}, [], "VERBOSE", "maybe", "true or false"),
    "flag-named-as-given": ({"WORKERS": "3"}, ["--workers", "65"], "--workers", "65", "1..64"),
    "flag-named-after-the-field": ({}, ["--delay-s", "11"], "--delay-s", "11", ">0..10"),
}


@pytest.mark.parametrize("environ, argv, key, value, allowed", REFUSED.values(), ids=REFUSED.keys())
def test_errors_name_the_setting_the_value_and_what_is_allowed(environ, argv, key, value, allowed):
    with pytest.raises(KnobError) as err:
        read(environ, argv)
    assert (err.value.key, err.value.value, err.value.allowed) == (key, value, allowed)


# id: (what is refused, the message): the one wording, KEY=VALUE: expected WHAT
WORDING = {
    "range-and-unit": ({"WORKERS": "0"}, "WORKERS=0: expected an integer in 1..64 processes"),
    "not-the-type": ({"WORKERS": "many"}, "WORKERS='many': expected an integer in 1..64 processes"),
    "zero-stands-for-something": ({"LIMIT": "4"}, "LIMIT=4: expected an integer in 8..1000 images, or 0"),
    "choices": ({"MODE": "slow"}, "MODE='slow': expected one of fast | safe"),
}


@pytest.mark.parametrize("environ, message", WORDING.values(), ids=WORDING.keys())
def test_every_class_words_a_refusal_the_same_way(environ, message):
    with pytest.raises(SettingError) as err:
        read(environ)
    assert str(err.value) == message


@pytest.mark.parametrize("error, key, value, allowed, message", [
    (SettingError.not_allowed("--url", "ftp://x", "an http:// URL"), "--url", "ftp://x", "an http:// URL",
     "--url='ftp://x': expected an http:// URL"),
    (KnobError.not_allowed("--out", Path("/x"), "a directory"), "--out", Path("/x"), "a directory",
     "--out='/x': expected a directory"),
], ids=["text", "path"])
def test_a_module_words_its_own_rules_the_same_way(error, key, value, allowed, message):
    assert (error.key, error.value, error.allowed, str(error)) == (key, value, allowed, message)


def test_python_values_are_converted_and_checked_too():
    assert check_fields(Knobs(workers="3", delay_s=1))["workers"] == 3
    assert read({"LIMIT": "0"}) == {"limit": 0}  # 0 means "no cap", whatever the range
    with pytest.raises(KnobError) as err:
        check_fields(Knobs(delay_s=math.inf), KnobError)
    assert (err.value.key, err.value.value, err.value.allowed) == ("DELAY_S", math.inf, ">0..10")


@dataclass(frozen=True)
class OneSided:
    trace: str = setting(doc="required", flag="--trace")
    peak: int | None = setting(None, "at least one", lo=1, flag="--peak")
    scale: float = setting(1.0, "above zero", "x", lo=0, lo_open=True, flag="--scale")


# id: (argv, the key, the value and what is allowed; None: accepted)
ONE_SIDED = {
    "below-lo": (["--trace", "t", "--peak", "0"], ("--peak", "0", ">= 1")),
    "open-lo": (["--trace", "t", "--scale", "0"], ("--scale", "0", "> 0")),
    "infinite": (["--trace", "t", "--scale", "inf"], ("--scale", "inf", "> 0")),
    "no-upper-end": (["--trace", "t", "--peak", "100000", "--scale", "1e9"], None),
}


@pytest.mark.parametrize("argv, refused", ONE_SIDED.values(), ids=ONE_SIDED.keys())
def test_a_range_may_have_one_end_and_a_flag_may_be_required(argv, refused):
    parser = argparse.ArgumentParser()
    add_flags(parser, OneSided)
    if refused is None:
        assert read_values(OneSided, {}, parser.parse_args(argv))["peak"] == 100000
        return
    with pytest.raises(SettingError) as err:
        read_values(OneSided, {}, parser.parse_args(argv))
    assert (err.value.key, err.value.value, err.value.allowed) == refused


def test_a_required_flag_is_required_by_the_parser():
    parser = argparse.ArgumentParser()
    add_flags(parser, OneSided)
    assert {spec.name: spec.required for spec in specs(OneSided)} == {"trace": True, "peak": False, "scale": False}
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_help_and_docs_say_the_default_and_what_zero_means():
    by_name = {spec.name: spec for spec in specs(Knobs)}
    assert shown_default(by_name["limit"]) == "0 = no cap"
    assert shown_default(by_name["verbose"]) == "off"
    assert by_name["delay_s"].allowed == ">0..10" and by_name["mode"].allowed == "fast | safe"
    assert help_text(by_name["workers"]) == "worker processes [processes] (default: 2; env WORKERS)"
