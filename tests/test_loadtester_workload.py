"""The trace format (wl.txt), the shipped trace, the option checks and the bundled photos."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtester.config import BUNDLED_IMAGES, DEFAULT_TRACE, OptionError, Options
from loadtester.images import ImageDirError, load_images
from loadtester.workload import WorkloadError, load_workload, parse_workload

GOOD = [
    ("one-number", "5\n", (5.0,)),
    ("fractional", "0.5\n2.25\n", (0.5, 2.25)),
    ("zero-seconds-kept", "0\n3\n0\n", (0.0, 3.0, 0.0)),
    ("comments-and-blanks", "# header\n\n4  # ramp\n   \n6\n", (4.0, 6.0)),
    ("no-final-newline", "1\n2", (1.0, 2.0)),
    ("crlf-line-ends", "1\r\n2\r\n", (1.0, 2.0)),
    ("surrounding-spaces", "  7  \n", (7.0,)),
    ("exponent", "1e1\n", (10.0,)),
]


@pytest.mark.parametrize("text, rates", [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_traces_parse(text, rates):
    assert parse_workload(text, "t.txt").rates_rps == rates


BAD = [
    # id, text, line number in the message, offending text in the message
    ("word", "3\nten\n", 2, "ten"),
    ("two-numbers", "3 4\n", 1, "3 4"),
    ("comma-list", "1,2\n", 1, "1,2"),
    ("negative", "2\n-1\n", 2, "-1"),
    ("nan", "nan\n", 1, "nan"),
    ("infinite", "inf\n", 1, "inf"),
    ("absurdly-large", "1e9\n", 1, "1e9"),
    ("bad-after-comment", "# c\n\n5\n5x  # note\n", 4, "5x"),
]


@pytest.mark.parametrize("text, line_no, bad", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_lines_name_file_line_and_text(text, line_no, bad):
    with pytest.raises(WorkloadError) as err:
        parse_workload(text, "my-trace.txt")
    message = str(err.value)
    assert message.startswith(f"my-trace.txt:{line_no}:"), message
    assert bad in message
    assert err.value.line_no == line_no


EMPTY = [
    ("empty-file", ""),
    ("only-comments", "# nothing\n\n# here\n"),
    ("all-zero", "0\n0\n"),
]


@pytest.mark.parametrize("text", [e[1] for e in EMPTY], ids=[e[0] for e in EMPTY])
def test_traces_without_work_are_refused(text):
    with pytest.raises(WorkloadError, match="^t.txt: "):
        parse_workload(text, "t.txt")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(WorkloadError, match="nope.txt: no such file"):
        load_workload(tmp_path / "nope.txt")


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "blob.txt"
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(WorkloadError, match="not a text file"):
        load_workload(path)


def test_shipped_trace_has_the_documented_shape():
    trace = load_workload(DEFAULT_TRACE)
    rates = trace.rates_rps
    assert 280 <= trace.duration_s <= 320
    quiet, plateau, burst = max(rates[:30]), sum(rates[60:120]) / 60, max(rates[120:165])
    idle, second = max(rates[170:205]), max(rates[210:270])
    assert quiet <= 3
    assert 3 <= burst / plateau <= 5, "the burst is 3-5x the plateau"
    assert idle <= 2, "near idle after the burst"
    assert plateau < second < burst, "the second wave is smaller than the first burst"
    # Sized for the 2-core demo: peaks above one replica (~20-24 req/s), within two (~35-40 req/s).
    assert 28 <= burst <= 36


OPTION_CASES = [
    ("scale-zero", {"scale": 0}, "--scale"),
    ("scale-negative", {"scale": -1}, "--scale"),
    ("scale-text", {"scale": "abc"}, "--scale"),
    ("speedup-huge", {"speedup": 1e6}, "--speedup"),
    ("duration-zero", {"duration_s": 0}, "--duration"),
    ("timeout-nan", {"timeout_s": "nan"}, "--timeout"),
    ("max-inflight-zero", {"max_inflight": 0}, "--max-inflight"),
    ("max-inflight-fraction", {"max_inflight": 2.5}, "--max-inflight"),
    ("seed-negative", {"seed": -3}, "--seed"),
    ("slo-zero", {"slo_ms": 0}, "--slo-ms"),
    ("window-negative", {"window_s": -10}, "--window"),
    ("arrivals-unknown", {"arrivals": "bursty"}, "--arrivals"),
    ("url-no-scheme", {"url": "127.0.0.1:8000"}, "--url"),
    ("url-bad-port", {"url": "http://127.0.0.1:99999"}, "--url"),
    ("endpoint-relative", {"endpoint": "predict"}, "--endpoint"),
    ("prometheus-not-url", {"prometheus": "localhost"}, "--prometheus"),
]


@pytest.mark.parametrize("values, option", [c[1:] for c in OPTION_CASES], ids=[c[0] for c in OPTION_CASES])
def test_bad_options_name_the_option_value_and_range(values, option):
    with pytest.raises(OptionError) as err:
        Options(**values).validate()
    assert (err.value.key, err.value.value) == (option, next(iter(values.values())))
    assert err.value.allowed and str(err.value).startswith(f"{option}=")


def test_defaults_are_valid_and_strings_are_converted():
    options = Options(scale="2", seed="7", max_inflight="10", url="http://example.test:81/").validate()
    assert (options.scale, options.seed, options.max_inflight) == (2.0, 7, 10)
    assert options.url == "http://example.test:81"
    assert options.trace == DEFAULT_TRACE and options.images == BUNDLED_IMAGES and options.slo_ms == 500.0


def test_bundled_photos_are_real_jpegs_with_a_licence_list():
    photos = load_images(BUNDLED_IMAGES)
    assert 5 <= len(photos) <= 10
    assert all(p.content_type == "image/jpeg" for p in photos)
    assert sum(len(p.data) for p in photos) < 1_000_000
    readme = (BUNDLED_IMAGES / "README.md").read_text()
    for photo in photos:
        assert photo.name in readme, f"{photo.name} has no source/licence entry"


def _write(directory: Path, files: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return directory


IMAGE_DIRS = [
    ("missing", None, "is not a directory"),
    ("empty", {}, "holds no .jpg"),
    ("only-other-files", {"notes.txt": b"hi", "README.md": b"# x"}, "holds no .jpg"),
    ("fake-jpeg", {"a.jpg": b"not an image"}, "is not a JPEG or PNG"),
]


@pytest.mark.parametrize("files, message", [c[1:] for c in IMAGE_DIRS], ids=[c[0] for c in IMAGE_DIRS])
def test_unusable_image_directories_are_refused(tmp_path, files, message):
    directory = tmp_path / "imgs" if files is None else _write(tmp_path / "imgs", files)
    with pytest.raises(ImageDirError, match=message) as err:
        load_images(directory)
    assert str(err.value).startswith("--images")


def test_png_and_jpeg_are_both_accepted_in_name_order(tmp_path):
    jpeg = (BUNDLED_IMAGES / "chelsea.jpg").read_bytes()
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    photos = load_images(_write(tmp_path / "imgs", {"b.PNG": png, "a.jpeg": jpeg, "skip.gif": b"GIF89a"}))
    assert [(p.name, p.content_type) for p in photos] == [("a.jpeg", "image/jpeg"), ("b.PNG", "image/png")]
