"""Benchmark of monitoring at production volume: `make bench-monitor`.

Logs N predictions (default 10^5 and 10^6; `--sizes` adds 10^7) of --model's schema into a prediction log on
SQLite and, when PostgreSQL's binaries are on the machine, on a throw-away PostgreSQL server, with a label for
--labelled of them, spread over the monitoring window; then runs `python -m ops.monitor --no-trigger` on each as a
separate process and reports its wall time, CPU time (user + system) and peak resident memory (ru_maxrss of the
child), beside the time the log took to fill. The rows are the service's: records from the model's schema
(app.model.check_records), its model version, probabilities spread over [0, 1].
Prints one markdown table; the figures and the machine's load go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.bench_predlog import log_backends  # noqa: E402
from bench.bench_serve import batch_records  # noqa: E402

CHUNK = 50_000


def fill_log(url: str, model_dir: Path, n: int, labelled: float, end: datetime, days: float) -> float:
    """n prediction rows (and labels for a share) in [end - days, end); returns seconds taken."""
    import numpy as np
    import sqlalchemy as sa

    from mlcore.predlog_schema import create_or_upgrade, feedback, predictions

    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    version = metadata["model_version"]
    records = batch_records(model_dir, 2000)
    rng = np.random.default_rng(0)
    engine = sa.create_engine(url)
    create_or_upgrade(engine)
    started = time.perf_counter()
    step = timedelta(days=days) / n
    start = end - timedelta(days=days)
    for first in range(0, n, CHUNK):
        size = min(CHUNK, n - first)
        proba = rng.random(size)
        rows = [
            {
                "prediction_id": f"{first + i:032x}",
                "created_at": start + step * (first + i),
                "model_version": version,
                "features": records[(first + i) % len(records)],
                "probability": float(p),
                "prediction": int(p >= 0.5),
            }
            for i, p in enumerate(proba.tolist())
        ]
        labels = [
            {
                "prediction_id": row["prediction_id"],
                "label": int(rng.random() < row["probability"]),
                "received_at": row["created_at"] + timedelta(hours=6),
                "client": "bench",
            }
            for row in rows
            if rng.random() < labelled
        ]
        with engine.begin() as conn:
            conn.execute(predictions.insert(), rows)
            if labels:
                conn.execute(feedback.insert(), labels)
    engine.dispose()
    return time.perf_counter() - started


# Runs the monitor as a child of a fresh interpreter and prints that interpreter's RUSAGE_CHILDREN: the figures of
# this one run only (ru_maxrss of RUSAGE_CHILDREN is the largest child so far, so a shared parent would carry over).
MEASURE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"returncode": code.returncode, "stderr": code.stderr[-500:], "wall_s": time.perf_counter() - started,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def run_monitor(url: str, model_dir: Path, out: Path, end: datetime, days: float) -> dict:
    """`python -m ops.monitor` as its own process: its wall, CPU and peak RSS."""
    start = (end - timedelta(days=days)).isoformat()
    command = [
        sys.executable,
        "-m",
        "ops.monitor",
        "--model",
        str(model_dir),
        "--log-url",
        url,
        "--out",
        str(out),
        "--start",
        start,
        "--end",
        end.isoformat(),
        "--no-trigger",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], cwd=REPO_ROOT, capture_output=True, text=True
    )
    figures = json.loads(proc.stdout)
    if figures["returncode"] not in (0, 3):
        raise SystemExit(f"make monitor failed ({figures['returncode']}): {figures['stderr'].strip()}")
    figures["status"] = json.loads((out / "verdict.json").read_text())["status"]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "model")
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated numbers of predictions")
    parser.add_argument("--labelled", type=float, default=0.1, help="share of predictions with a label")
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    if not (args.model / "metadata.json").exists():
        raise SystemExit(f"{args.model}/metadata.json not found: run `make run` first")
    sizes = [int(s) for s in args.sizes.split(",")]
    end = datetime.now(UTC).replace(microsecond=0)
    results = []
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-monitor-")))
        backends = log_backends(stack, workdir, postgres=not args.no_postgres)
        print(f"model: {args.model}; load average before: {os.getloadavg()}", flush=True)
        for backend, url_of in backends:
            for n in sizes:
                url = url_of(f"log{n}")
                fill_s = fill_log(url, args.model, n, args.labelled, end, args.days)
                figures = run_monitor(url, args.model, workdir / f"out-{backend}-{n}", end, args.days)
                results.append((backend, n, fill_s, figures))
                print(results[-1], flush=True)
        print(f"load average after: {os.getloadavg()}")
    print(
        "\n| log | predictions | labelled | fill (s) | `make monitor` wall (s) | CPU (s) | peak RSS (MB) | verdict |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for backend, n, fill_s, f in results:
        print(
            f"| {backend} | {n:,} | {args.labelled:.0%} | {fill_s:.0f} | {f['wall_s']:.1f} | {f['cpu_s']:.1f} | "
            f"{f['peak_rss_mb']:.0f} | {f['status']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
