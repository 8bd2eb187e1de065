"""The worker that shares one queue with its siblings (inference/worker.py), under a real gunicorn.

With one worker there is no sibling to leave a connection to, which makes the pause itself observable:
while a batch is waiting, a new connection sits in the kernel's accept queue for ACCEPT_YIELD_MS before
the worker takes it anyway. A worker that admission would refuse does not pause: its 503 comes at once.
The pause is long (a second) so that what is asserted is far from any machine's own speed: a connection
that sat one out took at least that long; a refusal that did not took well under it.
"""

from __future__ import annotations

import concurrent.futures
import time

import pytest
import requests

from tests import images
from tests.support import start_gunicorn

BODY = images.jpeg((320, 240))
PAUSE_MS = 1000.0
HELD_IMAGES = 32  # one request that keeps images waiting for a while, with batches of one


def post(url: str, count: int = 1) -> tuple[int, float]:
    began = time.monotonic()
    if count == 1:
        answer = requests.post(f"{url}/predict", data=BODY, headers={"Content-Type": "image/jpeg"}, timeout=120)
    else:
        answer = requests.post(f"{url}/predict", files=[("file", (f"{i}.jpg", BODY, "image/jpeg"))
                                                        for i in range(count)], timeout=120)
    return answer.status_code, time.monotonic() - began


def while_held(url: str) -> list[tuple[int, float]]:
    """One-image requests, one after another, while a request of HELD_IMAGES is being computed."""
    # Forwards back to back teach admission its seconds per image (the time from one to the next).
    assert post(url, 4)[0] == 200
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        held = pool.submit(post, url, HELD_IMAGES)
        results = []
        while not held.done() or not results:
            results.append(post(url))
        assert held.result()[0] == 200
    return results


# Batches of one image, so one waiting image is "a batch waiting" (ACCEPT_YIELD_DEPTH 1).
# busy-with-room: admission by count only, and room for all: a connection that arrives while images wait
#   sits out the pause, then is served.
# full-by-the-wait: admission by predicted wait at its floor (two forwards): images waiting leave no room for
#   another, so the requests are refused at once, not after a pause. (By the count alone, 64, that worker
#   would look busy with room, and would pause before each 503.)
@pytest.mark.parametrize("env, expect", [
    ({"MAX_QUEUE": 64, "MAX_QUEUE_WAIT_MS": 0}, "pauses"),
    ({"MAX_QUEUE": 64, "MAX_QUEUE_WAIT_MS": 1}, "refuses-at-once"),
], ids=["busy-with-room", "full-by-the-wait"])
def test_a_busy_worker_pauses_accepting_a_full_one_refuses_at_once(tmp_path, env, expect):
    child = start_gunicorn(tmp_path, env={"ACCEPT_YIELD_DEPTH": 1, "ACCEPT_YIELD_MS": PAUSE_MS,
                                          "MAX_BATCH_SIZE": 1, **env})
    try:
        results = while_held(child.extra["url"])
    finally:
        child.stop()
    statuses = [s for s, _ in results]
    if expect == "pauses":
        assert statuses == [200] * len(results)
        assert max(t for _, t in results) >= PAUSE_MS / 1000.0
    else:
        refusals = [t for s, t in results if s == 503]
        assert set(statuses) <= {200, 503} and refusals, statuses
        assert max(refusals) < 0.5 * PAUSE_MS / 1000.0, refusals
