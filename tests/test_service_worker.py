"""The worker that shares one queue with its siblings (inference/worker.py), under a real gunicorn.

With one worker there is no sibling to leave a connection to, which makes the pause itself observable:
while a batch is waiting, a new connection sits in the kernel's accept queue for ACCEPT_YIELD_MS before
the worker takes it anyway. A worker that admission would refuse does not pause: its 503 comes at once.
The pause is long (a second) so that what is asserted is far from any machine's own speed: a connection
that sat one out took at least that long; those that did not took well under it, but for the one or two
that waited for the images holding the queue.
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
HELD_IMAGES = 48  # one request that keeps images waiting for a while (about a second), with batches of one
LAUNCH_EVERY_S = 0.05


def post(url: str, count: int = 1) -> tuple[int, float]:
    began = time.monotonic()
    if count == 1:
        answer = requests.post(f"{url}/predict", data=BODY, headers={"Content-Type": "image/jpeg"}, timeout=120)
    else:
        answer = requests.post(f"{url}/predict", files=[("file", (f"{i}.jpg", BODY, "image/jpeg"))
                                                        for i in range(count)], timeout=120)
    return answer.status_code, time.monotonic() - began


def while_held(url: str) -> list[tuple[int, float]]:
    """One-image requests, a new one every LAUNCH_EVERY_S without waiting for the others (one may be stuck
    behind the held images), for as long as a request of HELD_IMAGES is being computed."""
    # Forwards back to back teach admission its seconds per image (the time from one to the next).
    assert post(url, 4)[0] == 200
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        held = pool.submit(post, url, HELD_IMAGES)
        singles = [pool.submit(post, url)]
        while not concurrent.futures.wait([held], timeout=LAUNCH_EVERY_S).done:
            singles.append(pool.submit(post, url))
        assert held.result()[0] == 200
        return [single.result() for single in singles]


# Batches of one image; a pause needs two images waiting (ACCEPT_YIELD_DEPTH 2).
# busy-with-room: admission by count only, and room for all: a connection that arrives while images wait
#   sits out the pause, then is served.
# full-by-the-wait: admission by predicted wait at its floor (two forwards): images waiting leave no room for
#   another (two waiting already take three forwards), so the requests are refused at once, not after a
#   pause, however the arrivals fall. (By the count alone, 128, that worker would look busy with room and
#   pause before its 503s: every request launched in the first half of a pause, about ten, would take over
#   half of it.) Slow ones are allowed only for the one or two that may be admitted before the held
#   request, and then wait for its images.
@pytest.mark.parametrize("env, expect", [
    ({"MAX_QUEUE": 128, "MAX_QUEUE_WAIT_MS": 0}, "pauses"),
    ({"MAX_QUEUE": 128, "MAX_QUEUE_WAIT_MS": 1}, "refuses-at-once"),
], ids=["busy-with-room", "full-by-the-wait"])
def test_a_busy_worker_pauses_accepting_a_full_one_refuses_at_once(tmp_path, env, expect):
    child = start_gunicorn(tmp_path, env={"ACCEPT_YIELD_DEPTH": 2, "ACCEPT_YIELD_MS": PAUSE_MS,
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
        assert set(statuses) <= {200, 503} and 503 in statuses, statuses
        slow = [t for _, t in results if t >= 0.5 * PAUSE_MS / 1000.0]
        assert len(slow) <= 3, results
