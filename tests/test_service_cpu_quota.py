"""inference/cpu_quota.py: the CPU quota read from the cgroup files, and what a worker makes of it (its
pacer's budget and its ready line's note). The pacer itself is tested in tests/test_service_pacer.py.

The cgroup trees are folders the test writes, laid out as the kernel's are.
"""

from __future__ import annotations

import pytest

from inference.config import ServiceConfig
from inference.cpu_quota import Quota, quota_cpus, read_quota
from inference.state import quota_note, quota_pacer

V1 = "12:cpu,cpuacct:{path}\n4:memory:/x\n0::/"
V2 = "0::{path}"


def v1_group(root, folder, quota_us, period_us=100_000):
    group = root / "cpu,cpuacct" / folder.lstrip("/")
    group.mkdir(parents=True, exist_ok=True)
    (group / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (group / "cpu.cfs_period_us").write_text(f"{period_us}\n")


def v2_group(root, folder, cpu_max):
    (root / "cgroup.controllers").write_text("cpu memory\n")
    group = root / folder.lstrip("/")
    group.mkdir(parents=True, exist_ok=True)
    (group / "cpu.max").write_text(cpu_max + "\n")


def layout_v1_half(root):
    v1_group(root, "/", -1)
    v1_group(root, "/kubepods", -1)
    v1_group(root, "/kubepods/pod1", 50_000)
    return V1.format(path="/kubepods/pod1")


def layout_v1_parent_tighter(root):
    v1_group(root, "/", -1)
    v1_group(root, "/pod", 25_000)
    v1_group(root, "/pod/c", 100_000)
    return V1.format(path="/pod/c")


def layout_v1_unlimited(root):
    v1_group(root, "/", -1)
    v1_group(root, "/a", -1)
    return V1.format(path="/a")


def layout_v1_namespaced(root):
    v1_group(root, "/", 150_000, 100_000)   # a container with its own cgroup namespace sees its group as /
    return V1.format(path="/")


def layout_v1_host_path(root):
    v1_group(root, "/", 20_000, 10_000)   # no cgroup namespace: the host's path is not under the mount
    return V1.format(path="/kubepods/pod9/c")


def layout_v2_half(root):
    v2_group(root, "/", "max 100000")
    v2_group(root, "/pod", "50000 100000")
    return V2.format(path="/pod")


def layout_v2_unlimited(root):
    v2_group(root, "/", "max 100000")
    return V2.format(path="/")


def layout_garbled(root):
    v1_group(root, "/", -1)
    (root / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("lots\n")
    return V1.format(path="/")


def layout_no_cpu_controller(root):
    return "4:memory:/x"


@pytest.mark.parametrize("layout, expected", [
    (layout_v1_half, Quota(0.5, 0.1)),
    (layout_v1_parent_tighter, Quota(0.25, 0.1)),
    (layout_v1_unlimited, None),
    (layout_v1_namespaced, Quota(1.5, 0.1)),
    (layout_v1_host_path, Quota(2.0, 0.01)),
    (layout_v2_half, Quota(0.5, 0.1)),
    (layout_v2_unlimited, None),
    (layout_garbled, None),
    (layout_no_cpu_controller, None),
], ids=["v1-500m", "v1-parent-tighter", "v1-no-limit", "v1-own-namespace", "v1-host-path-not-mounted",
        "v2-500m", "v2-max", "garbled-file", "no-cpu-controller"])
def test_the_quota_is_the_tightest_on_the_way_up(layout, expected, tmp_path):
    root = tmp_path / "sys-fs-cgroup"
    root.mkdir()
    cgroup_file = tmp_path / "cgroup"
    cgroup_file.write_text(layout(root))
    assert read_quota(cgroup_file, root) == expected


def test_without_a_cgroup_file_there_is_no_quota(tmp_path):
    assert read_quota(tmp_path / "missing", tmp_path) is None


@pytest.mark.parametrize("quota, cpus", [(None, None), (Quota(0.5, 0.1), 1), (Quota(1.0, 0.1), 1),
                                         (Quota(1.5, 0.1), 2), (Quota(4.0, 0.1), 4)],
                         ids=["none", "half", "one", "one-and-a-half", "four"])
def test_a_quota_is_worth_whole_cpus_rounded_up(quota, cpus):
    assert quota_cpus(quota) == cpus


@pytest.mark.parametrize("quota, target, workers, budget_s, note", [
    (None, 0.9, 1, None, "no CPU quota"),
    (Quota(0.5, 0.1), 0.0, 1, None, "a CPU quota of 0.5 CPU per 100 ms, not paced (CPU_QUOTA_TARGET=0)"),
    (Quota(0.5, 0.1), 0.9, 1, 0.045, "a CPU quota of 0.5 CPU per 100 ms, paced to 0.9 of this worker's share "
                                     "(CPU_QUOTA_TARGET)"),
    (Quota(2.0, 0.1), 0.9, 4, 0.045, "a CPU quota of 2 CPU per 100 ms, paced to 0.9 of this worker's share "
                                     "(CPU_QUOTA_TARGET)"),
], ids=["no-quota", "quota-not-paced", "quota-paced", "quota-shared-by-four-workers"])
def test_a_worker_paces_to_its_share_of_the_quota_only_when_asked(quota, target, workers, budget_s, note):
    config = ServiceConfig.from_env({}, cpu_quota_target=target, web_concurrency=workers)
    pacer = quota_pacer(config, quota)
    assert (pacer.budget_s if pacer else None) == (pytest.approx(budget_s) if budget_s else None)
    assert quota_note(config, quota) == note
