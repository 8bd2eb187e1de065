"""The worker that shares one queue with its siblings (inference/worker.py), under a real gunicorn.

With one worker there is no sibling to leave a connection to, which makes the pause itself observable:
while a batch is waiting, a new connection sits in the kernel's accept queue for ACCEPT_YIELD_MS before
the worker takes it anyway. Only lower bounds on time are asserted, so a slow machine cannot fail them.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest
import requests

from tests import images
from tests.support import start_gunicorn

BODY = images.jpeg((320, 240))


def post(url: str) -> tuple[int, float]:
    began = time.monotonic()
    answer = requests.post(f"{url}/predict", data=BODY, headers={"Content-Type": "image/jpeg"}, timeout=120)
    return answer.status_code, time.monotonic() - began


@pytest.mark.parametrize("yield_ms", [600.0], ids=["long-pause"])
def test_a_busy_worker_pauses_accepting_then_takes_the_connection_anyway(tmp_path, yield_ms):
    child = start_gunicorn(tmp_path, env={"ACCEPT_YIELD_DEPTH": 1, "ACCEPT_YIELD_MS": yield_ms,
                                          "MAX_BATCH_SIZE": 1, "MAX_QUEUE": 8, "MAX_QUEUE_WAIT_MS": 0})
    try:
        url = child.extra["url"]
        assert post(url)[0] == 200
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda _: post(url), range(6)))
        assert [s for s, _ in results] == [200] * 6
        # Some connection arrived while a batch waited and sat out at least one pause.
        assert max(t for _, t in results) >= yield_ms / 1000.0
    finally:
        child.stop()
