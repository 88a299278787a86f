"""Benchmark of the prediction log: `make bench-predlog`.

Measures, in one run:
  - the writer's rows/s (app.predlog.PredictionLog: record() then close(), which drains the queue through the
    background writer) on SQLite and, when PostgreSQL's binaries are on the machine, on a throw-away PostgreSQL
    server (tests/support/postgres.py), for LOG_BATCH_SIZE 1000 and 5000;
  - the service's peak rows/s: real gunicorn (app/gunicorn.conf.py, its defaults) logging to SQLite, driven by
    CLIENTS threads posting 1000-record batches for SECONDS; and whether the writer kept up under it (503s refused
    because the queue was full, and the backlog left at the end).
The rows are what /predict queues: the records of --model's schema (check_records), a shared timestamp per batch.
Without --model (or when model/ is missing) it trains the test suite's tiny model in a temporary directory.
Prints one markdown table; the figures and the machine's load go to docs/benchmarks.md by hand.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.bench_serve import batch_records, worker_rss_mb  # noqa: E402
from tests.support.gunicorn_server import gunicorn  # noqa: E402


def log_rows(records: list[dict], n: int) -> list[list[dict]]:
    """n prediction-log rows in requests of len(records) rows, as app.api.log_rows builds them."""
    requests, made = [], 0
    while made < n:
        created_at = datetime.now(UTC)
        requests.append(
            [
                {
                    "prediction_id": f"{made + i:032x}",
                    "created_at": created_at,
                    "model_version": "bench",
                    "features": record,
                    "probability": 0.25,
                    "prediction": 0,
                }
                for i, record in enumerate(records)
            ]
        )
        made += len(records)
    return requests


def log_backends(
    stack: ExitStack, workdir: Path, postgres: bool = True
) -> list[tuple[str, Callable[[str], str]]]:
    """(name, url of a new database `name`) for SQLite files in `workdir` and, when PostgreSQL's binaries are on the
    machine (and `postgres`), a throw-away PostgreSQL server (tests/support/postgres.py) that `stack` stops."""
    backends: list[tuple[str, Callable[[str], str]]] = [
        ("SQLite", lambda name: f"sqlite:///{workdir}/{name}.db")
    ]
    if postgres and (shutil.which("initdb") or any(Path("/usr/lib/postgresql").glob("*/bin/initdb"))):
        import sqlalchemy as sa

        from tests.support.postgres import postgres_server

        pg = stack.enter_context(postgres_server(workdir / "pg"))
        admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")

        def pg_url(name: str) -> str:
            with admin.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE {name}"))
            return pg.rsplit("/", 1)[0] + f"/{name}"

        backends.append(("PostgreSQL", pg_url))
    return backends


def writer_rows_per_s(url: str, requests: list[list[dict]], batch_size: int) -> float:
    from app.predlog import PredictionLog

    rows = sum(len(r) for r in requests)
    log = PredictionLog(url, flush_interval=0.5, batch_size=batch_size, max_backlog=rows)
    started = time.perf_counter()
    for request_rows in requests:
        log.record(request_rows)
    log.close(timeout=600)
    elapsed = time.perf_counter() - started
    assert log.written == rows, (log.written, rows)
    log.engine.dispose()
    return rows / elapsed


def service_peak(
    model_dir: Path, log_url: str, workdir: Path, records: list[dict], clients: int, seconds: float
) -> dict:
    body = json.dumps(records).encode()
    counts = {"rows": 0, "503": 0, "other": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def client(port: int) -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
            finally:
                conn.close()
            with lock:
                if response.status == 200:
                    counts["rows"] += len(records)
                elif response.status == 503:
                    counts["503"] += 1
                else:
                    counts["other"] += 1

    rss: list[float] = []
    with gunicorn(model_dir, log_url, workdir / "gunicorn.log") as (proc, port):
        threads = [threading.Thread(target=client, args=(port,)) for _ in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        while time.perf_counter() - started < seconds:  # the largest worker's memory, every second
            time.sleep(1)
            rss.append(max(worker_rss_mb(proc.pid).values(), default=0.0))
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/metrics")
        metrics = conn.getresponse().read().decode()
        conn.close()
    backlog = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("prediction_log_backlog")
    )
    return {
        "rows_per_s": counts["rows"] / elapsed,
        "refused_503": counts["503"],
        "other": counts["other"],
        "backlog_at_end": backlog,
        "rss_mb": (rss[1] if len(rss) > 1 else 0.0, max(rss, default=0.0), rss[-1] if rss else 0.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "model")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per writer measurement")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-predlog-")))
        model_dir, model_note = args.model, str(args.model)
        if not (model_dir / "metadata.json").exists():
            from tests.support.model_fixture import train_tiny_model

            model_dir, model_note = workdir / "model", "the test suite's tiny model (no model/)"
            train_tiny_model(model_dir)
        records = batch_records(model_dir, 1000)
        requests = log_rows(records, args.rows)
        print(f"model: {model_note}; load average before: {os.getloadavg()}", flush=True)
        results = []
        backends = log_backends(stack, workdir)
        for backend, url_of in backends:
            for batch_size in (1000, 5000):
                rate = writer_rows_per_s(url_of(f"w{batch_size}"), requests, batch_size)
                results.append((f"writer, {backend}, LOG_BATCH_SIZE={batch_size}", f"{rate:,.0f} rows/s"))
                print(results[-1], flush=True)
        for backend, url_of in backends:
            peak = service_peak(model_dir, url_of("service"), workdir, records, args.clients, args.seconds)
            results.append(
                (
                    f"service peak, {backend} log, {args.clients} clients x 1000-record batches, {args.seconds:g} s",
                    f"{peak['rows_per_s']:,.0f} rows/s; 503s {peak['refused_503']}, other errors {peak['other']}, "
                    f"backlog at the end {peak['backlog_at_end']:.0f}; largest worker RSS after 2 s / max / at "
                    "the end: {:.0f} / {:.0f} / {:.0f} MB".format(*peak["rss_mb"]),
                )
            )
            print(results[-1], flush=True)
        print(f"load average after: {os.getloadavg()}")
    print("\n| measurement | result |\n|---|---|")
    for name, value in results:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
