"""The model artifact: a fitted scikit-learn Pipeline in skops format plus metadata.json.

What loading trusts, and why:
- **Types**: skops builds only the types a file names, but a type name is not a safe unit by itself: an
  allow-listed transformer can hold any callable (`FunctionTransformer(func=builtins.eval)`). So every type a
  file names (classes, functions, types; skops's own defaults included) must pass `is_trusted`, and `sio.loads`
  is given exactly those names. Trusted are: the exact `TRUSTED_TYPES` (containers, numpy values, the two
  functions HistGradientBoosting needs) and `SKLEARN_INTERNALS` (a tree's nodes, random states, optimisers), and
  any `sklearn.<module>.<Class>` that is a *class subclassing BaseEstimator* in an importable, non-test module
  of the installed scikit-learn. Why that is safe: building an estimator class runs only scikit-learn's own
  code (`__new__` + `__setstate__`, no user callable); every callable or object it holds is named in the file
  too and checked on its own, so a function (`builtins.eval`, `os.system`, `numpy.load`,
  `sklearn.datasets.fetch_openml`) or a non-estimator class is refused wherever it hides. Never a prefix:
  `builtins.` or `numpy.` would admit eval or numpy.load. Importing a named sklearn module runs only library
  code already installed with the service (test modules excluded); a name that fails to import is refused.
  `save_model` refuses to write a model that needs more, so a new estimator fails at training, not at serving.
- **Trees**: HistGradientBoosting's compiled predictor follows node indices without bounds checks;
  `mlcore.trees.check_tree_arrays` checks them before the model serves.
- **Version**: `model_version` is the hash of metadata.json's content, which records the model file's sha256:
  loading recomputes both from the bytes it read and refuses a file that does not match, so an edited
  metadata.json (a threshold, a feature bound) or a replaced model file is refused, and a consistent forgery
  announces a new version instead of the old one.
skops writes a zip whose entries carry the current time; `dumps_deterministic` rewrites it with a fixed timestamp
so the same fitted model always gives the same bytes.

This module is imported by the serving app, so it depends only on the serving requirements.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError
from mlcore.io import json_default
from mlcore.trees import TreeError, check_tree_arrays

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# skops refers to objects by id() ("__id__": 1406...) and names array files after it ("1406....npy").
_OBJECT_REFERENCE = re.compile(r'("__id__": |"file": ")(\d+)(\.npy"|(?=[,}\s]))')
# Types a model file may name, exactly, besides scikit-learn's estimator classes (`is_trusted`): what skops writes
# for any object and the non-estimator parts of the registered estimators (tests/pipeline/test_modeling.py).
# Never a prefix: `builtins.` or `numpy.` would admit eval or numpy.load. Another library's types go here.
TRUSTED_TYPES = frozenset(
    {
        # containers and values skops writes for any object
        "builtins.dict",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "numpy.dtype",
        "numpy.float64",
        "numpy.ndarray",
        "numpy.uint64",
        "numpy.random._generator.Generator",
        # the pipeline and its preprocessing
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._label.LabelEncoder",
        # logistic_regression
        "sklearn.linear_model._logistic.LogisticRegression",
        # hist_gradient_boosting (its input check is FunctionTransformer(partial(check_array, ...)))
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "functools.partial",
        "sklearn.utils.validation.check_array",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.loss.HalfBinomialLoss",
    }
)


# Internals the scikit-learn classifiers keep in their fitted state that are not estimators themselves (a tree's
# node arrays, loss and link objects, random states): exact names, checked by tests/mlcore/test_artifact_generic.py.
SKLEARN_INTERNALS = frozenset(
    {
        "numpy.int64",  # tree ensembles' counts
        "numpy.random.mtrand.RandomState",  # GradientBoosting, MLP
        "sklearn.tree._tree.Tree",  # every tree model's nodes (bounds-checked by mlcore.trees)
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",  # MLP
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",  # MLP solver="sgd"
        "sklearn.calibration._CalibratedClassifier",  # CalibratedClassifierCV's fitted parts
    }
)
# Modules a file may never make skops import, however they are spelled: test code is not part of the library.
_NEVER_MODULES = frozenset({"tests", "conftest", "_testing"})


def is_trusted(name: str) -> bool:
    """Whether a model file may name type `name`: one of the exact `TRUSTED_TYPES` / `SKLEARN_INTERNALS`, or
    `sklearn.<module>.<Class>` where the module imports (outside test code) and the attribute is a class that
    subclasses scikit-learn's BaseEstimator. Functions, non-estimator classes and anything outside sklearn. are
    refused; any failure to import or resolve refuses."""
    if name in TRUSTED_TYPES or name in SKLEARN_INTERNALS:
        return True
    module_name, _, attribute = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] != "sklearn" or len(parts) < 2 or not attribute or _NEVER_MODULES & set(parts):
        return False
    if not all(part.isidentifier() for part in [*parts, attribute]):
        return False
    try:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
        from sklearn.base import BaseEstimator

        candidate = getattr(module, attribute)
        return inspect.isclass(candidate) and issubclass(candidate, BaseEstimator)
    except Exception:  # a name that cannot be resolved is refused, whatever the reason
        return False


class ArtifactError(PipelineError):
    """The model artifact is missing, corrupt, or does not match its metadata."""


def dumps_deterministic(estimator: Any) -> bytes:
    """skops bytes that depend only on the model: fixed zip timestamps, and the memory addresses skops uses as
    object ids and array file names replaced by their order of first appearance."""
    import skops.io as sio

    src = zipfile.ZipFile(io.BytesIO(sio.dumps(estimator)))
    schema = src.read("schema.json").decode("utf-8")
    renumber: dict[str, str] = {}

    def stable(number: str) -> str:
        return renumber.setdefault(number, str(len(renumber) + 1))

    schema = _OBJECT_REFERENCE.sub(lambda m: m.group(1) + stable(m.group(2)) + m.group(3), schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        entries = {"schema.json": schema.encode("utf-8")}
        for name in src.namelist():
            if name != "schema.json":
                stem, dot, ext = name.partition(".")
                entries[f"{renumber.get(stem, stem)}{dot}{ext}"] = src.read(name)
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, entries[name])
    return out.getvalue()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def types_in(data: bytes) -> list[str]:
    """Every type a skops file names (each object's `__module__.__class__`, functions and types included), sorted.

    This reads schema.json itself rather than asking skops which types are untrusted: skops trusts some types by
    default, and the allow-list is meant to cover everything the file makes skops build."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactError(f"not a readable skops file ({exc})") from exc
    found: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            module, name = node.get("__module__"), node.get("__class__")
            if module is not None or name is not None:
                found.add(f"{module}.{name}")
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return sorted(found)


def untrusted_types(data: bytes) -> list[str]:
    return [t for t in types_in(data) if not is_trusted(t)]


def derive_version(metadata: dict[str, Any]) -> str:
    """The first 12 hex digits of the sha256 of metadata.json's content without `model_version`: keys sorted,
    no whitespace (so re-indenting the file does not change it). The content records the model file's sha256,
    so the version covers both files."""
    content = {k: v for k, v in metadata.items() if k != "model_version"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256_bytes(canonical.encode("utf-8"))[:12]


def seal_metadata(metadata: dict[str, Any], data: bytes) -> dict[str, Any]:
    """The metadata as it is written next to model bytes `data`: `artifact` (file, format, sha256, the types the
    file names) and `model_version` derived from the result. JSON round-tripped (numpy scalars become numbers),
    so the version is computed on exactly what loading will read."""
    sealed = json.loads(json.dumps(metadata, default=json_default))
    sealed.pop("model_version", None)
    sealed["artifact"] = {
        "file": MODEL_FILE,
        "format": "skops",
        "sha256": sha256_bytes(data),
        "types": types_in(data),
    }
    sealed["model_version"] = derive_version(sealed)
    return sealed


def save_model(estimator: Any, metadata: dict[str, Any], model_dir: str | Path) -> dict[str, Any]:
    """Write model.skops and metadata.json (atomically); returns the metadata as written (`seal_metadata`).

    Refuses a model that names a type `is_trusted` refuses: it could not be loaded."""
    from mlcore.io import write_bytes, write_json

    data = dumps_deterministic(estimator)
    refused = untrusted_types(data)
    if refused:
        raise ArtifactError(
            f"the fitted model uses types mlcore.artifact does not trust: {refused} (if they belong to a "
            "library you use on purpose, add their exact names to mlcore.artifact.TRUSTED_TYPES)"
        )
    sealed = seal_metadata(metadata, data)
    model_dir = Path(model_dir)
    write_bytes(model_dir / MODEL_FILE, data)
    write_json(model_dir / METADATA_FILE, sealed)
    return sealed


def load_metadata(model_dir: str | Path) -> dict[str, Any]:
    """metadata.json as recorded, parsed but not verified against the model file (`load_model` verifies)."""
    path = Path(model_dir) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: model metadata not found (run `make run` to train a model)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ArtifactError(f"{path}: not valid JSON{where}") from exc
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{path}: must be a JSON object (retrain with `make run`)")
    return metadata


def load_model(model_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load and verify the model: file present, its sha256 and metadata.json's content as `model_version`
    records, only trusted types (`is_trusted`), tree arrays in bounds. The metadata returned carries the derived version."""
    import skops.io as sio

    model_dir = Path(model_dir)
    metadata = load_metadata(model_dir)
    meta_path = model_dir / METADATA_FILE
    artifact = metadata.get("artifact")
    if not isinstance(artifact, dict) or artifact.get("file") != MODEL_FILE:
        raise ArtifactError(
            f"{meta_path}: 'artifact' must record file '{MODEL_FILE}' (retrain with `make run`)"
        )
    path = model_dir / MODEL_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path}: model file not found") from exc
    if sha256_bytes(data) != artifact.get("sha256"):
        raise ArtifactError(f"{path}: sha256 does not match metadata.json (corrupt or replaced model file)")
    version = derive_version(metadata)
    if metadata.get("model_version") != version:
        raise ArtifactError(
            f"{meta_path}: content does not hash to its model_version {metadata.get('model_version')!r} "
            "(edited after training: restore the file or retrain)"
        )
    try:
        refused = untrusted_types(data)
    except ArtifactError as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    if refused:
        raise ArtifactError(f"{path}: refusing to load untrusted types {refused}")
    try:
        # Exactly the types this file names, each of which passed is_trusted above.
        estimator = sio.loads(data, trusted=types_in(data))
    except Exception as exc:  # a damaged schema fails deep inside skops in many ways; report them as one
        raise ArtifactError(f"{path}: not a loadable skops file ({type(exc).__name__}: {exc})") from exc
    try:
        check_tree_arrays(estimator)
    except TreeError as exc:
        raise ArtifactError(f"{path}: refusing a malformed tree: {exc}") from exc
    return estimator, {**metadata, "model_version": version}
