"""The model artifact: only the exact allow-listed types load, tree arrays are bounds-checked, and the version
covers both files. Every hostile artifact below is resealed by its forger (its hashes recomputed), unless the
case is about the hashes, and is refused with its reason."""

from __future__ import annotations

import builtins
import collections
import functools
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlcore.artifact import (
    MODEL_FILE,
    TRUSTED_TYPES,
    ArtifactError,
    derive_version,
    dumps_deterministic,
    load_model,
    save_model,
    types_in,
)
from tests.support.forge import (
    copy_model,
    edit_classifier,
    edit_first_tree,
    edit_metadata,
    replace_model,
    write_metadata,
)


class Sneaky(collections.UserDict):  # a type defined outside the allow-list
    pass


def _prepend(path: Path, step) -> None:
    """Run `step` before the real pipeline: predictions look normal, the step runs on every call."""
    estimator, _ = load_model(path)
    replace_model(path, Pipeline([("sneak", step), *estimator.steps]))


def _set_node(kind: str, **values):
    """Set fields of the first node of `kind` (leaf, numeric or categorical split) in the first tree."""

    def change(nodes: np.ndarray) -> None:
        leaf, categorical = nodes["is_leaf"] == 1, nodes["is_categorical"] == 1
        wanted = {"leaf": leaf, "numeric": ~leaf & ~categorical, "categorical": ~leaf & categorical}[kind]
        i = int(np.flatnonzero(wanted)[0])
        for key, value in values.items():
            nodes[key][i] = value

    return change


def _not_a_zip(path: Path) -> None:
    (path / MODEL_FILE).write_bytes(b"not a zip")
    edit_metadata(path, lambda m: None)


def _known_categories(clf) -> None:
    cat = int(np.flatnonzero(clf._bin_mapper.is_categorical_)[0])
    clf._bin_mapper.bin_thresholds_[cat] = np.array([0.0, 300.0])


def _wrong_node_dtype(clf) -> None:
    tree = clf._predictors[0][0]
    tree.nodes = np.zeros(len(tree.nodes), dtype=[("left", np.int64)])


def _swap_model_keep_version(path: Path) -> None:
    """A different model file, its sha256 updated in metadata.json, the old model_version kept."""
    estimator, _ = load_model(path)
    estimator.steps[-1][1]._baseline_prediction = estimator.steps[-1][1]._baseline_prediction + 1.0
    data = dumps_deterministic(estimator)
    (path / MODEL_FILE).write_bytes(data)
    edit_metadata(path, lambda m: m["artifact"].update(sha256=hashlib.sha256(data).hexdigest()), reseal=False)


