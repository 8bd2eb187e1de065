"""Pure planning shared by the local stack (local/) and the simulator (sim/): what a measurement of one
worker implies for a run (sizing.py) and what each named run of a comparison sets (runs.py).

No processes, no I/O: both callers feed it the capacity probe's result and their options.
"""
