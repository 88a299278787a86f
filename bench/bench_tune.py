"""Benchmark distributed tuning: trials per minute with 1 and with 2 `pipeline.tune_worker` processes on one
PostgreSQL study.

Uses the prepared data in artifacts/prepared (`dvc repro prepare`) and params.yaml's search space. For each
worker count it runs a fresh study of the same budget (--n-trials) and times from the first worker's start
until the last one exits (imports and data loading included, as a real worker pays them). It starts a
throw-away PostgreSQL server (tests/support/postgres.py) unless OPTUNA_STORAGE names one.

    python bench/bench_tune.py                     # 1 and 2 workers, 12 trials each
    python bench/bench_tune.py --workers 1 2 4 --n-trials 20

Prints a Markdown table (the one in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.bench_pipeline import machine  # noqa: E402


def run_workers(n: int, params_file: Path, prepared: Path, storage: str) -> dict:
    env = {**os.environ, "OPTUNA_STORAGE": storage}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline.tune_worker",
                "--params",
                str(params_file),
                "--prepared",
                str(prepared),
                "--worker-index",
                str(i),
            ],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for i in range(n)
    ]
    cpu, ran = 0.0, 0
    for proc in procs:
        output = proc.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.stdout.close()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"tune worker failed:\n{output[-3000:]}")
        cpu += usage.ru_utime + usage.ru_stime
        ran += int(output.rsplit("ran ", 1)[1].split(" trial")[0])
    wall = time.perf_counter() - start
    return {
        "workers": n,
        "trials": ran,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "trials_per_min": round(ran / wall * 60, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n-trials", type=int, default=12)
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    parser.add_argument("--prepared", type=Path, default=REPO_ROOT / "artifacts" / "prepared")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not (args.prepared / "train.parquet").is_file():
        raise SystemExit(f"{args.prepared}: no prepared data; run `dvc repro prepare` first")
    info = machine()
    results = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-tune-")))
        storage = os.environ.get("OPTUNA_STORAGE")
        if not storage:
            from tests.support.postgres import postgres_server

            storage = stack.enter_context(postgres_server(tmp / "pg"))
        raw = yaml.safe_load(args.params.read_text())
        for n in args.workers:
            raw["tune"].update(n_trials=args.n_trials)
            raw["project"]["name"] = f"bench-{n}w-{int(time.time())}"  # the study is named after the project
            params_file = tmp / f"params-{n}.yaml"
            params_file.write_text(yaml.safe_dump(raw))
            results.append(run_workers(n, params_file, args.prepared, storage))
            print(f"{n} worker(s): {results[-1]}", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    base = results[0]["trials_per_min"]
    print(
        f"\nMachine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, "
        f"load average {info['load_avg_1m']} at start; {args.n_trials} trials per study"
    )
    print("Command: " + " ".join(["python", "bench/bench_tune.py", *(argv or sys.argv[1:])]))
    print("| workers | trials | wall s | CPU s (all workers) | trials / min | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['workers']} | {r['trials']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | "
            f"{r['trials_per_min']:.2f} | {r['trials_per_min'] / base:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
