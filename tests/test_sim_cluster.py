"""The simulated Deployment and Service: start-up, removal lag, drain, routing; the Scaler protocol."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sim.cluster import Cluster, ClusterSettings, Outcomes, _water_fill
from sim.engine import LIFECYCLE, Engine
from sim.profile import default_profile
from sim.replica import LOST, OK, PENDING

# A start-up of exactly 3 s + 2 s pod overhead: the times below are hand-computed from it.
PROFILE = replace(default_profile(), startup_s=3.0, startup_sigma=0.0, pod_overhead_s=2.0)


def build(arrivals_s, initial=1, **settings):
    engine = Engine()
    arrivals_s = np.asarray(arrivals_s, dtype=np.float64)
    outcomes = Outcomes(len(arrivals_s))
    cluster = Cluster(PROFILE, engine, arrivals_s, outcomes, ClusterSettings(**settings), initial, seed=3)
    return engine, cluster, outcomes


def at(engine, cluster, t_s, action):
    engine.at(t_s, LIFECYCLE, action)


def test_a_scale_up_is_ready_after_the_start_up_and_only_then_gets_requests():
    arrivals = np.arange(0.0, 30.0, 0.05)          # 20 req/s
    engine, cluster, outcomes = build(arrivals)
    seen = {}
    at(engine, cluster, 10.0, lambda: cluster.set_replicas(2))
    for t in (10.0, 14.9, 15.1):
        engine.at(t, 9, lambda t=t: seen.setdefault(t, cluster.status()))
    engine.run(30.0, cluster.route_until)
    cluster.finish()
    assert (seen[10.0].current, seen[10.0].ready, seen[10.0].live) == (2, 1, 2)
    assert seen[14.9].ready == 1 and seen[15.1].ready == 2
    second = outcomes.replica == 1
    assert second.any() and arrivals[second].min() >= 15.0
    assert (outcomes.code == OK).all()
    assert cluster.ready_timeline == [[0.0, 1.0], [15.0, 2.0]]


def test_a_pod_removed_while_starting_never_serves():
    engine, cluster, outcomes = build(np.arange(0.0, 20.0, 0.1))
    at(engine, cluster, 1.0, lambda: cluster.set_replicas(2))
    at(engine, cluster, 2.0, lambda: cluster.set_replicas(1))
    engine.run(20.0, cluster.route_until)
    cluster.finish()
    assert (outcomes.replica == 0).all()
    assert cluster.status().live == 1


@pytest.mark.parametrize("lag_s", [0.0, 2.0], ids=["no-lag", "two-second-lag"])
def test_a_removed_pod_still_gets_requests_during_the_endpoint_lag(lag_s):
    arrivals = np.arange(0.0, 30.0, 0.025)          # 40 req/s: one pod can serve them all
    engine, cluster, outcomes = build(arrivals, initial=2, removal_lag_s=lag_s)
    status = {}
    at(engine, cluster, 10.0, lambda: cluster.set_replicas(1))
    engine.at(10.0, 9, lambda: status.setdefault("after", cluster.status()))
    engine.run(30.0, cluster.route_until)
    cluster.finish()
    removed = [p for p in cluster.pods if p.removed_s is not None]
    assert len(removed) == 1
    got = arrivals[outcomes.replica == removed[0].id]
    assert got.max() < 10.0 + lag_s + 1e-9
    if lag_s:
        assert got.max() > 10.0 + lag_s - 0.1      # it kept receiving until the lag ran out
    assert status["after"].ready == 1               # Terminating: no longer ready at once
    assert (outcomes.code == OK).all()


def test_a_removed_pod_drains_what_it_holds_before_it_exits():
    # A burst of 20 at t=5 on one pod, which is removed right after: it answers all of them.
    arrivals = np.concatenate([5.0 + np.arange(20) * 1e-6, [20.0]])
    engine, cluster, outcomes = build(arrivals, initial=1, removal_lag_s=0.0)
    live = {}
    at(engine, cluster, 5.01, lambda: cluster.set_replicas(0))
    engine.at(5.2, 9, lambda: live.setdefault(5.2, cluster.status()))
    engine.run(30.0, cluster.route_until)
    cluster.finish()
    assert (outcomes.code[:20] == OK).all()        # 3 batches: the last leaves at ~5.42 s
    assert outcomes.code[20] == LOST               # nothing left to receive the request at 20 s
    assert live[5.2].live == 1 and live[5.2].ready == 0
    pod = cluster.pods[0]
    assert pod.gone_s == pytest.approx(np.max(arrivals[:20] + outcomes.latency_s[:20]), abs=1e-9)
    assert cluster.ready_timeline[-1] == [pytest.approx(pod.gone_s), 0.0]


def test_requests_with_no_endpoint_are_lost_not_pending():
    engine, cluster, outcomes = build([1.0, 2.0], initial=0)
    engine.run(5.0, cluster.route_until)
    cluster.finish()
    assert (outcomes.code == LOST).all() and not (outcomes.code == PENDING).any()


def _per_replica_counts(routing: str, initial: int = 4):
    rng = np.random.default_rng(0)
    arrivals = np.sort(rng.uniform(0, 60, 60 * 160))   # 160 req/s: 74% of four replicas' saturation
    engine, cluster, outcomes = build(arrivals, initial=initial, routing=routing)
    engine.run(60.0, cluster.route_until)
    cluster.finish()
    return np.bincount(outcomes.replica, minlength=initial), outcomes


@pytest.mark.parametrize("routing, max_spread", [("random", None), ("least-outstanding", 0.01)],
                         ids=["random-per-connection", "least-outstanding"])
def test_routing_spreads_requests(routing, max_spread):
    counts, outcomes = _per_replica_counts(routing)
    assert (outcomes.code == OK).all()
    share = counts / counts.sum()
    if max_spread is None:
        # Random: roughly even, with binomial noise (sd ~0.9% of the total here) but not exactly even.
        assert np.abs(share - 0.25).max() < 0.04
        assert np.abs(share - 0.25).max() > 0.001
    else:
        assert np.abs(share - 0.25).max() < max_spread


def test_least_outstanding_sends_a_fresh_replica_more_than_its_share_while_others_are_backlogged():
    arrivals = np.arange(0.0, 40.0, 1 / 150)     # 150 req/s: over two replicas' saturation (120)
    # The backlog the fresh one is sent to even out is what the old ones' queues admit (about three batches).
    for routing, check in (("random", lambda n: n < 1.2), ("least-outstanding", lambda n: n > 1.2)):
        engine, cluster, outcomes = build(arrivals, initial=2, routing=routing)
        at(engine, cluster, 15.0, lambda: cluster.set_replicas(3))
        engine.run(40.0, cluster.route_until)
        cluster.finish()
        # From when the third is ready (20 s), in its first second: 1.0 is a fair third of the requests.
        window = (arrivals >= 20.0) & (arrivals < 21.0)
        share_new = float((outcomes.replica[window] == 2).mean()) * 3
        assert check(share_new), (routing, share_new)


@pytest.mark.parametrize("levels, n, expected", [
    ([0, 0, 0], 9, [3, 3, 3]),
    ([5, 0, 0], 4, [0, 2, 2]),
    ([5, 0, 0], 16, [2, 7, 7]),
    ([1, 2, 3], 1, [1, 0, 0]),
], ids=["even", "fills-the-low-ones", "past-the-high-one", "one-request"])
def test_water_filling(levels, n, expected):
    share = _water_fill(np.asarray(levels, dtype=float), n)
    assert share.tolist() == expected


# --- workers sharing one machine's cores (the local stack) ---------------------------------------------------
def test_without_a_shared_core_slowdown_no_replica_is_ever_slowed():
    arrivals = np.arange(0.0, 20.0, 0.01)             # 100 req/s over two pods: both busy
    engine, cluster, outcomes = build(arrivals, initial=2)
    engine.run(20.0, cluster.route_until)
    cluster.finish()
    assert all(pod.replica.slowdown == 1.0 for pod in cluster.pods)


@pytest.mark.parametrize("k, times, share", [
    (0.2, 0.001 + np.arange(20) * 0.05, 0.5),    # 20 lone forwards of 25 ms (the profile's model(1)): half the step
    (0.5, 0.001 + np.arange(20) * 0.05, 0.5),
    (0.2, np.repeat(0.001 + np.arange(10) * 0.1, 8), 0.9975),   # 8 every 0.1 s: full batches (133 ms) back
                                                                  # to back from 0.0025 s on
    (0.2, np.empty(0), 0.0),                     # an idle neighbour costs nothing
], ids=["half-busy", "half-busy-larger-k", "fully-busy", "idle"])
def test_a_replica_is_slowed_by_its_neighbour_s_busy_share(k, times, share):
    engine, cluster, _ = build([], initial=2, shared_core_slowdown=k)
    busy = cluster.pods[0].replica
    busy.sink = Outcomes(len(times))
    busy.add_arrivals(times, np.arange(len(times)))
    engine.run(1.0, cluster.route_until)           # the first step, at 1 s
    assert busy.busy_s(1.0) == pytest.approx(share, abs=1e-9)
    assert busy.slowdown == 1.0                    # its neighbour did nothing
    assert cluster.pods[1].replica.slowdown == pytest.approx(1.0 + k * share, abs=1e-9)


@pytest.mark.parametrize("k, before_ms, starting_ms", [(0.0, 27.0, 27.0), (0.2, 27.0, 32.0)],
                         ids=["own-cores", "shared-cores"])
def test_a_starting_worker_slows_the_serving_one(k, before_ms, starting_ms):
    # 30 req/s, one at a time: 1.5 preprocess + 25 forward + 0.5 = 27 ms each (no batching wait); while a second
    # worker starts (5.5 s .. 10.5 s) every step from 6 s counts it as one busy neighbour: forwards x 1.2.
    arrivals = 0.01 + np.arange(0.0, 20.0, 1 / 30)
    engine, cluster, outcomes = build(arrivals, shared_core_slowdown=k)
    at(engine, cluster, 5.5, lambda: cluster.set_replicas(2))
    engine.run(20.0, cluster.route_until)
    cluster.finish()
    latency_ms = outcomes.latency_s * 1000
    np.testing.assert_allclose(latency_ms[arrivals < 6.0], before_ms, atol=1e-6)
    np.testing.assert_allclose(latency_ms[(arrivals > 6.0) & (arrivals < 10.5)], starting_ms, atol=1e-6)
    assert (outcomes.replica[arrivals < 10.5] == 0).all() and (outcomes.code == OK).all()


def test_a_negative_shared_core_slowdown_is_refused():
    with pytest.raises(ValueError, match="shared_core_slowdown must be >= 0"):
        build([], shared_core_slowdown=-0.1)