HOSTILE = [
    # callables and types reached through allow-listed modules
    (
        "eval in a FunctionTransformer",
        lambda p: _prepend(p, FunctionTransformer(builtins.eval)),
        "builtins.eval",
    ),
    (
        "exec in a partial",
        lambda p: _prepend(p, FunctionTransformer(functools.partial(builtins.exec, "0"))),
        "builtins.exec",
    ),
    ("numpy.load", lambda p: _prepend(p, FunctionTransformer(np.load)), "numpy.load"),
    (
        "a scikit-learn downloader",
        lambda p: _prepend(p, FunctionTransformer(sklearn.datasets.fetch_openml)),
        "sklearn.datasets._openml.fetch_openml",
    ),
    (
        "an unused collections type",
        lambda p: edit_classifier(p, lambda c: setattr(c, "extra", collections.OrderedDict(a=1))),
        "collections.OrderedDict",
    ),
    ("a subclass defined elsewhere", lambda p: replace_model(p, Sneaky(a=1)), "Sneaky"),
    # the hashes
    (
        "metadata edited, not resealed",
        lambda p: edit_metadata(p, lambda m: m.update(threshold=0.01), reseal=False),
        "does not hash to its model_version",
    ),
    (
        "old model_version announced",
        lambda p: edit_metadata(p, lambda m: m.update(model_version="0123456789ab"), reseal=False),
        "does not hash to its model_version '0123456789ab'",
    ),
    ("model swapped, sha256 updated", _swap_model_keep_version, "does not hash to its model_version"),
    (
        "model file corrupted",
        lambda p: (p / MODEL_FILE).write_bytes((p / MODEL_FILE).read_bytes()[:-10]),
        "sha256 does not match",
    ),
    (
        "model file elsewhere",
        lambda p: edit_metadata(p, lambda m: m["artifact"].update(file="../../etc/passwd")),
        "'artifact' must record file",
    ),
    ("metadata not an object", lambda p: (p / "metadata.json").write_text("[1]"), "must be a JSON object"),
    ("model file not a zip", _not_a_zip, "not a readable skops file"),
    # tree arrays (the classifier's input columns: 4 categorical, then 7 numeric)
    (
        "left child past the end",
        lambda p: edit_first_tree(p, _set_node("numeric", left=10**6)),
        "left child 1000000",
    ),
    (
        "right child loops back",
        lambda p: edit_first_tree(p, _set_node("categorical", right=0)),
        "right child 0",
    ),
    (
        "feature past the columns",
        lambda p: edit_first_tree(p, _set_node("numeric", feature_idx=11)),
        "feature 11",
    ),
    (
        "negative feature",
        lambda p: edit_first_tree(p, _set_node("categorical", feature_idx=-1)),
        "feature -1",
    ),
    (
        "bitset past the end",
        lambda p: edit_first_tree(p, _set_node("categorical", bitset_idx=99)),
        "bitset 99",
    ),
    (
        "categorical split on a number",
        lambda p: edit_first_tree(p, _set_node("numeric", is_categorical=1)),
        "which is not categorical",
    ),
    (
        "leaf value NaN",
        lambda p: edit_first_tree(p, _set_node("leaf", value=np.nan)),
        "leaf's value must be finite",
    ),
    (
        "threshold NaN",
        lambda p: edit_first_tree(p, _set_node("numeric", num_threshold=np.nan)),
        "threshold must be a number",
    ),
    (
        "bin threshold",
        lambda p: edit_first_tree(p, _set_node("numeric", bin_threshold=255)),
        "bin threshold 255 outside",
    ),
    ("flag not 0/1", lambda p: edit_first_tree(p, _set_node("numeric", is_leaf=7)), "is_leaf must be 0 or 1"),
    ("known category above 255", lambda p: edit_classifier(p, _known_categories), "whole numbers in 0..255"),
    ("nodes of another dtype", lambda p: edit_classifier(p, _wrong_node_dtype), "not a loadable skops file"),
    (
        "a tree that is a dict",
        lambda p: edit_classifier(p, lambda c: c._predictors[0].__setitem__(0, {"nodes": 1})),
        "not a TreePredictor",
    ),
]


@pytest.mark.parametrize(("case", "forge", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_artifact_is_refused_with_its_reason(model_dir, tmp_path, case, forge, reason):
    path = copy_model(model_dir, tmp_path)
    forge(path)
    with pytest.raises(ArtifactError) as refused:
        load_model(path)
    assert reason in str(refused.value)


def test_the_trained_model_loads_with_the_version_derived_from_both_files(model_dir, tmp_path):
    _, metadata = load_model(model_dir)
    recorded = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["model_version"] == recorded["model_version"] == derive_version(recorded)
    assert metadata["artifact"]["types"] == types_in((model_dir / MODEL_FILE).read_bytes())
    assert set(metadata["artifact"]["types"]) <= TRUSTED_TYPES
    # the version is over the content, not the layout: a re-indented metadata.json still loads
    path = copy_model(model_dir, tmp_path)
    write_metadata(path, recorded, reseal=False)
    assert load_model(path)[1]["model_version"] == recorded["model_version"]


def test_a_resealed_forgery_announces_a_new_version(model_dir, tmp_path):
    """Whoever can write the model directory can recompute the hashes: then the version changes, so the service
    never serves a changed model under the version that was reviewed and deployed."""
    path = copy_model(model_dir, tmp_path)
    edit_metadata(path, lambda m: m.update(threshold=0.01))
    assert load_model(path)[1]["model_version"] != load_model(model_dir)[1]["model_version"]


def test_saving_a_model_with_untrusted_types_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match=r"types mlcore.artifact does not trust: \[.*Sneaky"):
        save_model(Sneaky(a=1), {}, tmp_path / "sneaky")
    assert not (tmp_path / "sneaky").exists()
