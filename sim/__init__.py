"""A trace-driven discrete-event simulator of the service on a cluster, driving the real autoscaler.

`python -m sim --trace FILE ...` replays a trace (arrivals from loadtester.schedule) through a model of
the replicas (sim/replica.py: admission, micro-batching, deadlines, calibrated by sim/profile.py), their
lifecycle and routing (sim/cluster.py), Prometheus (sim/prometheus.py) and the autoscaler's own
`Loop.step()` and `decide()`, and compares policies against an oracle that knows the future
(sim/oracle.py). One module per job; sim/run.py puts them together, sim/cli.py is the command line.
"""
