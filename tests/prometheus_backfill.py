"""A real Prometheus holding series the test wrote: OpenMetrics text with timestamps, turned into blocks by
`promtool tsdb create-blocks-from openmetrics` and served by a Prometheus with no scrape jobs.

Backfill cannot write staleness markers (OpenMetrics has no way to say one), so a series that stops is
returned to instant selectors for the 5 min lookback after its last sample; range selectors, hence rate(),
see the same samples as after real scrapes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests import support


def backfill(text: str, directory: Path) -> Path:
    """Blocks in `directory`/data from OpenMetrics `text` (each series' samples together, in time order,
    ending with `# EOF`)."""
    source, blocks = directory / "scrapes.om", directory / "data"
    source.write_text(text)
    done = subprocess.run([support.promtool_binary(), "tsdb", "create-blocks-from", "openmetrics", str(source),
                           str(blocks)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"promtool backfill failed:\n{done.stdout}\n{done.stderr}"
    return blocks


def start_prometheus(blocks: Path, directory: Path) -> support.Child:
    """A real Prometheus serving `blocks`, with no scrape jobs, on a free 127.0.0.1 port; `child.extra["url"]`."""
    config = directory / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 5s\n")
    port = support.free_port()
    # The blocks are minutes old; a long retention keeps any clock skew from deleting them.
    child = support.start_child("prometheus", [
        support.prometheus_binary(), f"--config.file={config}", f"--storage.tsdb.path={blocks}",
        "--storage.tsdb.retention.time=10y", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        directory / "logs", cwd=directory)
    url = f"http://127.0.0.1:{port}"
    child.extra.update(url=url)
    return support.wait_ready(child, lambda: support.http_ok(f"{url}/-/ready"), 120, f"prometheus at {url}")
