"""bench/cpu_quota.py: what a block starts runs under a CFS quota, and the quota goes with the block."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from bench.cpu_quota import CPU_HIERARCHY, PERIOD_US, QuotaUnavailable, cpu_group, joined, own_group

BUSY_S = 2.0
SPIN = f"import time\nend = time.monotonic() + {BUSY_S}\nwhile time.monotonic() < end: pass\nimport os; print(sum(os.times()[:2]))"


def spin_cpu_s() -> float:
    """CPU seconds a child spends spinning for BUSY_S of wall time."""
    done = subprocess.run([sys.executable, "-c", SPIN], capture_output=True, text=True, timeout=60, check=True)
    return float(done.stdout)


writable = os.access(CPU_HIERARCHY, os.W_OK) and (CPU_HIERARCHY / "tasks").is_file()


@pytest.mark.skipif(not writable, reason=f"no writable cgroup v1 cpu hierarchy at {CPU_HIERARCHY} (needs root)")
@pytest.mark.parametrize("fraction, period_us", [(0.25, PERIOD_US), (0.5, PERIOD_US), (0.5, 10_000)],
                         ids=["quarter-core", "half-core", "half-core-per-10-ms"])
def test_a_child_started_in_the_block_gets_its_share_and_no_more(fraction, period_us):
    before = own_group()
    with cpu_group(fraction, period_us=period_us) as group:
        assert (group / "cpu.cfs_period_us").read_text().strip() == str(period_us)
        with joined(group):
            assert own_group() == group
            used_s = spin_cpu_s()
        assert group.is_dir()
    assert not group.exists()                              # removed once the block and its children ended
    # At most the quota (plus one period's slack for start-up); and not starved to nothing.
    assert 0.5 * fraction * BUSY_S <= used_s <= fraction * BUSY_S + 0.25, used_s
    # After the block this process is back in the group it was in: what it starts next is free.
    assert own_group() == before


@pytest.mark.parametrize("fraction", [0, -0.5], ids=["zero", "negative"])
def test_a_share_of_nothing_is_refused(fraction, tmp_path):
    with pytest.raises(ValueError, match=f"fraction={fraction}"):
        with cpu_group(fraction, hierarchy=tmp_path):
            pass


@pytest.mark.parametrize("fraction, period_us, named", [
    (0.5, 999, "a period of 0.999 ms"),
    (0.5, 1_000_001, "a period of 1000 ms"),
    (0.5, 1_500, "a period of 1.5 ms"),     # half of it is under the kernel's 1 ms least quota
], ids=["period-under-1-ms", "period-over-1-s", "quota-under-1-ms"])
def test_a_period_the_kernel_refuses_is_refused_first(fraction, period_us, named, tmp_path):
    with pytest.raises(ValueError, match=named):
        with cpu_group(fraction, hierarchy=tmp_path, period_us=period_us):
            pass


def test_without_a_cgroup_v1_cpu_hierarchy_it_says_so(tmp_path):
    with pytest.raises(QuotaUnavailable, match="no cgroup v1 cpu hierarchy"):
        with cpu_group(0.5, hierarchy=tmp_path):
            pass


@pytest.mark.skipif(not writable, reason=f"no writable cgroup v1 cpu hierarchy at {CPU_HIERARCHY} (needs root)")
def test_a_process_started_in_the_group_keeps_it_until_it_ends_and_then_the_group_goes():
    with cpu_group(0.5) as group:
        with joined(group):
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            # A thread the block starts leaves with the process, not only the thread that joined.
            started = threading.Thread(target=time.sleep, args=(2,))
            started.start()
        assert str(started.native_id) not in (group / "tasks").read_text().split()
        started.join()
        try:
            assert str(child.pid) in (group / "cgroup.procs").read_text().split()   # still held after `joined`
        finally:
            child.kill()
            child.wait(timeout=30)
    assert not group.exists()


@pytest.mark.skipif(not writable, reason=f"no writable cgroup v1 cpu hierarchy at {CPU_HIERARCHY} (needs root)")
def test_a_thread_can_hold_a_second_group_while_the_first_is_still_there():
    # As when a helper process started in the first block (multiprocessing's resource tracker) keeps it alive.
    with cpu_group(0.5) as first:
        with cpu_group(0.25, period_us=10_000) as second:
            assert first != second and first.is_dir() and second.is_dir()
            assert (second / "cpu.cfs_quota_us").read_text().strip() == "2500"
    assert not first.exists() and not second.exists()
