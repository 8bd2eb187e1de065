"""Starting, waiting for and stopping the project's processes, and the service's readiness marker.

- ready_marker.py: the marker a warmed-up worker writes (the service writes it; the autoscaler's gunicorn
  scaler, the local stack, the benchmarks and the tests read it). Standard library only: both images ship it.
- net.py: the loopback host, free ports, "is it listening", "does it answer 200".
- children.py: a child process in its own process group, its output in a log, stopped by its PID; waiting
  for a condition; what is alive (psutil).
- services.py: the service (gunicorn) and Prometheus as the local stack, the benchmarks and the tests run them.
"""
