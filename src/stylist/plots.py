"""Loss plots and tables, as bytes: the command line writes them beside a run, the studies into
their reports. Nothing here writes a file or prints (the caller writes atomically).

- :func:`history_csv`: a loss history (one dict per step) as CSV.
- :func:`history_plot`: the same history on a log scale, one line per loss term (PNG).
- :func:`runs_plot`: the total loss of several runs against steps and against seconds (PNG).
- :func:`pyplot` and :func:`png_bytes`: matplotlib without a display, and a figure as PNG bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    return buf.getvalue()


def history_csv(rows: Sequence[dict]) -> bytes:
    """The rows as CSV (UTF-8), the columns in the order they first appear."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def running_mean(values: Sequence[float], window: int) -> list[float]:
    """Means over the last ``window`` values at each position (fewer at the start)."""
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1) : i + 1]
        out.append(sum(part) / len(part))
    return out


def history_plot(
    rows: Sequence[dict],
    xlabel: str = "iteration (dotted lines: next scale)",
    smooth: int = 1,
    title: str = "Stylist loss history",
    keys: Sequence[str] | None = None,
) -> bytes:
    """A log-scale plot of a loss history (PNG bytes).

    ``rows`` have a ``step`` and the loss terms; ``keys`` are the terms plotted (default: total,
    content, style, tv, grid, those present); ``smooth`` > 1 plots running means over that many rows
    (training losses jump from batch to batch). A change of ``level`` (the optimisation's scale)
    is marked by a dotted line."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = [r["step"] for r in rows]
    for key in keys or [k for k in ("total", "content", "style", "tv", "grid") if k in columns]:
        values = [r.get(key, float("nan")) for r in rows]
        if smooth > 1:
            values = running_mean(values, smooth)
        if any(v > 0 for v in values):
            ax.plot(steps, values, label=key, linewidth=1.5 if key == "total" else 1)
    for r0, r1 in zip(rows, rows[1:]):
        if "level" in r1 and r1["level"] != r0["level"]:
            ax.axvline(r1["step"], color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("weighted loss")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:  # a run whose terms are all zero has no line to name
        ax.legend()
    fig.tight_layout()
    return png_bytes(fig)


def runs_plot(runs: Sequence[tuple[str, Sequence[dict]]], title: str) -> bytes:
    """Total loss against steps and against seconds, one line per ``(label, history)`` (PNG bytes);
    each history row has ``step``, ``seconds`` and ``total``."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for label, history in runs:
        total = [row["total"] for row in history]
        a.plot([row["step"] for row in history], total, label=label, linewidth=1.2)
        b.plot([row["seconds"] for row in history], total, label=label, linewidth=1.2)
    for ax, xlabel in ((a, "iteration"), (b, "seconds")):
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("total weighted loss")
        ax.grid(True, which="both", alpha=0.3)
    a.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return png_bytes(fig)
