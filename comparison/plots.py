"""comparison.png of several runs: offered load, p95 per window against the SLO, workers.

A run is comparison/summary.py's result (per_second, windows, slo, replicas, decision_ready), from the
local stack or the simulator alike. One run's own timeline is the load tester's (loadtester/plot.py).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"static-min": "tab:gray", "static-max": "tab:brown", "hpa-50": "tab:blue", "hpa-90": "tab:purple",
          "kpa": "tab:orange", "slo": "tab:green", "oracle": "tab:cyan"}
# For runs without a colour of their own (hpa-70, static-3, ...): ones no named run uses.
SPARE_COLORS = ("tab:olive", "tab:pink", "tab:red", "darkkhaki")


def colors_for(names) -> dict[str, str]:
    """Each run's colour: its own, else the next spare one (cycling past the last), never a named run's."""
    names = list(names)
    spare = iter(SPARE_COLORS * (len(names) // len(SPARE_COLORS) + 1))
    return {name: COLORS[name] if name in COLORS else next(spare) for name in names}


def _window_p95(ax, windows: list[dict], window_s: float, **style) -> None:
    mids = [w["start_s"] + window_s / 2 for w in windows]
    ax.plot(mids, [w["p95_ms"] if w["p95_ms"] is not None else float("nan") for w in windows], marker=".", **style)


def plot_comparison(path: Path, results: dict[str, dict], slo_ms: float, title: str) -> None:
    """One line per run: p95 per window against the SLO, and workers over time; offered load on top."""
    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True, gridspec_kw={"height_ratios": [1, 1.6, 1.3]})
    first = next(iter(results.values()))
    per_second = first["per_second"]
    if per_second:
        axes[0].plot(per_second["second"], per_second["offered_rps"], color="0.4", lw=1)
    axes[0].set_ylabel("offered req/s")
    axes[0].grid(alpha=0.3)
    colors = colors_for(list(results))
    for name, result in results.items():
        color = colors[name]
        _window_p95(axes[1], result["windows"], result["slo"]["window_s"], color=color, lw=1.2, label=name)
        pts = result["replicas"].get("workers") or result["decision_ready"]
        if pts:
            axes[2].step([p[0] for p in pts], [p[1] for p in pts], where="post", color=color, lw=1.4, label=name,
                         alpha=0.85)
    axes[1].axhline(slo_ms, color="k", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("p95 ms per 10 s window")
    axes[1].legend(loc="upper left", fontsize=8, ncol=3)
    axes[1].grid(alpha=0.3, which="both")
    axes[2].set_ylabel("ready workers")
    axes[2].set_ylim(bottom=0)
    axes[2].legend(loc="upper left", fontsize=8, ncol=3)
    axes[2].grid(alpha=0.3)
    axes[2].set_xlabel("seconds since the start of the replay")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
