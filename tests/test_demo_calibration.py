"""The calibration cache: one measurement per machine and code version, reused until --recalibrate.
(The measurement itself runs in tests/test_demo_quick.py, against a real gunicorn worker.)"""

from __future__ import annotations

import json

import pytest

from local.calibration import cache_key, load_or_measure
from local.config import Options
from tests.test_planning_sizing import measured


def test_a_cached_measurement_is_used_without_starting_anything(tmp_path):
    options = Options(calibration_dir=str(tmp_path))
    report = measured(48.0, 160.0)
    path = tmp_path / f"capacity-{cache_key(options)}.json"
    path.write_text(json.dumps({"measured_at": "2026-12-01 10:00:00 UTC", "report": report.as_dict()}))
    again, source = load_or_measure(options, tmp_path / "work")
    assert again.saturation_rps == 48.0 and again.steps == report.steps
    assert source.startswith("cached measurement of 2026-12-01 10:00:00 UTC")
    assert not (tmp_path / "work").exists()  # no worker was started


@pytest.mark.parametrize("change", [{"model_weights": "imagenet"}, {"model_weights": "/x/weights.pth"}],
                         ids=["other-weights", "weights-file"])
def test_the_key_changes_with_what_changes_the_speed(change):
    assert cache_key(Options(**change)) != cache_key(Options())


def test_the_key_is_stable_for_the_same_machine_and_code():
    assert cache_key(Options()) == cache_key(Options(seed=5, quick=True))
