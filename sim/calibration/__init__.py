"""The simulator against a real `make compare` (`python -m sim.calibrate`, sim/calibrate.py), one job per module:

- runs.py: the runs of a comparison directory or of a reduced copy, read through comparison/run_record.py,
  with what they point at (the trace, the calibration, the load tester's parameters, the scrape interval);
- inputs.py: what the simulation of one run is given (its arrivals, replica profile, autoscaler settings
  and the local machine's cluster model), checked against what the run recorded;
- agreement.py: one run, and each policy's repeats, against the simulation, and the goals;
- forwards.py: what a run's Server-Timing says about its forwards (the shared-core model's figures);
- compare.py: every run of a directory simulated (once per distinct inputs) and compared: the document;
- report.py: that document as the command prints it;
- record.py: a reduced copy of a comparison, small enough to keep as test data.
"""
