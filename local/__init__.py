"""The whole elastic stack on one machine: `python -m local demo|compare` (`make demo`, `make compare`).

Modules, one job each: config (options and their defaults), calibration (one worker measured, cached),
stack (start, wait for ready, replay, stop), prometheus_config (the run's Prometheus configuration), live
(the status line), run (one run end to end), analysis (its numbers), report (the files), machine (what it
ran on). The sizing is planning/sizing.py's; processes are started and stopped by processes/.
"""
