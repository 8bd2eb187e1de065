"""The command line as users run it (a subprocess): files, exit codes, error messages, Ctrl-C."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess

import pytest
import requests

from loadtester import read_requests_csv, summarize
from support import PYTHON, REPO, free_port, start_child, start_stub_server, wait_until


def cli(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "loadtester/load_tester.py", "--no-progress", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s)


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    child = start_stub_server(tmp_path_factory.mktemp("stub"), delay_ms=10)
    yield child.extra["url"]
    child.stop()


@pytest.fixture
def short_trace(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("# two seconds\n20\n20\n")
    return path


@pytest.mark.parametrize("entry", [[str(REPO / "loadtester" / "load_tester.py")], ["-m", "loadtester"]],
                         ids=["script-from-elsewhere", "module"])
def test_a_run_writes_every_file(stub, short_trace, tmp_path, entry):
    out = tmp_path / "out"
    proc = subprocess.run([PYTHON, *entry, "--url", stub, "--trace", str(short_trace), "--out", str(out),
                           "--arrivals", "uniform", "--slo-ms", "200"], cwd=REPO if entry[0] == "-m" else tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["requests.csv", "summary.json", "timeline.png"]
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["scheduled"] == summary["requests"]["ok"] == 40
    assert summary["run"]["parameters"]["slo_ms"] == 200.0 and summary["run"]["interrupted"] is False
    with open(out / "requests.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 40
    # The summary a report would compute from the CSV is the one the run wrote.
    recomputed = summarize(read_requests_csv(out / "requests.csv"), slo_ms=200.0,
                           duration_s=summary["throughput"]["duration_s"])
    for key in ("requests", "throughput", "latency_ms", "slo", "sender_lag_ms"):
        assert recomputed[key] == summary[key], key
    assert "latency p95" in proc.stdout and "SLO 200 ms" in proc.stdout


def test_a_status_file_follows_the_replay(stub, tmp_path):
    trace = tmp_path / "three.txt"
    trace.write_text("10\n10\n10\n")
    status = tmp_path / "status.json"
    proc = cli("--url", stub, "--trace", str(trace), "--out", str(tmp_path / "out"), "--status-file", str(status),
               "--slo-ms", "300")
    assert proc.returncode == 0, proc.stderr
    snapshot = json.loads(status.read_text())
    assert snapshot["total_s"] == 3.0 and 1.0 <= snapshot["elapsed_s"] <= 3.0
    assert snapshot["errors"] == 0 and snapshot["sent"] >= 10 and snapshot["window_s"] == 10
    assert snapshot["p95_ms"] is not None and snapshot["offered_rps"] > 0


BAD_TRACES = [
    ("word", "5\n5\nlots\n", ":3:", "'lots'"),
    ("negative", "# c\n-2\n", ":2:", "'-2'"),
    ("empty", "# nothing\n", "no rates found", ""),
]


@pytest.mark.parametrize("text, where, what", [b[1:] for b in BAD_TRACES], ids=[b[0] for b in BAD_TRACES])
def test_bad_trace_exits_2_naming_file_line_and_text(stub, tmp_path, text, where, what):
    trace = tmp_path / "broken.txt"
    trace.write_text(text)
    proc = cli("--url", stub, "--trace", str(trace), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert f"{trace}{where}" in proc.stderr or (where in proc.stderr and str(trace) in proc.stderr)
    assert what in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


# id: (args, what stderr names: the option with the value as given, and what is allowed)
BAD_OPTIONS = {
    "scale": (["--scale", "-1"], ["--scale=-1", ">0..1000"]),
    "speedup-text": (["--speedup", "fast"], ["--speedup='fast'", ">0..1000"]),
    "arrivals": (["--arrivals", "bursty"], ["--arrivals='bursty'", "poisson | uniform"]),
    "max-inflight": (["--max-inflight", "0"], ["--max-inflight=0", "1.."]),
    "url": (["--url", "localhost:8000"], ["--url='localhost:8000'", "http:// or https://"]),
    "images-missing": (["--images", "/nonexistent/dir"], ["--images", "/nonexistent/dir"]),
    "status-file-in-missing-dir": (["--status-file", "/nonexistent/dir/status.json"],
                                   ["--status-file='/nonexistent/dir/status.json'", "an existing directory"]),
}


@pytest.mark.parametrize("args, words", BAD_OPTIONS.values(), ids=BAD_OPTIONS.keys())
def test_bad_option_exits_2_naming_it_its_value_and_what_is_allowed(stub, tmp_path, args, words):
    base = ["--url", stub] if "--url" not in args else []
    proc = cli(*base, *args, "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert all(word in proc.stderr for word in words) and "Traceback" not in proc.stderr, proc.stderr


def test_unreachable_url_exits_1(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    proc = cli("--url", url, "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert f"cannot reach {url}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_and_writes_what_it_has(stub, tmp_path):
    out = tmp_path / "out"
    child = start_child("loadtester", [PYTHON, "loadtester/load_tester.py", "--url", stub, "--out", str(out),
                                       "--no-progress", "--scale", "2"], tmp_path / "logs")
    try:
        # Wait until the replay is under way (requests reached the server), then press Ctrl-C.
        before = requests.get(f"{stub}/stats", timeout=5).json()["requests"]
        wait_until(lambda: requests.get(f"{stub}/stats", timeout=5).json()["requests"] >= before + 5,
                   timeout_s=60, what="the load tester's first requests")
        child.signal(signal.SIGINT)
        child.proc.wait(60)
    finally:
        child.stop()
    assert child.proc.returncode == 130, child.log()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["interrupted"] is True
    assert 0 < summary["requests"]["scheduled"] < summary["run"]["planned_requests"]
    table = read_requests_csv(out / "requests.csv")
    assert len(table) == summary["requests"]["scheduled"]
    assert set(table.kind.tolist()) <= {"ok", "cancelled"}
    assert (out / "timeline.png").exists()
    assert "interrupted" in child.log()


def test_python_api_run_and_stop_event(stub, tmp_path):
    """The API the local demo uses: run() in a thread, ended early by a stop event."""
    import threading

    from loadtester import Options, run

    stop = threading.Event()
    result = {}
    options = Options(url=stub, out=tmp_path / "api", progress=False, arrivals="uniform", scale=2.0)
    before = requests.get(f"{stub}/stats", timeout=5).json()["requests"]
    console = io.StringIO()
    worker = threading.Thread(target=lambda: result.update(summary=run(options, stop=stop, console=console)))
    worker.start()
    try:
        wait_until(lambda: requests.get(f"{stub}/stats", timeout=5).json()["requests"] >= before + 5,
                   timeout_s=60, what="the replay's first requests")
    finally:
        stop.set()
        worker.join(60)
    assert not worker.is_alive()
    summary = result["summary"]
    assert summary["run"]["interrupted"] is True
    assert summary == json.loads((tmp_path / "api" / "summary.json").read_text())
    assert 0 < summary["throughput"]["duration_s"] < summary["run"]["planned_duration_s"]
    assert "latency p95" in console.getvalue()


def test_validate_returns_a_checked_copy_and_leaves_the_process_alone():
    """Checking options changes nothing: not the object (frozen), not the open-file limit, which only a run
    raises when it starts."""
    import dataclasses
    import resource

    from loadtester import Options

    original = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = (min(original[0], 256), original[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, lowered)
    try:
        options = Options(scale="2", seed="7", max_inflight="100")
        checked = options.validate()
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, original)
    assert (checked.scale, checked.seed, checked.max_inflight) == (2.0, 7, 100)
    assert (options.scale, options.seed, options.max_inflight) == ("2", "7", "100")
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.scale = 3.0


def test_unreachable_prometheus_is_a_note_not_a_failure(stub, short_trace, tmp_path):
    out = tmp_path / "out"
    proc = cli("--url", stub, "--trace", str(short_trace), "--out", str(out),
               "--prometheus", f"http://127.0.0.1:{free_port()}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]["ok"] == summary["requests"]["scheduled"] > 0
    assert summary["replicas"] == {} and len(summary["run"]["prometheus_problems"]) == 3
    assert not (out / "replicas.csv").exists()
    assert "note: Prometheus: workers" in proc.stdout


def test_script_runs_from_its_own_directory(tmp_path):
    """`cd loadtester && python load_tester.py` (how earlier versions were started) finds the package."""
    trace = tmp_path / "bad.txt"
    trace.write_text("x\n")
    proc = subprocess.run([PYTHON, "load_tester.py", "--trace", str(trace)], cwd=REPO / "loadtester",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"{trace}:1: not a number: 'x'" in proc.stderr, proc.stderr


def test_script_without_the_project_installed_says_how_to_install_it(tmp_path):
    """A Python that cannot import the project (here: site-packages, where the editable install lives, off
    with -S) gets one line naming the fix, not a traceback."""
    proc = subprocess.run([PYTHON, "-S", str(REPO / "loadtester" / "load_tester.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "the project is not installed in this Python" in proc.stderr and "pip install -e ." in proc.stderr
    assert "Traceback" not in proc.stderr
