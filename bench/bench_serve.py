"""Benchmark of the inference service: `make bench-serve`.

Starts gunicorn on loopback with the production config (app/gunicorn.conf.py) on the model in --model, drives it
with wrk (Debian's package) and measures, in one run:
  - requests/s of a trivial endpoint of the same app (GET /health: the framework's ceiling);
  - requests/s, rows/s, p50 and p99 of POST /predict with 1, 100 and 1000 records (16 connections);
  - each platform adapter (app/protocols: Vertex AI, MLflow/SageMaker, KServe V1 and V2) with 1 and 1000 records,
    in the same rounds, as a ratio of /predict's requests per worker CPU second (they share its core: the ratio is
    their parsing);
  - in-process rows/s of the scikit-learn pipeline's predict_proba on 1000 rows (one thread, like a worker);
  - where the time of one in-process prediction goes (DataFrame building, sklearn with default threads, ...);
  - a soak: 60 s of single-record load, zero errors required, worker memory sampled (flat = no leak).
Prints the figures and ratios against the targets and writes them to --out under "## Serving".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.gunicorn_server import gunicorn  # noqa: E402

LUA = """
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
{body}
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
    + summary.errors.timeout
  io.write(string.format('WRKJSON {{"requests": %d, "duration_us": %d, "errors": %d, "p50_ms": %.4f, '
    .. '"p90_ms": %.4f, "p99_ms": %.4f}}\\n', summary.requests, summary.duration, errors,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000))
end
"""


def wrk(
    url: str,
    seconds: int,
    connections: int,
    method: str = "GET",
    body: str | None = None,
    workdir: Path | None = None,
) -> dict:
    workdir = workdir or Path(tempfile.gettempdir())
    script = workdir / f"wrk-{time.monotonic_ns()}.lua"
    body_line = f"wrk.body = {json.dumps(body)}" if body is not None else ""
    script.write_text(LUA.format(method=method, body=body_line))
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    script.unlink()
    result = json.loads(re.search(r"WRKJSON (\{.*\})", out).group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def worker_cpu_s(pids: list[int]) -> list[float]:
    """CPU seconds (user + system) each process has used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = []
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        out.append((int(fields[11]) + int(fields[12])) / ticks)
    return out


def share_of_busiest(before: list[float], after: list[float]) -> float:
    """The busiest worker's share of the workers' CPU during a run (1/workers = perfectly balanced)."""
    used = [b - a for a, b in zip(before, after, strict=True)]
    return max(used) / sum(used) if sum(used) > 0 else 1.0


def worker_rss_mb(master_pid: int) -> dict[int, float]:
    out = subprocess.run(["ps", "--ppid", str(master_pid), "-o", "pid=,rss="], capture_output=True, text=True)
    return {int(pid): int(rss) / 1024 for pid, rss in (line.split() for line in out.stdout.splitlines())}


def batch_records(model_dir: Path, n: int) -> list[dict]:
    """n valid, varied records (spread over the schema) as JSON objects: the same for HTTP and in-process."""
    from app.model import check_records, load_service

    service = load_service(model_dir, use_fastpath=False)
    names = service.validator.names
    return [
        {k: v for k, v in zip(names, row, strict=True) if v is not None}
        for row in check_records(service.validator.features, n=n, seed=1)
    ]


