"""The policy comparison that the local stack (`make compare`) and the simulator (`python -m sim`,
`make simulate`) both report: one definition of every figure, one table, one set of targets, one plot.

- comparison/events.py: decision lines, scale events, direction reversals, replica-seconds (step integral);
- comparison/summary.py: one run's figures from the load tester's summary, the decisions and the replicas;
- comparison/table.py: the comparison row of a run, the median and range over repeats, the markdown table,
  and comparison.json / .csv / .md;
- comparison/targets.py: the goals set for the slo policy, PASS / MISS / n/a, and what repeats cannot tell
  apart;
- comparison/plots.py: comparison.png of several runs (one run's timeline is the load tester's);
- comparison/run_record.py: one run's record, run.json, that the local stack writes and the simulator's
  calibration reads (typed, versioned, checked on both sides);
- comparison/recorded.py and cli.py: `python -m comparison RUN_DIR ...`, the same comparison of load tester
  runs recorded against any deployment (a cluster), from their summary.json alone.

It reads no run directory beyond one run.json (local/analysis.py does) or a load tester's summary.json, and
no Prometheus (the load tester does), and builds no cluster (sim/ does): nothing here imports local/ or sim/.
"""
