"""Stage `tune`: Optuna search (seeded TPE, median pruning) over the space declared in params.yaml.

The study lives in an RDB storage (a SQLite file by default; `OPTUNA_STORAGE` names any Optuna RDB URL, e.g.
PostgreSQL shared by several workers). Its name carries a fingerprint of the data, search space and seed, so an
interrupted run resumes the same study and a changed input starts a fresh one. Each trial grows the model in
`tune.pruner.n_steps` steps and reports the validation metric after each, so weak trials are pruned early.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from pipeline.config import Params, SearchDimension, load_params
from pipeline.errors import PipelineError, cli_entrypoint
from pipeline.io import atomic_write, sha256_file, write_json
from pipeline.metrics import HIGHER_IS_BETTER, score
from pipeline.modeling import build_pipeline, features_frame, limit_threads, select_hyperparameters

STORAGE_ENV = "OPTUNA_STORAGE"
OPEN_ATTEMPTS = 5


def suggest(trial: optuna.Trial, name: str, dim: SearchDimension) -> Any:
    if dim.type == "categorical":
        return trial.suggest_categorical(name, dim.choices)
    if dim.type == "int":
        step = int(dim.step or 1)
        return trial.suggest_int(name, int(dim.low), int(dim.high), step=step, log=dim.log and step == 1)
    return trial.suggest_float(name, dim.low, dim.high, log=dim.log, step=None if dim.log else dim.step)


def study_fingerprint(params: Params, data_hashes: list[str]) -> str:
    """Everything that changes what a trial means: data, search space, model, seed, metric."""
    payload = json.dumps(
        {
            "data": data_hashes,
            "space": params.tune.model_dump(include={"search_space", "seed", "metric", "pruner"}),
            "model": params.model.model_dump(),
            "schema": params.schema.model_dump(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def storage_url(params: Params, env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    url = env.get(STORAGE_ENV) or params.tune.storage
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


def prepared_fingerprint(params: Params, prepared: Path) -> str:
    """The study fingerprint of a prepared-data directory (the stage and `pipeline.tune_worker` share it)."""
    return study_fingerprint(params, [sha256_file(prepared / f"{s}.parquet") for s in ("train", "valid")])


def open_study(
    params: Params, fingerprint: str, url: str, sampler: optuna.samplers.BaseSampler | None = None
) -> optuna.Study:
    """Create or load the study; `sampler` defaults to TPE seeded with tune.seed (a worker passes its own)."""
    sampler = sampler or optuna.samplers.TPESampler(seed=params.tune.seed)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=params.tune.pruner.n_startup_trials, n_warmup_steps=params.tune.pruner.n_warmup_steps
    )
    # Workers starting together race to create the study (or Optuna's tables): the loser sees a unique-key
    # violation. A short retry then finds what the winner created; a storage that is really unreachable fails
    # every attempt.
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return optuna.create_study(
                study_name=f"{params.tune.study_name}-{fingerprint}",
                storage=url,
                sampler=sampler,
                pruner=pruner,
                direction="maximize",
                load_if_exists=True,
            )
        except Exception as exc:  # SQLAlchemy/driver errors: report the storage without credentials
            if attempt + 1 < OPEN_ATTEMPTS and _is_creation_race(exc):
                time.sleep(0.2 * (attempt + 1))
                continue
            safe = url.split("@")[-1] if "@" in url else url
            raise PipelineError(
                f"tune.storage / {STORAGE_ENV}: cannot open Optuna storage '{safe}' ({exc})"
            ) from exc
    raise AssertionError("unreachable")


def _is_creation_race(exc: BaseException) -> bool:
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    while exc is not None:
        if isinstance(exc, IntegrityError | optuna.exceptions.DuplicatedStudyError):
            return True
        # A table the other worker just created: PostgreSQL says ProgrammingError, SQLite OperationalError.
        if isinstance(exc, ProgrammingError | OperationalError) and "already exists" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def make_objective(params: Params, train: pd.DataFrame, valid: pd.DataFrame):
    schema, model = params.schema, params.model
    x_train, y_train = features_frame(train, schema), train[schema.label].to_numpy()
    x_valid, y_valid = features_frame(valid, schema), valid[schema.label].to_numpy()
    n_steps = params.tune.pruner.n_steps

    def objective(trial: optuna.Trial) -> float:
        suggested = {name: suggest(trial, name, dim) for name, dim in params.tune.search_space.items()}
        hp = select_hyperparameters(model, suggested)
        pipe = build_pipeline(schema, model, hp)
        if model.type == "hist_gradient_boosting" and n_steps > 1:
            # Grow the same ensemble in steps (warm start) and let the pruner stop weak trials early.
            pipe.set_params(classifier__warm_start=True)
            total = hp["max_iter"]
            for step in range(1, n_steps + 1):
                pipe.set_params(classifier__max_iter=max(1, math.ceil(total * step / n_steps)))
                pipe.fit(x_train, y_train)
                value = score(params.tune.metric, y_valid, pipe.predict_proba(x_valid)[:, 1])
                trial.report(value, step)
                if step < n_steps and trial.should_prune():
                    raise optuna.TrialPruned()
            return value
        pipe.fit(x_train, y_train)
        return score(params.tune.metric, y_valid, pipe.predict_proba(x_valid)[:, 1])

    return objective


class TrialLogger:
    """Log every finished trial with DVCLive (one step per trial): its value, state and hyperparameters.

    One Live run for the whole search (dvclive.optuna's callback starts a new run per trial, keeping only the
    last), and no dvc.yaml edits: the stage declares its own outputs.
    """

    def __init__(self, directory: Path, metric_name: str) -> None:
        from dvclive import Live

        self.metric_name = metric_name
        self.live = Live(dir=str(directory), dvcyaml=None, save_dvc_exp=False, report=None)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.value is not None:
            self.live.log_metric(self.metric_name, trial.value)
        self.live.log_metric("pruned", int(trial.state == optuna.trial.TrialState.PRUNED))
        for name, value in trial.params.items():
            if isinstance(value, int | float):
                self.live.log_metric(f"params/{name}", value)
        self.live.next_step()

    def close(self) -> None:
        self.live.end()


def _optimize(
    study: optuna.Study,
    params: Params,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    n_trials: int,
    log_dir: Path | None,
) -> None:
    logger = TrialLogger(log_dir / "dvclive", f"valid_{params.tune.metric}") if log_dir else None
    try:
        study.optimize(
            make_objective(params, train, valid),
            n_trials=n_trials,
            timeout=params.tune.timeout_s,
            callbacks=[logger] if logger else [],
            gc_after_trial=False,
        )
    finally:
        if logger:
            logger.close()


def plot_history(study: optuna.Study, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if done:
        xs = [t.number for t in done]
        ys = [sign * t.value for t in done]
        best = [max(ys[: i + 1]) if sign > 0 else min(ys[: i + 1]) for i in range(len(ys))]
        ax.scatter(xs, ys, s=18, label="trial", color="#1f77b4")
        ax.step(xs, best, where="post", label="best so far", color="#d62728")
    pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    if pruned:
        ax.scatter(pruned, [ax.get_ylim()[0]] * len(pruned), marker="x", color="grey", label="pruned")
    ax.set(xlabel="trial", ylabel=f"validation {metric}", title="Optuna optimisation history")
    ax.grid(alpha=0.3)
    if done or pruned:
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no trials (tune.n_trials: 0)", transform=ax.transAxes, ha="center", color="grey")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def run_tune(
    params: Params,
    prepared: Path,
    out_dir: Path,
    metrics_path: Path,
    plot_path: Path,
    log_trials: bool = True,
) -> dict[str, Any]:
    train = pd.read_parquet(prepared / "train.parquet")
    valid = pd.read_parquet(prepared / "valid.parquet")
    study = open_study(params, prepared_fingerprint(params, prepared), storage_url(params))
    finished = [t for t in study.trials if t.state.is_finished()]
    remaining = max(0, params.tune.n_trials - len(finished))
    print(f"tune: study {study.study_name}: {len(finished)} trial(s) already done, running {remaining}")
    if remaining:
        with limit_threads(params):
            _optimize(study, params, train, valid, remaining, out_dir if log_trials else None)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    sign = 1 if HIGHER_IS_BETTER[params.tune.metric] else -1
    if complete:
        best = study.best_trial
        best_params, best_value, best_number = dict(best.params), sign * best.value, best.number
    else:  # n_trials: 0 (or every trial pruned): train with the defaults
        best_params, best_value, best_number = {}, None, None
    hyperparameters = select_hyperparameters(params.model, best_params)
    write_json(out_dir / "best_params.json", hyperparameters)
    summary = {
        "metric": params.tune.metric,
        "best_value": best_value,
        "best_trial": best_number,
        "n_trials_complete": len(complete),
        "n_trials_pruned": len(pruned),
        "study_name": study.study_name,
    }
    write_json(metrics_path, summary)
    plot_history(study, params.tune.metric, plot_path)
    return {"hyperparameters": hyperparameters, **summary}


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--metrics", default="metrics/tune.json", type=Path)
    parser.add_argument("--plot", default="plots/tune/optimization_history.png", type=Path)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(logging.INFO)
    result = run_tune(load_params(args.params), args.prepared, args.out, args.metrics, args.plot)
    print(
        f"tune: best validation {result['metric']} = {result['best_value']} with {result['hyperparameters']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
