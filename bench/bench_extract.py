"""Benchmark the `extract` stage: wall time and peak memory against window size.

For each size it generates that many rows of demo data (24 monthly Parquet files) in a temporary directory, then
runs `python -m pipeline.extract` in a fresh process over a window that covers all of them, and reads the
process's peak resident memory from the kernel (wait4). For comparison it also runs a naive extraction that
fetches the whole result into one pandas DataFrame before writing it.

    python bench/bench_extract.py                       # 10^5 and 10^6 rows
    BENCH_EXTRACT_10M=1 python bench/bench_extract.py   # also 10^7 rows (several minutes)
    python bench/bench_extract.py --rows 100000 --chunk-rows 10000 50000

Prints a Markdown table (the one in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
MONTHS = 24

NAIVE = """
import sys, duckdb, yaml
from pipeline.extract import training_window, parse_cutoff
p = yaml.safe_load(open(sys.argv[1]))
con = duckdb.connect()
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{p['warehouse']['files']}')")
start, end = training_window(con.execute("SELECT max(event_time) FROM events").fetchall()[0][0].date(),
                             p['extract']['window_days'])
q = p['extract']['query'].replace(':window_start', '$window_start').replace(':window_end', '$window_end')
df = con.sql(q, params={'window_start': start, 'window_end': end}).df()
df.to_parquet(sys.argv[2], index=False)
"""


def generate(rows: int, directory: Path) -> None:
    from pipeline.generate import generate_month, month_path, month_range, write_month

    per_month = -(-rows // MONTHS)
    for month in month_range("2024-01", MONTHS):
        write_month(generate_month(month, per_month, 1), month_path(directory / "events", month))


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{stderr}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def bench_size(rows: int, chunk_sizes: list[int], naive: bool, workdir: Path) -> list[dict]:
    data = workdir / f"data-{rows}"
    t0 = time.perf_counter()
    generate(rows, data)
    print(f"generated {rows:,} rows in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["warehouse"]["files"] = str(data / "events" / "*.parquet")
    params["extract"]["window_days"] = 800  # the whole 24 months
    results = []
    for chunk in chunk_sizes:
        params["extract"]["chunk_rows"] = chunk
        params_file = workdir / "params.yaml"
        params_file.write_text(yaml.safe_dump(params))
        out, info = workdir / "snapshot.parquet", workdir / "data.json"
        wall, rss = run_measured(
            [sys.executable, "-m", "pipeline.extract", "--params", str(params_file), "--out", str(out),
             "--info", str(info)]
        )
        results.append({"rows": rows, "method": f"chunked ({chunk:,} rows/chunk)", "wall_s": wall,
                        "peak_rss_mib": rss, "out_mib": out.stat().st_size / 2**20})
        print(_row(results[-1]), file=sys.stderr, flush=True)
    if naive:
        out = workdir / "naive.parquet"
        wall, rss = run_measured([sys.executable, "-c", NAIVE, str(workdir / "params.yaml"), str(out)])
        results.append({"rows": rows, "method": "naive (whole result in pandas)", "wall_s": wall,
                        "peak_rss_mib": rss, "out_mib": out.stat().st_size / 2**20})
        print(_row(results[-1]), file=sys.stderr, flush=True)
    return results


def _row(r: dict) -> str:
    rate = r["rows"] / r["wall_s"]
    return (f"| {r['rows']:>12,} | {r['method']:<32} | {r['wall_s']:8.1f} | {rate:>12,.0f} | "
            f"{r['peak_rss_mib']:10.0f} | {r['out_mib']:8.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", help="window sizes (default 10^5 10^6 [10^7])")
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[50_000])
    parser.add_argument("--no-naive", action="store_true", help="skip the all-at-once comparison")
    args = parser.parse_args(argv)
    sizes = args.rows or [10**5, 10**6] + ([10**7] if os.environ.get("BENCH_EXTRACT_10M") == "1" else [])

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        for rows in sizes:
            results.extend(bench_size(rows, args.chunk_rows, not args.no_naive, Path(tmp)))

    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print("| rows         | method                           |   wall s |     rows / s | peak RSS MiB | out MiB |")
    print("|-------------:|----------------------------------|---------:|-------------:|-------------:|--------:|")
    for r in results:
        print(_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
