"""Benchmark `dvc repro`: wall time and peak memory of each stage and of the whole pipeline against data size.

For each size it copies the repository's tracked files into a temporary git repository, sets
`data.rows_per_month` so that the 24 demo months hold that many rows, regenerates the data there and records
it with `dvc add data` (as a user swapping in their own data would; not timed), then times
`dvc repro --single-item` for each stage in order and finally a no-op `dvc repro`. Peak memory is the largest
resident set of any process of the run (the kernel's ru_maxrss of the waited-for process tree, from wait4):
stages run one after another, so this is the memory the pipeline needs.

    python bench/bench_pipeline.py                        # 10^4, 10^5, 10^6 rows, tune.n_trials 4
    python bench/bench_pipeline.py --rows 10000 --n-trials 15
    python bench/bench_pipeline.py --json results.json     # also write the figures for bench/plot_scaling.py

Prints a Markdown table (the one in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = ("extract", "validate", "prepare", "tune", "train", "evaluate")


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def run_measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MiB) of a command and the processes it waits for.

    CPU seconds (user + system) hardly change when other jobs share the machine; wall seconds do."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.stdout.close()
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark command failed in {cwd}: {' '.join(cmd)}\n{output[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports KiB


def copy_repo(dest: Path) -> None:
    """The tracked files (not data/, outputs, .venv or caches) into a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = REPO_ROOT / name
        if name.startswith("data/") or not src.is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    commit = ["git", "-c", "user.email=bench@example.invalid", "-c", "user.name=bench", "commit", "-qm", "b"]
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], commit):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)


def bench_size(rows: int, n_trials: int, stages: tuple[str, ...], workdir: Path, env: dict[str, str]) -> dict:
    repo = workdir / f"repo-{rows}"
    repo.mkdir()
    copy_repo(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["data"]["rows_per_month"] = -(-rows // params["data"]["months"])
    params["tune"]["n_trials"] = n_trials
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "demo.generate", "--params", "params.yaml"],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(["dvc", "add", "-q", "data"], cwd=repo, env=env, check=True, capture_output=True)
    generated = time.perf_counter() - t0
    print(f"[{rows:,} rows] generated and added in {generated:.1f} s", file=sys.stderr, flush=True)
    result = {
        "rows": params["data"]["rows_per_month"] * params["data"]["months"],
        "n_trials": n_trials,
        "stages": {},
    }
    for stage in stages:
        wall, cpu, rss = run_measured(["dvc", "repro", "--single-item", stage], repo, env)
        result["stages"][stage] = {
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "peak_rss_mib": round(rss),
        }
        print(
            f"[{rows:,} rows] {stage}: {wall:.1f} s wall, {cpu:.1f} s CPU, {rss:.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
    for key in ("wall_s", "cpu_s"):
        result[f"total_{key}"] = round(sum(s[key] for s in result["stages"].values()), 2)
    result["peak_rss_mib"] = max(s["peak_rss_mib"] for s in result["stages"].values())
    wall, cpu, rss = run_measured(["dvc", "repro", *stages[-1:]], repo, env)
    result.update(noop_wall_s=round(wall, 2), noop_cpu_s=round(cpu, 2), noop_peak_rss_mib=round(rss))
    snapshot = json.loads((repo / "metrics" / "data.json").read_text())
    result["snapshot_rows"] = snapshot["rows"]
    print(
        f"[{rows:,} rows] total {result['total_wall_s']:.1f} s, no-op {wall:.1f} s",
        file=sys.stderr,
        flush=True,
    )
    shutil.rmtree(repo, ignore_errors=True)
    return result


def table(results: list[dict]) -> str:
    """Per stage: wall s / CPU s; then totals, peak memory and the no-op repro."""
    stages = list(results[0]["stages"]) if results else []
    head = (
        "| rows generated | rows in window | "
        + " | ".join(f"{s} wall / CPU s" for s in stages)
        + " | dvc repro wall s | CPU s | peak RSS MiB | no-op repro s |"
    )
    lines = [head, "|" + "---:|" * (len(stages) + 6)]
    for r in results:
        cells = " | ".join(f"{r['stages'][s]['wall_s']:.1f} / {r['stages'][s]['cpu_s']:.1f}" for s in stages)
        lines.append(
            f"| {r['rows']:,} | {r['snapshot_rows']:,} | {cells} | {r['total_wall_s']:.1f} | "
            f"{r['total_cpu_s']:.1f} | {r['peak_rss_mib']:,} | {r['noop_wall_s']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    parser.add_argument("--n-trials", type=int, default=4, help="tune.n_trials at every size (default 4)")
    parser.add_argument(
        "--until",
        choices=STAGES,
        default=STAGES[-1],
        help="stop after this stage (e.g. prepare: extraction and preparation only)",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("OPTUNA_STORAGE", "WAREHOUSE_URL")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    info = machine()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        for rows in args.rows:
            stages = STAGES[: STAGES.index(args.until) + 1]
            results.append(bench_size(rows, args.n_trials, stages, Path(tmp), env))
            if args.json:  # after every size, so a long run that is stopped still leaves its figures
                args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    print(
        f"\nMachine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, "
        f"Python {info['python']}, load average {info['load_avg_1m']} at start; "
        f"tune.n_trials = {args.n_trials}"
    )
    command = ["python", "bench/bench_pipeline.py", *(argv if argv is not None else sys.argv[1:])]
    print("Command: " + " ".join(command))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
