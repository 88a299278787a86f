"""Plot cost against data size from bench_pipeline.py's JSON results: CPU seconds per stage and peak memory.

    python bench/plot_scaling.py results.json [more.json ...] --out docs/benchmarks-scaling.png

CPU seconds rather than wall seconds: on a shared machine they hardly move with the other jobs' load.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))

from mlcore.io import atomic_write  # noqa: E402

STAGES = ("extract", "validate", "prepare", "tune", "train", "evaluate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks-scaling.png")
    args = parser.parse_args(argv)
    runs = [r for path in args.results for r in json.loads(path.read_text())["results"]]
    runs.sort(key=lambda r: r["rows"])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu_ax, mem_ax) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    for stage in STAGES:
        points = [(r["rows"], r["stages"][stage]["cpu_s"]) for r in runs if stage in r["stages"]]
        if points:
            cpu_ax.plot(*zip(*points, strict=True), marker="o", label=stage)
    full = [(r["rows"], r["total_cpu_s"]) for r in runs if set(STAGES) <= set(r["stages"])]
    if full:
        cpu_ax.plot(*zip(*full, strict=True), marker="s", color="black", linewidth=2, label="dvc repro (all)")
    xs = [r["rows"] for r in runs]
    if xs:  # a line of slope 1 through the smallest extract point: "linear in rows" for reference
        x0 = xs[0]
        y0 = runs[0]["stages"]["extract"]["cpu_s"]
        cpu_ax.plot([x0, xs[-1]], [y0, y0 * xs[-1] / x0], linestyle=":", color="grey", label="linear")
    cpu_ax.set(
        xscale="log",
        yscale="log",
        xlabel="rows generated",
        ylabel="CPU seconds (user + system)",
        title="Cost of `dvc repro` per stage",
    )
    cpu_ax.grid(alpha=0.3, which="both")
    cpu_ax.legend(fontsize=8)
    for stage in STAGES:
        points = [(r["rows"], r["stages"][stage]["peak_rss_mib"]) for r in runs if stage in r["stages"]]
        if points:
            mem_ax.plot(*zip(*points, strict=True), marker="o", label=stage)
    mem_ax.set(
        xscale="log",
        yscale="log",
        xlabel="rows generated",
        ylabel="peak RSS MiB",
        title="Peak memory per stage",
    )
    mem_ax.grid(alpha=0.3, which="both")
    mem_ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(args.out, lambda tmp: fig.savefig(tmp, format="png"))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
