"""The whole elastic stack on one machine: `python -m local demo|compare` (`make demo`, `make compare`).

Modules, one job each: config (options, defaults, sizing), processes (children, logs, ports), stack (start,
wait for ready, replay, stop), prometheus_config (the run's Prometheus config), run (one run end to end),
analysis (its numbers), report and compare (the files), plots, machine (what it ran on).
"""