def in_process(model_dir: Path, example: dict, records: list[dict]) -> dict:
    """Where one prediction's time goes, and the pipeline's rows/s on a 1000-row batch."""
    import numpy as np
    import sklearn
    from threadpoolctl import threadpool_limits

    from app.fastpath import columns_of
    from app.model import load_service

    service = load_service(model_dir)
    rows1 = columns_of([service.validator.validate(example)])
    rows1000 = service.validator.columns(records)

    def per_call_us(fn, number: int) -> float:
        fn()
        return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6

    est = service.estimator
    frame1, frame1000 = service.frame(rows1), service.frame(rows1000)
    out = {}
    out["sklearn_1row_default_threads_us"] = per_call_us(lambda: est.predict_proba(frame1), 20)
    with threadpool_limits(1):
        out["build_dataframe_1row_us"] = per_call_us(lambda: service.frame(rows1), 200)
        out["sklearn_1row_1thread_us"] = per_call_us(lambda: est.predict_proba(frame1), 20)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            out["sklearn_1row_1thread_novalidation_us"] = per_call_us(lambda: est.predict_proba(frame1), 20)
            batch_s = per_call_us(lambda: est.predict_proba(frame1000), 3) / 1e6
        out["validate_1row_us"] = per_call_us(lambda: service.validator.validate(example), 2000)
        out["validate_1000_us"] = per_call_us(lambda: service.validator.columns(records), 20)
        if service.compiled is not None:
            out["fastpath_1row_us"] = per_call_us(lambda: service.compiled.predict_proba(rows1), 200)
            out["fastpath_1000_us"] = per_call_us(lambda: service.compiled.predict_proba(rows1000), 5)
    out["inprocess_rows_per_s"] = 1000 / batch_s
    out["fastpath"] = service.compiled is not None
    assert np.isfinite(out["inprocess_rows_per_s"])
    return out


VERTEX_PREDICT = (
    "/v1/endpoints/bench/deployedModels/1:predict"  # AIP_PREDICT_ROUTE for the benchmark's server
)


def log_drained(base: str, timeout: float = 60) -> None:
    """Wait until the prediction log has written every queued row (`prediction_log_backlog` 0 in /metrics)."""
    from urllib.request import urlopen

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urlopen(f"{base}/metrics", timeout=10) as response:
            text = response.read().decode()
        backlog = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("prediction_log_backlog ")
        )
        if backlog == 0:
            return
        time.sleep(0.2)


def adapter_requests(base: str, example: dict, records: list[dict]) -> dict[str, tuple[str, dict[int, str]]]:
    """Each protocol adapter's route and its bodies for 1 and 1000 records (the same records as /predict's)."""
    from urllib.request import urlopen

    with urlopen(f"{base}/v2", timeout=10) as response:
        name = json.loads(response.read())["name"]
    with urlopen(f"{base}/v2/models/{name}", timeout=10) as response:
        datatypes = {tensor["name"]: tensor["datatype"] for tensor in json.loads(response.read())["inputs"]}

    def tensors(rs: list[dict]) -> dict:
        return {
            "inputs": [
                {"name": f, "shape": [len(rs)], "datatype": kind, "data": [r.get(f) for r in rs]}
                for f, kind in datatypes.items()
            ]
        }

    shapes = {
        "Vertex AI $AIP_PREDICT_ROUTE": (VERTEX_PREDICT, lambda rs: {"instances": rs}),
        "MLflow/SageMaker /invocations": ("/invocations", lambda rs: {"dataframe_records": rs}),
        "KServe V1 :predict": (f"/v1/models/{name}:predict", lambda rs: {"instances": rs}),
        "KServe V2 /infer": (f"/v2/models/{name}/infer", tensors),
    }
    return {
        key: (path, {1: json.dumps(body([example])), 1000: json.dumps(body(records))})
        for key, (path, body) in shapes.items()
    }


