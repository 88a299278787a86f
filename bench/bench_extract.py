"""Benchmark the `extract` stage: wall time, CPU time and peak memory against window size.

For each size it generates that many rows of demo data (24 monthly Parquet files), then runs
`python -m pipeline.extract` in a fresh process over a window covering all of them, and reads that process's
CPU time and peak resident memory from the kernel (wait4). For comparison it also runs a naive extraction that
fetches the whole result into one pandas DataFrame before writing it (up to 10^6 rows: it needs ~1 GiB each).

    python bench/bench_extract.py                        # 10^5 and 10^6 rows
    BENCH_EXTRACT_10M=1 python bench/bench_extract.py    # also 10^7 rows (generating them takes minutes)
    python bench/bench_extract.py --rows 100000 --chunk-rows 10000 50000 --memory-limit 512MB 4GB
    python bench/bench_extract.py --rows 1000000 --postgres   # also via WAREHOUSE_URL (throw-away server)

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
COLUMNS = ["rows", "method", "wall s", "CPU s", "rows / wall s", "peak RSS MiB", "snapshot MiB"]

NAIVE = """
import sys, duckdb, yaml
from pipeline.extract import training_window
p = yaml.safe_load(open(sys.argv[1]))
con = duckdb.connect()
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{p['warehouse']['files']}')")
newest = con.execute("SELECT max(event_time) FROM events").fetchall()[0][0]
start, end = training_window(newest.date(), p['extract']['window_days'])
q = p['extract']['query'].replace(':window_start', '$window_start').replace(':window_end', '$window_end')
df = con.sql(q, params={'window_start': start, 'window_end': end}).df()
df.to_parquet(sys.argv[2], index=False)
"""


def generate(rows: int, directory: Path) -> None:
    from demo.generate import generate_month, month_path, month_range, write_month

    per_month = -(-rows // MONTHS)
    for month in month_range("2024-01", MONTHS):
        path = month_path(directory / "events", month)
        if not path.exists():  # --data-dir keeps generated data between runs
            write_month(generate_month(month, per_month, 1), path)


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT, env=env)
    stderr = proc.stderr.read().decode()  # progress lines; small
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(cmd)}\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports KiB


def _record(rows: int, method: str, measured: tuple[float, float, float], out: Path) -> dict:
    wall, cpu, rss = measured
    record = {
        "rows": rows,
        "method": method,
        "wall": wall,
        "cpu": cpu,
        "rss": rss,
        "out": out.stat().st_size / 2**20,
    }
    print(_row(record), file=sys.stderr, flush=True)
    return record


def bench_size(rows: int, args: argparse.Namespace, workdir: Path) -> list[dict]:
    data = (args.data_dir or workdir) / f"data-{rows}"
    t0 = time.perf_counter()
    generate(rows, data)
    print(f"data: {rows:,} rows ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["warehouse"]["files"] = str(data / "events" / "*.parquet")
    params["extract"]["window_days"] = 800  # the whole 24 months
    params_file, out, info = workdir / "params.yaml", workdir / "snapshot.parquet", workdir / "data.json"
    results = []
    for limit in args.memory_limit:
        for chunk in args.chunk_rows:
            params["extract"]["chunk_rows"] = chunk
            params["warehouse"]["duckdb_memory_limit"] = limit
            params_file.write_text(yaml.safe_dump(params))
            cmd = [
                sys.executable,
                "-m",
                "pipeline.extract",
                "--params",
                str(params_file),
                "--out",
                str(out),
                "--info",
                str(info),
            ]
            method = f"chunked: {chunk:,} rows/chunk, DuckDB {limit}"
            results.append(_record(rows, method, run_measured(cmd), out))
    if not args.no_naive and rows <= 10**6:
        naive_out = workdir / "naive.parquet"
        measured = run_measured([sys.executable, "-c", NAIVE, str(params_file), str(naive_out)])
        results.append(_record(rows, "naive: whole result in pandas", measured, naive_out))
    return results


def bench_postgres(rows: int, args: argparse.Namespace, workdir: Path, server_dir: Path) -> list[dict]:
    """The same extraction through WAREHOUSE_URL, from a throw-away PostgreSQL server loaded with the data."""
    sys.path.insert(0, str(REPO_ROOT))
    from demo.load_warehouse import load_files
    from tests.support.postgres import postgres_server

    data = (args.data_dir or workdir) / f"data-{rows}"
    params_file, out, info = workdir / "params.yaml", workdir / "snapshot.parquet", workdir / "data.json"
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["extract"]["window_days"] = 800
    results = []
    with postgres_server(server_dir) as url:
        t0 = time.perf_counter()
        load_files(url, "events", sorted((data / "events").glob("*.parquet")))
        took = time.perf_counter() - t0
        print(f"postgres: loaded {rows:,} rows in {took:.1f} s", file=sys.stderr, flush=True)
        for chunk in args.chunk_rows:
            params["extract"]["chunk_rows"] = chunk
            params_file.write_text(yaml.safe_dump(params))
            cmd = [
                sys.executable,
                "-m",
                "pipeline.extract",
                "--params",
                str(params_file),
                "--out",
                str(out),
                "--info",
                str(info),
            ]
            measured = run_measured(cmd, env={**os.environ, "WAREHOUSE_URL": url})
            results.append(_record(rows, f"chunked: {chunk:,} rows/chunk, PostgreSQL", measured, out))
    return results


def _row(r: dict) -> str:
    cells = [
        f"{r['rows']:,}",
        r["method"],
        f"{r['wall']:.1f}",
        f"{r['cpu']:.1f}",
        f"{r['rows'] / r['wall']:,.0f}",
        f"{r['rss']:.0f}",
        f"{r['out']:.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", help="window sizes (default 10^5 10^6 [10^7])")
    parser.add_argument("--chunk-rows", type=int, nargs="+", default=[50_000])
    parser.add_argument("--memory-limit", nargs="+", default=["512MB"], help="warehouse.duckdb_memory_limit")
    parser.add_argument("--data-dir", type=Path, help="keep generated data here and reuse it on later runs")
    parser.add_argument("--no-naive", action="store_true", help="skip the all-at-once comparison")
    parser.add_argument("--postgres", action="store_true", help="also extract through a PostgreSQL server")
    args = parser.parse_args(argv)
    sizes = args.rows or [10**5, 10**6] + ([10**7] if os.environ.get("BENCH_EXTRACT_10M") == "1" else [])

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-extract-") as tmp:
        for rows in sizes:
            results.extend(bench_size(rows, args, Path(tmp)))
            if args.postgres:
                results.extend(bench_postgres(rows, args, Path(tmp), Path(tmp) / f"pg-{rows}"))

    ram_gib = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    print(
        f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, {ram_gib:.0f} GiB RAM, "
        f"Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average {os.getloadavg()[0]:.1f} at the end"
    )
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "|".join(["---:", ":---"] + ["---:"] * (len(COLUMNS) - 2)) + "|")
    for r in results:
        print(_row(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
