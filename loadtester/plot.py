"""timeline.png: offered vs achieved load, latency per window against the SLO, errors, replicas.

The one timeline of a run: reports built on a run link this file rather than drawing their own.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_timeline(path: Path, per_second: dict, windows: list[dict], slo_ms: float, window_s: float,
                  replicas: dict | None = None, title: str = "") -> dict[str, list[str]]:
    """Draw the picture; return each panel's y label with the labels of the lines on it, so a caller can
    tell what the picture shows (the replica panel only exists when `replicas` has a series)."""
    rows = 4 if replicas else 3
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.6 * rows + 0.6), sharex=True)
    seconds = per_second["second"]

    ax = axes[0]
    ax.step(seconds, per_second["offered_rps"], where="post", color="0.55", lw=1, label="offered (scheduled)")
    ax.step(seconds, per_second["achieved_rps"], where="post", color="tab:blue", lw=1.2,
            label="achieved (ok responses)")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)

    ax = axes[1]
    mids = [w["start_s"] + window_s / 2 for w in windows]
    for key, color in (("p50_ms", "tab:green"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        ax.plot(mids, [w[key] if w[key] is not None else float("nan") for w in windows], marker=".",
                color=color, lw=1.2, label=key.replace("_ms", ""))
    ax.axhline(slo_ms, color="k", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
    missed = [w["start_s"] for w in windows if w["requests"] and not w["meets_slo"]]
    for start in missed:
        ax.axvspan(start, start + window_s, color="tab:red", alpha=0.08, lw=0)
    ax.set_yscale("log")
    ax.set_ylabel(f"latency ms ({window_s:g}-s windows)")
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    ax.grid(alpha=0.3, which="both")

    ax = axes[2]
    error_pct = [100.0 * (w["error_rate"] or 0.0) for w in windows]
    # Repeat the last value at the end of its window so the last step has its full width.
    starts = [w["start_s"] for w in windows] + ([windows[-1]["start_s"] + window_s] if windows else [])
    ax.step(starts, error_pct + error_pct[-1:], where="post", color="tab:red")
    ax.set_ylabel(f"errors % ({window_s:g}-s windows)")
    ax.set_ylim(0, max([5.0] + error_pct) * 1.1)
    ax.grid(alpha=0.3)

    if replicas:
        ax = axes[3]
        for name, points in replicas.items():
            ax.step([p[0] for p in points], [p[1] for p in points], where="post", label=name)
        ax.set_ylabel("replicas / workers")
        ax.set_ylim(0, max([1.0] + [p[1] for points in replicas.values() for p in points]) + 0.5)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)

    axes[-1].set_xlabel("seconds since the start of the replay")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    drawn = {ax.get_ylabel(): [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
             for ax in axes}
    plt.close(fig)
    return drawn
