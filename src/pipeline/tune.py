"""Stage `tune`: Optuna search (seeded TPE, median pruning) over the space declared in params.yaml.

The study lives in an RDB storage (a SQLite file by default; `OPTUNA_STORAGE` names any Optuna RDB URL, e.g.
PostgreSQL shared by several workers). Its name carries a fingerprint of the data, search space and seed, so an
interrupted run resumes the same study and a changed input starts a fresh one. Each trial grows the model in
`tune.pruner.n_steps` steps and reports the validation metric after each, so weak trials are pruned early.

The outputs are a function of the inputs, whatever the storage already held: the k-th trial samples with
TPE seeded `tune.seed + k` (a resumed search draws what an uninterrupted one would), only the first
`tune.n_trials` finished trials count (a study grown by an earlier, larger n_trials gives the same answer as
a fresh one), and the trial log (`trials.tsv`) is written from the study, not from the trials this process
ran.
Two things are not reproducible and are said so when they happen: a search cut short by `tune.timeout_s`,
and a study filled by parallel `pipeline.tune_worker` processes.
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

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.io import atomic_write, sha256_file, write_json
from mlcore.metrics import HIGHER_IS_BETTER, score
from pipeline.config import Params, SearchDimension, load_params
from pipeline.modeling import (
    build_pipeline,
    features_frame,
    limit_threads,
    model_type,
    select_hyperparameters,
)

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
                study_name=f"{params.project.name}-{fingerprint}",
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
        staged = model_type(model).staged
        if staged and staged in hp and n_steps > 1:
            # Grow the same ensemble in steps (warm start) and let the pruner stop weak trials early.
            pipe.set_params(classifier__warm_start=True)
            total = hp[staged]
            for step in range(1, n_steps + 1):
                pipe.set_params(**{f"classifier__{staged}": max(1, math.ceil(total * step / n_steps))})
                pipe.fit(x_train, y_train)
                value = score(params.tune.metric, y_valid, pipe.predict_proba(x_valid)[:, 1])
                trial.report(value, step)
                if step < n_steps and trial.should_prune():
                    raise optuna.TrialPruned()
            return value
        pipe.fit(x_train, y_train)
        return score(params.tune.metric, y_valid, pipe.predict_proba(x_valid)[:, 1])

    return objective


def counted_trials(study: optuna.Study, n_trials: int) -> list[optuna.trial.FrozenTrial]:
    """The first `n_trials` finished trials (by number): what the stage's result is made of."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    return sorted(finished, key=lambda t: t.number)[:n_trials]


def _optimize(study: optuna.Study, params: Params, train: pd.DataFrame, valid: pd.DataFrame) -> bool:
    """Run trials until tune.n_trials are finished; False when tune.timeout_s stopped the search first."""
    objective = make_objective(params, train, valid)
    deadline = time.monotonic() + params.tune.timeout_s
    while (done := len(counted_trials(study, params.tune.n_trials))) < params.tune.n_trials:
        if time.monotonic() >= deadline:
            return False
        # Seeded by the trial's place in the search, not by this process's history: resuming draws the same.
        study.sampler = optuna.samplers.TPESampler(seed=params.tune.seed + done)
        study.optimize(objective, n_trials=1, gc_after_trial=False)
    return True


def write_trial_log(trials: list[optuna.trial.FrozenTrial], path: Path, metric: str) -> None:
    """One tab-separated row per counted trial: number, state, validation metric and hyperparameters
    (`dvc plots show artifacts/tune/trials.tsv -x trial -y valid_<metric>` draws it)."""
    names = sorted({name for t in trials for name in t.params})
    rows = [["trial", "state", f"valid_{metric}", *names]]
    for t in trials:
        value = "" if t.value is None else repr(float(t.value))
        rows.append([str(t.number), t.state.name.lower(), value, *(str(t.params.get(n, "")) for n in names)])
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join("\t".join(r) + "\n" for r in rows), "utf-8"))


def plot_history(trials: list[optuna.trial.FrozenTrial], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if done:
        xs = [t.number for t in done]
        ys = [sign * t.value for t in done]
        best = [max(ys[: i + 1]) if sign > 0 else min(ys[: i + 1]) for i in range(len(ys))]
        ax.scatter(xs, ys, s=18, label="trial", color="#1f77b4")
        ax.step(xs, best, where="post", label="best so far", color="#d62728")
    pruned = [t.number for t in trials if t.state == optuna.trial.TrialState.PRUNED]
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
    already = len(counted_trials(study, params.tune.n_trials))
    print(
        f"tune: study {study.study_name}: {already} trial(s) already done, "
        f"running {params.tune.n_trials - already}"
    )
    with limit_threads(params.model):
        finished = _optimize(study, params, train, valid)
    trials = counted_trials(study, params.tune.n_trials)
    if not finished:
        print(
            f"tune: warning: tune.timeout_s ({params.tune.timeout_s} s) stopped the search after {len(trials)} "
            f"of {params.tune.n_trials} trials; this result depends on the machine's speed (the next run "
            "resumes the study)"
        )
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    sign = 1 if HIGHER_IS_BETTER[params.tune.metric] else -1
    if complete:
        best = max(complete, key=lambda t: (t.value, -t.number))  # the study maximises; ties: the earliest
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
    if log_trials:
        write_trial_log(trials, out_dir / "trials.tsv", params.tune.metric)
    plot_history(trials, params.tune.metric, plot_path)
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
