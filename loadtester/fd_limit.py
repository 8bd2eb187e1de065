"""The open-file limit, which bounds the requests in flight: each holds a socket.

Checking options only reads the limit (`max_inflight_limit()`); a replay or a capacity probe raises the
soft limit to the hard one when it starts (`raise_fd_limit()`), so validating options changes nothing in
the process.
"""

from __future__ import annotations

import resource

# Sockets beyond the in-flight cap: the event loop, log files, the preflight probe, Prometheus queries.
SPARE_FDS = 64
_UNLIMITED = 1 << 20  # what an unlimited hard limit counts as


def fd_limit_reachable() -> int:
    """The soft limit `raise_fd_limit()` would reach: the hard limit, or the soft one where that is higher."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    return hard if soft == resource.RLIM_INFINITY or soft < hard else soft


def max_inflight_limit() -> int:
    """The most requests that can be in flight once the limit is raised: the limit less spares."""
    return max(1, fd_limit_reachable() - SPARE_FDS)


def raise_fd_limit() -> int:
    """Lift the soft open-file limit to the hard one; the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = _UNLIMITED
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return hard if soft == resource.RLIM_INFINITY else soft


def max_inflight_allowed() -> int:
    """The limit raised, then the requests that may be in flight under it (the capacity probe's cap)."""
    return max(1, raise_fd_limit() - SPARE_FDS)
