"""The policy comparison that the local stack (`make compare`) and the simulator (`python -m sim`,
`make simulate`) both report: one definition of every figure, one table, one set of targets, one plot.

- comparison/events.py: decision lines, scale events, direction reversals, replica-seconds (step integral);
- comparison/summary.py: one run's figures from the load tester's summary, the decisions and the replicas;
- comparison/table.py: the comparison row of a run, the median and range over repeats, the markdown table,
  and comparison.json / .csv / .md;
- comparison/targets.py: the goals set for the slo policy, PASS / MISS / n/a, and what repeats cannot tell
  apart;
- comparison/plots.py: timeline.png of one run and comparison.png of several.

It reads no run directory and no Prometheus (local/analysis.py does) and builds no cluster (sim/ does):
nothing here imports local/ or sim/.
"""
