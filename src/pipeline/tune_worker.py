"""Distributed tuning: one Optuna worker on the `tune` stage's study, shared with other workers in an RDB.

Start any number of workers, on any number of machines, against one storage (PostgreSQL):

    export OPTUNA_STORAGE=postgresql+psycopg://user:password@host:5432/optuna
    make tune-worker TUNE_WORKER_INDEX=0      # on machine A
    make tune-worker TUNE_WORKER_INDEX=1      # on machine B ...
    dvc repro --force --single-item tune && dvc repro    # `tune` finds the study complete, runs 0 trials

Every worker opens the very study the stage opens (name = project.name + fingerprint of the prepared
data, search space, model and seed), so each needs the same `artifacts/prepared` (`dvc repro prepare` is
deterministic). Before each trial a worker takes a lock, counts the study's trials (finished and running) and
creates a new one only while fewer than tune.n_trials exist: together the workers run exactly tune.n_trials.
The lock is a PostgreSQL advisory lock (a file lock for SQLite; other RDBs count without a lock and may
overshoot by a trial or two). A worker that dies leaves its trial RUNNING; the `tune` stage counts only
finished trials and runs the gap itself.

Workers sample with TPE seeded tune.seed + worker index (distinct seeds, or two workers would draw the same
random start-up trials) and the constant liar, so running trials steer the others away from the same region.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from mlcore.errors import PipelineError, cli_entrypoint
from pipeline.config import Params, load_params
from pipeline.modeling import limit_threads
from pipeline.tune import make_objective, open_study, prepared_fingerprint, storage_url

WORKER_INDEX_ENVS = ("TUNE_WORKER_INDEX", "JOB_COMPLETION_INDEX")  # ours, then a Kubernetes Indexed Job's
MAX_WORKERS = 64


def worker_index(value: int | None, env: dict[str, str] | None = None) -> int:
    """The worker's index: --worker-index, else TUNE_WORKER_INDEX, else JOB_COMPLETION_INDEX, else 0."""
    env = os.environ if env is None else env
    if value is None:
        raw = next((env[name] for name in WORKER_INDEX_ENVS if env.get(name)), "0")
        try:
            value = int(raw)
        except ValueError as exc:
            raise PipelineError(f"TUNE_WORKER_INDEX: expected a non-negative integer, got '{raw}'") from exc
    if value < 0:
        raise PipelineError(f"--worker-index: expected a non-negative integer, got {value}")
    return value


def worker_sampler(params: Params, index: int) -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(seed=params.tune.seed + index, constant_liar=True)


@contextlib.contextmanager
def budget_lock(url: str, study_name: str) -> Iterator[contextlib.AbstractContextManager]:
    """Yield a reusable lock that serialises 'count trials, then create one' across the workers of a study."""
    key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
    if url.startswith("postgresql"):
        import sqlalchemy as sa

        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:

                @contextlib.contextmanager
                def advisory() -> Iterator[None]:
                    conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
                    try:
                        yield
                    finally:
                        conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})

                yield advisory
        finally:
            engine.dispose()
    elif url.startswith("sqlite:///"):
        lock_path = Path(url.removeprefix("sqlite:///") + f".{key & 0xFFFFFFFF:08x}.lock")
        with open(lock_path, "a+b") as handle:

            @contextlib.contextmanager
            def flock() -> Iterator[None]:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

            yield flock
    else:
        yield contextlib.nullcontext


def claim_trial(study: optuna.Study, n_trials: int, lock: Any) -> optuna.Trial | None:
    """A new trial while the study holds fewer than n_trials (finished or running); None once it is spent."""
    with lock():
        if len(study.get_trials(deepcopy=False)) >= n_trials:
            return None
        return study.ask()


def run_worker(params: Params, prepared: Path, index: int, url: str) -> dict[str, Any]:
    """Run trials until the study holds tune.n_trials or tune.timeout_s passes; return this worker's tally."""
    train = pd.read_parquet(prepared / "train.parquet")
    valid = pd.read_parquet(prepared / "valid.parquet")
    fingerprint = prepared_fingerprint(params, prepared)
    study = open_study(params, fingerprint, url, sampler=worker_sampler(params, index))
    objective = make_objective(params, train, valid)
    tally = {"study_name": study.study_name, "worker_index": index, "complete": 0, "pruned": 0, "trials": []}
    started = time.monotonic()
    with budget_lock(url, study.study_name) as lock:
        while time.monotonic() - started < params.tune.timeout_s:
            trial = claim_trial(study, params.tune.n_trials, lock)
            if trial is None:
                break
            try:
                value = objective(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                tally["pruned"] += 1
                outcome = "pruned"
            except BaseException:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            else:
                study.tell(trial, value)
                tally["complete"] += 1
                outcome = f"valid {params.tune.metric} = {value:.4f}"
            tally["trials"].append(trial.number)
            print(f"tune-worker {index}: trial {trial.number} {outcome}", flush=True)
    tally["seconds"] = round(time.monotonic() - started, 1)
    return tally


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default=Path("artifacts/prepared"), type=Path)
    parser.add_argument(
        "--worker-index",
        type=int,
        default=None,
        help="distinct per worker (seeds its sampler); default: TUNE_WORKER_INDEX, JOB_COMPLETION_INDEX or 0",
    )
    parser.add_argument(
        "--require-shared-storage",
        action="store_true",
        help="refuse a SQLite storage (workers on separate machines would not share it)",
    )
    parser.add_argument(
        "--print-matrix",
        type=int,
        metavar="N",
        help="print the worker indices 0..N-1 as a JSON list (a CI matrix) and exit",
    )
    args = parser.parse_args(argv)
    if args.print_matrix is not None:
        if not 1 <= args.print_matrix <= MAX_WORKERS:
            raise PipelineError(
                f"--print-matrix: workers must be between 1 and {MAX_WORKERS}, got {args.print_matrix}"
            )
        print(json.dumps(list(range(args.print_matrix))))
        return 0
    params = load_params(args.params)
    for name in ("train.parquet", "valid.parquet"):
        if not (args.prepared / name).is_file():
            raise PipelineError(f"{args.prepared / name}: not found; run `dvc repro prepare` first")
    url = storage_url(params)
    if url.startswith("sqlite") and args.require_shared_storage:
        raise PipelineError(
            f"OPTUNA_STORAGE: not set (storage would be {url}); workers on separate machines "
            "need one shared RDB, e.g. postgresql+psycopg://user:password@host/db"
        )
    if url.startswith("sqlite"):
        print(
            f"tune-worker: note: storage is {url}; set OPTUNA_STORAGE to a PostgreSQL URL to share the "
            "study between machines",
            flush=True,
        )
    optuna.logging.set_verbosity(logging.WARNING)
    index = worker_index(args.worker_index)
    with limit_threads(params.model):
        tally = run_worker(params, args.prepared, index, url)
    print(
        f"tune-worker {index}: study {tally['study_name']}: ran {len(tally['trials'])} trial(s) "
        f"({tally['complete']} complete, {tally['pruned']} pruned) in {tally['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
