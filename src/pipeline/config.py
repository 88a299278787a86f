"""params.yaml -> typed configuration. The one place that reads params.yaml; stages receive these objects.

A missing or mistyped key fails here with one line naming the key, e.g.
`params.yaml: tune.n_trials: Input should be a valid integer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlcore.errors import PipelineError

DEFAULT_PARAMS = Path("params.yaml")


class Section(BaseModel):
    # Unknown keys are errors: a typo in params.yaml must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(BaseModel):
    """params.yaml `data`: how `make data` rebuilds data/ when neither the DVC cache nor a remote has it.

    `regenerate` is a command, run without a shell in the repository root (`{out}` = the directory to write,
    a leading `python` = this interpreter); what it writes must hash to data.dvc's md5. The other keys are
    that command's settings (the demo generator, src/demo, types its own). No section: data comes only
    from the DVC cache or a remote.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    regenerate: str = ""


class ProjectParams(Section):
    """The project's name: the one home of what the service, its Kubernetes objects, the image, the API docs, the
    Optuna study, the dashboard and the alerts are called. `make project` writes it into the manifests."""

    # A DNS label (RFC 1123) short enough that `<name>-api-production` and `<name>-tune-workers` stay one too.
    name: str = Field(pattern=r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)


class WarehouseParams(Section):
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    files: str
    # DuckDB only: above this its sorts and joins spill to a temporary directory instead of growing in memory.
    duckdb_memory_limit: str = Field(default="512MB", pattern=r"^\d+(\.\d+)?\s*([KMGT]i?B)$")


class ExtractParams(Section):
    query: str
    cutoff: str = "latest"
    window_days: int = Field(gt=0)
    chunk_rows: int = Field(gt=0)
    # extract warns when the window leaves out more than this share of the table's rows (older than its start)
    warn_dropped_share: float = Field(default=0.2, ge=0, le=1)


class FeatureSpec(Section):
    type: Literal["int", "float", "category"]
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None
    nullable: bool = False

    @model_validator(mode="after")
    def _check(self) -> FeatureSpec:
        if self.type == "category" and not self.allowed:
            raise ValueError("a category feature needs a non-empty 'allowed' list")
        if self.type != "category" and self.allowed:
            raise ValueError("'allowed' is only for category features")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class SchemaParams(Section):
    id_column: str
    time_column: str
    label: str
    min_rows: int = Field(ge=1)
    max_label_null_fraction: float = Field(ge=0, le=1)
    features: dict[str, FeatureSpec]

    @property
    def numeric_features(self) -> list[str]:
        return [name for name, spec in self.features.items() if spec.type != "category"]

    @property
    def categorical_features(self) -> list[str]:
        return [name for name, spec in self.features.items() if spec.type == "category"]

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)


class PrepareParams(Section):
    valid_days: int = Field(gt=0)
    test_days: int = Field(gt=0)
    # Below these a window still splits, with a warning: its metrics would be too noisy to judge a model by.
    min_window_rows: int = Field(default=200, ge=1)
    min_window_positives: int = Field(default=20, ge=1)


class ModelParams(Section):
    type: str  # a key of pipeline.modeling.MODEL_TYPES (checked there, where the types are registered)
    # With `type: sklearn`: the classifier's dotted path, e.g. sklearn.ensemble.RandomForestClassifier.
    estimator: str | None = None
    seed: int
    class_weight: Literal["balanced", "none"] = "balanced"
    threads: int = Field(ge=1)
    defaults: dict[str, bool | int | float | str]


class SearchDimension(Section):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> SearchDimension:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical dimension needs 'choices'")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError("needs 'low' <= 'high'")
        return self


class PrunerParams(Section):
    n_startup_trials: int = Field(ge=0)
    n_warmup_steps: int = Field(ge=0)
    n_steps: int = Field(ge=1)


class TuneParams(Section):
    n_trials: int = Field(ge=0)
    timeout_s: float = Field(gt=0)
    seed: int
    metric: Literal["roc_auc", "pr_auc", "log_loss"]
    storage: str
    pruner: PrunerParams
    search_space: dict[str, SearchDimension]


class TrainParams(Section):
    fit_on: Literal["train", "train_valid"]
    reference_sample: int = Field(gt=0)


class EvaluateParams(Section):
    threshold: float = Field(gt=0, lt=1)
    calibration_bins: int = Field(ge=2)
    importance_repeats: int = Field(ge=1)
    seed: int
    gate: dict[str, float]


FEATURE_SECTIONS = ("report", "promotion", "monitor", "delivery")
SectionT = TypeVar("SectionT", bound=BaseModel)


class Params(BaseModel):
    """The whole of params.yaml: the stage sections typed here, a misspelt top-level key an error.

    The lifecycle features around the pipeline (src/ops/<feature>) own and type their sections themselves
    (`Params.section(name, Model)`), so deleting a feature's folder leaves nothing behind to edit here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: ProjectParams
    data: DataParams | None = None
    warehouse: WarehouseParams
    extract: ExtractParams
    schema_: SchemaParams = Field(alias="schema")
    prepare: PrepareParams
    model: ModelParams
    tune: TuneParams
    train: TrainParams
    evaluate: EvaluateParams
    # feature sections (src/ops/report, src/ops/retrain, src/ops/monitor, src/ops/deliver), typed by their feature
    report: dict[str, Any] | None = None
    promotion: dict[str, Any] | None = None
    monitor: dict[str, Any] | None = None
    delivery: dict[str, Any] | None = None

    @property
    def schema(self) -> SchemaParams:
        return self.schema_

    def section(self, name: str, model: type[SectionT], source: str = DEFAULT_PARAMS) -> SectionT:
        """A feature's section, validated by the feature's own model; missing or invalid: one clear error."""
        raw = getattr(self, name, None) if name in FEATURE_SECTIONS else None
        if raw is None:
            raise PipelineError(f"{source}: missing section '{name}'")
        return parse_section(raw, model, f"{source}: {name}")


def validation_message(exc: ValidationError, where: str) -> str:
    """A pydantic error as one line: `<where>.<key>: <message> (and N more)`, the project's error style."""
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    sep = "" if not key else ("." if not where.endswith(": ") else "")
    return f"{where}{sep}{key}: {first['msg']}{more}"


def parse_section(raw: Any, model: type[SectionT], where: str) -> SectionT:
    """Validate one section (`where` names it in errors, e.g. "params.yaml: monitor")."""
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        raise PipelineError(validation_message(exc, where)) from exc


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: expected a mapping of sections at the top level")
    return parse_params(raw, source=str(path))


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise PipelineError(validation_message(exc, f"{source}: ")) from exc