def run(model_dir: Path, seconds: int, soak_seconds: int, connections: int, n_rounds: int = 3) -> dict:
    example = json.loads((model_dir / "metadata.json").read_text())["example"]
    workdir = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    workers = os.environ.get("WEB_CONCURRENCY") or str(os.cpu_count())
    results: dict = {
        "workers": workers,
        "threads": os.environ.get("THREADS", "4"),  # app/gunicorn.conf.py's default
        "connections": connections,
        "seconds": seconds,
        "rounds_n": n_rounds,
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }
    server_env = {
        "MAX_BATCH": "1000",
        "WEB_CONCURRENCY": workers,
        "GRACEFUL_TIMEOUT": "30",
        "AIP_PREDICT_ROUTE": VERTEX_PREDICT,
    }
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        server, port = stack.enter_context(
            gunicorn(model_dir, f"sqlite:///{workdir}/predictions.db", workdir / "gunicorn.log", **server_env)
        )
        base = f"http://127.0.0.1:{port}"
        print(f"server ready on {base}; model {model_dir}", flush=True)
        records = batch_records(model_dir, 1000)
        adapters = adapter_requests(base, example, records)
        results["in_process"] = in_process(model_dir, example, records)
        # Rounds of (trivial, 1, 100, 1000 records), back to back: on 2 shared cores one wrk run can land on a bad
        # moment (or on a worker that holds most keep-alive connections), so each figure is the median of the
        # rounds and each ratio the median of the per-round ratios (the spread is printed too).
        rounds: list[dict] = []
        pids = sorted(worker_rss_mb(server.pid))

        def measured(path: str, method: str = "GET", body: str | None = None) -> dict:
            log_drained(base)  # the writer's CPU for the previous run's rows must not count in this one
            before = worker_cpu_s(pids)
            r = wrk(f"{base}{path}", seconds, connections, method, body, workdir=workdir)
            after = worker_cpu_s(pids)
            r["busiest_worker_share"] = round(share_of_busiest(before, after), 2)
            # the workers' CPU per request: unlike requests/s, barely moved by other load on a shared machine
            r["cpu_us_per_request"] = (sum(after) - sum(before)) / max(r["requests"], 1) * 1e6
            return r

        for k in range(n_rounds):
            rnd = {"trivial": measured("/health")}
            line = [f"round {k + 1}: /health {rnd['trivial']['rps']:.0f} req/s"]
            for n in (1, 100, 1000):
                r = measured("/predict", "POST", json.dumps(example if n == 1 else records[:n]))
                r["rows_per_s"] = r["rps"] * n
                rnd[f"predict_{n}"] = r
                line.append(f"{n}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} ms")
                for key, (path, bodies) in adapters.items() if n in (1, 1000) else ():
                    rnd[f"{key}|{n}"] = measured(path, "POST", bodies[n])  # right after /predict's run
            line.append(
                "predict/adapter CPU per request "
                + " ".join(
                    f"{rnd['predict_1']['cpu_us_per_request'] / rnd[f'{key}|1']['cpu_us_per_request']:.2f}"
                    for key in adapters
                )
            )
            rounds.append(rnd)
            shares = "/".join(f"{rnd[key]['busiest_worker_share']:.2f}" for key in rnd)
            print("  " + "; ".join(line) + f"; busiest worker's CPU share {shares}", flush=True)
        for key in ("trivial", "predict_1", "predict_100", "predict_1000"):
            runs = sorted((rnd[key] for rnd in rounds), key=lambda r: r["rps"])
            results[key] = dict(runs[len(runs) // 2])
            results[key]["errors"] = sum(rnd[key]["errors"] for rnd in rounds)
        results["rounds"] = rounds
        # soak: single records for soak_seconds, worker memory sampled every few seconds
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(5):
                samples.append(sum(worker_rss_mb(server.pid).values()))

        sampler = threading.Thread(target=sample, daemon=True)
        rss_start = worker_rss_mb(server.pid)
        sampler.start()
        soak = wrk(f"{base}/predict", soak_seconds, connections, "POST", json.dumps(example), workdir=workdir)
        stop.set()
        sampler.join()
        rss_end = worker_rss_mb(server.pid)
        soak["rss_start_mb"] = round(sum(rss_start.values()), 1)
        soak["rss_end_mb"] = round(sum(rss_end.values()), 1)
        soak["rss_samples_mb"] = [round(s, 1) for s in samples]
        soak["same_workers"] = sorted(rss_start) == sorted(rss_end)
        results["soak"] = soak
        print(
            f"  soak {soak_seconds}s: {soak['requests']} requests, {soak['errors']} errors, workers RSS "
            f"{soak['rss_start_mb']} -> {soak['rss_end_mb']} MB",
            flush=True,
        )
    thousand = results["predict_1000"]
    per_round_1 = sorted(rnd["predict_1"]["rps"] / rnd["trivial"]["rps"] for rnd in results["rounds"])
    per_round_tail = sorted(
        rnd["predict_1"]["p99_ms"] / rnd["predict_1"]["p50_ms"] for rnd in results["rounds"]
    )
    results["adapters"] = {
        key: {
            n: sorted(
                rnd[f"predict_{n}"]["cpu_us_per_request"] / rnd[f"{key}|{n}"]["cpu_us_per_request"]
                for rnd in results["rounds"]
            )
            for n in (1, 1000)
        }
        for key in adapters
    }
    results["adapter_errors"] = sum(
        rnd[f"{key}|{n}"]["errors"] for rnd in results["rounds"] for key in adapters for n in (1, 1000)
    )
    results["ratios"] = {
        "predict_1_vs_trivial": per_round_1[len(per_round_1) // 2],
        "predict_1_vs_trivial_range": [per_round_1[0], per_round_1[-1]],
        "predict_1000_rows_vs_in_process": thousand["rows_per_s"]
        / results["in_process"]["inprocess_rows_per_s"],
        "predict_1_p99_over_p50": per_round_tail[len(per_round_tail) // 2],
        "predict_1_p99_over_p50_range": [per_round_tail[0], per_round_tail[-1]],
        "soak_rss_growth": (results["soak"]["rss_end_mb"] - results["soak"]["rss_start_mb"])
        / results["soak"]["rss_start_mb"],
    }
    return results


def median(values: list[float]) -> float:
    return values[len(values) // 2]  # of sorted values (an odd number of rounds: the middle one)


def render(results: dict) -> str:
    ip, ratios, soak = results["in_process"], results["ratios"], results["soak"]
    worst_adapter = min(median(r) for by_n in results["adapters"].values() for r in by_n.values())
    rows = [("GET /health (trivial)", results["trivial"], 0)] + [
        (f"POST /predict, {n} record{'s' if n > 1 else ''}", results[f"predict_{n}"], n)
        for n in (1, 100, 1000)
    ]
    lines = [
        "## Serving",
        "",
        f"`make bench-serve` on {platform.machine()} with {os.cpu_count()} CPUs (shared), gunicorn "
        f"{results['workers']} workers x {results['threads']} thread, wrk 2 threads x {results['connections']} "
        f"connections x {results['seconds']} s per measurement, {results['rounds_n']} rounds (each figure: the "
        f"median round), on 127.0.0.1, load average {results['load_avg_1m']} at start. Model: `model/` from "
        "`make run`.",
        "",
        "| endpoint | requests/s | rows/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r, n in rows:
        rows_s = f"{r['rps'] * n:.0f}" if n else ""
        lines.append(
            f"| {name} | {r['rps']:.0f} | {rows_s} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |"
        )
    lines += [
        "",
        "| target | measured | met |",
        "|---|---:|---|",
        f"| single-record /predict >= 60% of the trivial endpoint (median of rounds; range) | "
        f"{ratios['predict_1_vs_trivial']:.0%} ({ratios['predict_1_vs_trivial_range'][0]:.0%}-"
        f"{ratios['predict_1_vs_trivial_range'][1]:.0%}) | "
        f"{'yes' if ratios['predict_1_vs_trivial'] >= 0.6 else 'no'} |",
        f"| 1000-record batches >= 50% of in-process rows/s ({ip['inprocess_rows_per_s']:.0f}) | "
        f"{ratios['predict_1000_rows_vs_in_process']:.0%} | "
        f"{'yes' if ratios['predict_1000_rows_vs_in_process'] >= 0.5 else 'no'} |",
        f"| p99 < 4x p50 at {results['connections']} connections (single record; range) | "
        f"{ratios['predict_1_p99_over_p50']:.1f}x ({ratios['predict_1_p99_over_p50_range'][0]:.1f}-"
        f"{ratios['predict_1_p99_over_p50_range'][1]:.1f}x) | {'yes' if ratios['predict_1_p99_over_p50'] < 4 else 'no'} |",
        f"| every platform adapter >= 95% of /predict's requests per CPU second (worst median of per-round ratios; "
        f"{results['adapter_errors']} errors) | {worst_adapter:.0%} | {'yes' if worst_adapter >= 0.95 else 'no'} |",
        f"| soak {soak['duration_us'] / 1e6:.0f} s: zero errors | {soak['errors']} errors in {soak['requests']} "
        f"requests | {'yes' if soak['errors'] == 0 else 'no'} |",
        f"| soak: worker memory does not grow (< 5%) | {soak['rss_start_mb']} -> {soak['rss_end_mb']} MB "
        f"({ratios['soak_rss_growth']:+.1%}) | {'yes' if ratios['soak_rss_growth'] < 0.05 else 'no'} |",
        "",
        "Each platform adapter (app/protocols) beside /predict in the same rounds: requests per CPU second of the "
        "workers as a ratio of /predict's (median of the per-round ratios; range; CPU per request rather than "
        "requests/s, which other load on a shared machine moves by tens of per cent between runs):",
        "",
        "| route | 1 record | 1000 records |",
        "|---|---:|---:|",
        *(
            f"| {key} | "
            + " | ".join(f"{median(r):.0%} ({r[0]:.0%}-{r[-1]:.0%})" for r in (by_n[1], by_n[1000]))
            + " |"
            for key, by_n in results["adapters"].items()
        ),
        "",
        "Every round (busiest worker's share of the workers' CPU in brackets: 50% = balanced over 2 workers, 100% ="
        " one worker held every connection):",
        "",
        "| round | GET /health req/s | /predict 1 record req/s | ratio | /predict 1000 records rows/s |",
        "|---:|---:|---:|---:|---:|",
        *(
            f"| {k} | {rnd['trivial']['rps']:.0f} ({rnd['trivial']['busiest_worker_share']:.0%}) | "
            f"{rnd['predict_1']['rps']:.0f} ({rnd['predict_1']['busiest_worker_share']:.0%}) | "
            f"{rnd['predict_1']['rps'] / rnd['trivial']['rps']:.0%} | "
            f"{rnd['predict_1000']['rows_per_s']:.0f} ({rnd['predict_1000']['busiest_worker_share']:.0%}) |"
            for k, rnd in enumerate(results["rounds"], start=1)
        ),
        "",
        "Where one in-process prediction's time goes (best of 5, microseconds per record):",
        "",
        "| step | us |",
        "|---|---:|",
        f"| validate the JSON record against the schema | {ip['validate_1row_us']:.0f} |",
        f"| build the 1-row DataFrame | {ip['build_dataframe_1row_us']:.0f} |",
        f"| scikit-learn predict_proba, default OpenMP threads | {ip['sklearn_1row_default_threads_us']:.0f} |",
        f"| scikit-learn predict_proba, 1 thread | {ip['sklearn_1row_1thread_us']:.0f} |",
        f"| ... and input validation skipped (`sklearn.config_context`) | "
        f"{ip['sklearn_1row_1thread_novalidation_us']:.0f} |",
    ]
    if ip.get("fastpath_1row_us") is not None:
        lines.append(f"| `app.fastpath` (same arithmetic on numpy arrays) | {ip['fastpath_1row_us']:.0f} |")
    lines += [
        "",
        "A 1000-record batch in-process (best of 5, milliseconds per batch):",
        "",
        "| step | ms |",
        "|---|---:|",
        f"| validate 1000 JSON records (column-wise) | {ip['validate_1000_us'] / 1000:.1f} |",
        f"| scikit-learn pipeline predict_proba on a DataFrame, 1 thread (the in-process reference) | "
        f"{1000 / ip['inprocess_rows_per_s'] * 1000:.1f} |",
    ]
    if ip.get("fastpath_1000_us") is not None:
        lines.append(f"| `app.fastpath` on the validated columns | {ip['fastpath_1000_us'] / 1000:.1f} |")
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str, notes: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    body = section + ("\n" + notes if notes else "")
    pattern = re.compile(r"^## Serving\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: body + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


NOTES_FILE = Path(__file__).with_name("serving_notes.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("model"))
    parser.add_argument(
        "--out", type=Path, default=None, help="markdown file to write the Serving section to"
    )
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the endpoints (medians reported)")
    parser.add_argument("--soak-seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    if not (args.model / "metadata.json").exists():
        print(f"error: {args.model}/metadata.json not found: run `make run` first", file=sys.stderr)
        return 2
    results = run(args.model.resolve(), args.seconds, args.soak_seconds, args.connections, args.rounds)
    section = render(results)
    print()
    print(section)
    if args.out:
        notes = NOTES_FILE.read_text(encoding="utf-8") if NOTES_FILE.exists() else ""
        write_section(args.out, section, notes)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
