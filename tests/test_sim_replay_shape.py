"""sim/replay_shape.py: the coarse replay (`--coarse-s`) keeps the trace's total and window means, and the
warning about a log's counting noise scaled up fires where a 10 s window rests on few counts, and only there."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from loadtester.schedule import build_schedule
from loadtester.workload import load_workload
from sim import cli
from sim.replay_shape import NOISY_SCALE, NOISY_WINDOW_COUNTS, coarse_rates, counting_noise, noise_warning

REPO = Path(__file__).resolve().parent.parent
NASA = REPO / "sim" / "traces" / "nasa-1d.txt"
TWITTER = REPO / "sim" / "traces" / "twitter-1h.txt"


@pytest.mark.parametrize("rates, window_s, expected", [
    ([1, 2, 3, 6], 2, [1.5, 1.5, 4.5, 4.5]),
    ([1, 2, 3, 6, 10], 2, [1.5, 1.5, 4.5, 4.5, 10]),          # the last, shorter window: its own mean
    ([0, 0, 9], 60, [3, 3, 3]),                               # a window longer than the trace
    ([1, 2.5, 0], 1, [1, 2.5, 0]),                            # 1 s: the trace itself
], ids=["whole-windows", "short-last-window", "longer-than-trace", "one-second"])
def test_coarse_rates_are_each_windows_mean(rates, window_s, expected):
    assert coarse_rates(rates, window_s).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("window_s", [60, 600, 7], ids=["minute", "ten-minutes", "uneven"])
def test_the_coarse_nasa_day_keeps_its_total_and_every_windows_mean(window_s):
    rates = np.asarray(load_workload(NASA).rates_rps)
    coarse = coarse_rates(rates, window_s)
    assert len(coarse) == len(rates)
    assert coarse.sum() == pytest.approx(rates.sum(), rel=1e-12)
    for start in range(0, len(rates), window_s):
        window = slice(start, start + window_s)
        assert np.all(coarse[window] == pytest.approx(rates[window].mean(), rel=1e-12))
    assert coarse.std() < rates.std()    # the counting noise within a window is gone


def test_the_replayer_draws_poisson_arrivals_from_the_coarse_shape_with_its_per_minute_means():
    rates = np.asarray(load_workload(NASA).rates_rps)[:4 * 3600]
    scale = 20.0
    schedule = build_schedule(coarse_rates(rates, 60), seed=5, scale=scale)
    counts = np.bincount((schedule.offsets_s // 60).astype(int), minlength=len(rates) // 60)
    expected = rates.reshape(-1, 60).sum(axis=1) * scale    # the log's per-minute counts, scaled
    # Poisson around each minute's mean: every minute within 5 sigma, the total within 4.
    assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(np.maximum(expected, 1)))
    assert abs(len(schedule) - expected.sum()) <= 4 * np.sqrt(expected.sum())
    # Within a minute, the arrivals are the replayer's own Poisson draws, not the log's counts x 20: a
    # second's count varies about its mean as a Poisson count does (variance ~ mean), far below 20 x it.
    per_second = np.bincount(schedule.offsets_s.astype(int), minlength=len(rates)).reshape(-1, 60)
    dispersion = per_second.var(axis=1, ddof=1).mean() / per_second.mean()
    assert 0.8 < dispersion < 1.2


def _trace(path: Path) -> tuple[float, ...]:
    return load_workload(path).rates_rps


@pytest.mark.parametrize("trace, scale, speedup, coarse_s, fires", [
    (NASA, 503.0, 1.0, None, True),       # a 1 req/s log scaled to 1600 req/s: 10 counts a window
    (NASA, 36.6, 24.0, None, True),       # 24x faster: 249 counts a window, still 6% noise
    (NASA, 37.6, 24.0, 600, False),       # the matrix's: 10-minute means, 622 counts behind a window
    (NASA, 503.0, 1.0, 540, False),       # the coarse window the warning suggests
    (NASA, 5.0, 1.0, None, False),        # scaled under NOISY_SCALE: noise a real service has too
    (TWITTER, 12.2, 1.0, None, False),    # 59 tweets a second: 594 counts a window
    (REPO / "wl.txt", 50.0, 1.0, None, False),   # fractional rates: a designed shape, no counts
], ids=["nasa-per-second", "nasa-24x", "nasa-24x-coarse-600", "nasa-suggested-coarse", "nasa-x5", "twitter",
        "wl-txt-x50"])
def test_the_counting_noise_warning_fires_where_a_window_rests_on_few_counts(trace, scale, speedup, coarse_s,
                                                                              fires):
    noise = counting_noise(_trace(trace), scale, speedup, coarse_s)
    assert (noise is not None) == fires
    if noise:
        assert noise.window_counts < NOISY_WINDOW_COUNTS and noise.scale >= NOISY_SCALE
        assert noise.relative_noise == pytest.approx(noise.window_counts ** -0.5)
        assert noise.real_noise == pytest.approx(noise.relative_noise / scale ** 0.5)
        # The suggested coarse window is whole minutes and silences the warning.
        assert noise.suggested_coarse_s % 60 == 0
        assert counting_noise(_trace(trace), scale, speedup, noise.suggested_coarse_s) is None


def test_the_warning_names_the_trace_its_mean_count_the_scale_and_the_coarse_flag():
    text = noise_warning("nasa-1d.txt", counting_noise(_trace(NASA), 503.0))
    assert text.startswith("nasa-1d.txt is a log of 1.04 requests a second on average, scaled x503:")
    assert "--coarse-s 540" in text and "10 counted requests" in text


@pytest.fixture
def noisy(tmp_path) -> Path:
    path = tmp_path / "noisy.txt"   # a log of 1.5 requests a second for 2 minutes
    path.write_text("".join(f"{n}\n" for n in [1, 0, 3, 2, 1, 2] * 20))
    return path


@pytest.mark.parametrize("extra, warned", [
    ([], True),
    (["--coarse-s", "600"], False),
    (["--scale", "2"], False),
], ids=["per-second", "coarse", "scaled-little"])
def test_python_m_sim_warns_on_stderr_and_replays_the_coarse_shape(tmp_path, noisy, extra, warned):
    flags = extra if "--scale" in extra else ["--scale", "40", *extra]
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["--trace", str(noisy), *flags, "--policies", "static-min", "--out", str(tmp_path / "o")],
                    environ={}, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert err.getvalue().startswith(f"python -m sim: warning: {noisy} is a log of 1.5 requests") == warned
    trace = json.loads((tmp_path / "o" / "comparison.json").read_text())["trace"]
    assert (trace["counting_noise"] is not None) == warned
    assert trace["coarse_s"] == (600 if "--coarse-s" in extra else None)
    if "--coarse-s" in extra:   # one flat window of 1.5 req/s x 40: its peak is its mean
        assert trace["scaled_peak_rps"] == pytest.approx(60.0)


@pytest.mark.parametrize("value, words", [
    ("0", "--coarse-s=0: expected an integer >= 1 s"),
    ("1.5", "--coarse-s=1.5: expected an integer >= 1 s"),
], ids=["zero", "fraction"])
def test_a_bad_coarse_window_exits_2_naming_the_flag(tmp_path, noisy, value, words):
    err = io.StringIO()
    assert cli.main(["--trace", str(noisy), "--coarse-s", value, "--out", str(tmp_path / "o")], environ={},
                    stdout=io.StringIO(), stderr=err) == 2
    assert words in err.getvalue()
    assert not (tmp_path / "o").exists()
