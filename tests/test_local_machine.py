"""local/machine.py's reading of the CPU cgroup, which the calibration's cache key and the benchmark's quota share."""

from __future__ import annotations

import pytest

from local.machine import cpu_cgroup


@pytest.mark.parametrize("content, expected", [
    ("12:cpu,cpuacct:/kubepods/pod1\n11:memory:/kubepods/pod1\n", "/kubepods/pod1"),
    ("4:memory:/a\n3:cpuacct,cpu:/b\n", "/b"),
    ("2:cpuset:/c\n1:cpu:/\n", "/"),
    ("0::/user.slice\n", None),
    ("", None),
    ("garbage\n5:cpu:/d\n", "/d"),
], ids=["v1-cpu-with-cpuacct", "controllers-in-any-order", "cpuset-is-not-cpu", "v2-only", "empty",
        "a-line-it-cannot-read-is-skipped"])
def test_cpu_cgroup(tmp_path, content, expected):
    path = tmp_path / "cgroup"
    path.write_text(content)
    assert cpu_cgroup(path) == expected


def test_cpu_cgroup_of_a_missing_file_is_none(tmp_path):
    assert cpu_cgroup(tmp_path / "no-such-file") is None
