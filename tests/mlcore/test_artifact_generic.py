"""mlcore.artifact.is_trusted: scikit-learn estimator classes load without being listed; everything else a file
may name (functions, other classes, modules that do not exist or are test code) is refused with its name."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from sklearn.ensemble import RandomForestClassifier

from mlcore.artifact import MODEL_FILE, ArtifactError, is_trusted, load_model, save_model
from tests.support.forge import edit_metadata

TRUSTED = [
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble.RandomForestClassifier",  # the public path names the same class
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",  # exact internal
    "builtins.dict",  # exact
]
REFUSED = [
    "builtins.eval",
    "builtins.exec",
    "os.system",
    "numpy.load",
    "sklearn.datasets.fetch_openml",  # a function
    "sklearn.datasets._openml.fetch_openml",
    "sklearn.utils.validation.check_is_fitted",  # a function in a trusted module
    "sklearn.utils._bunch.Bunch",  # a class, not an estimator
    "sklearn.gaussian_process.kernels.RBF",  # a class, not an estimator
    "sklearn.nope.Forest",  # no such module
    "sklearn.ensemble.NoSuchForest",
    "sklearn.utils._testing.MinimalClassifier",  # test helpers are not the library (nor an estimator)
    "sklearn.tests.test_base.Buggy",  # an estimator class, but in test code
    "sklearn.base.BaseEstimator.__init__",
    "sklearn.RandomForestClassifier",
    "sklearn.",
    "sklearnx.ensemble.Forest",
    "numpy.random.mtrand._rand",
]


@pytest.mark.parametrize("name", TRUSTED)
def test_estimator_classes_and_exact_names_are_trusted(name):
    assert is_trusted(name)


@pytest.mark.parametrize("name", REFUSED)
def test_functions_other_classes_and_unknown_modules_are_refused(name):
    assert not is_trusted(name)


def _forest_model(tmp_path: Path) -> Path:
    import numpy as np

    x = np.random.default_rng(0).normal(size=(60, 3))
    save_model(RandomForestClassifier(n_estimators=3, random_state=0).fit(x, x[:, 0] > 0), {}, tmp_path)
    return tmp_path


def _rename_type(path: Path, old: str, new: str) -> None:
    """Rewrite schema.json so the file names `new` where it named `old` (module.Class), resealed."""
    old_module, old_class = old.rsplit(".", 1)
    new_module, new_class = new.rsplit(".", 1)
    src = zipfile.ZipFile(io.BytesIO((path / MODEL_FILE).read_bytes()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "schema.json":
                schema = json.loads(data)
                pending, renamed = [schema], 0
                while pending:
                    node = pending.pop()
                    if isinstance(node, dict):
                        if (node.get("__module__"), node.get("__class__")) == (old_module, old_class):
                            node["__module__"], node["__class__"] = new_module, new_class
                            renamed += 1
                        pending.extend(node.values())
                    elif isinstance(node, list):
                        pending.extend(node)
                assert renamed, old
                data = json.dumps(schema, indent=2).encode()
            dst.writestr(name, data)
    (path / MODEL_FILE).write_bytes(out.getvalue())
    edit_metadata(path, lambda m: None)


@pytest.mark.parametrize(
    "name",
    [
        "builtins.eval",
        "os.system",
        "numpy.load",
        "sklearn.datasets.fetch_openml",
        "sklearn.utils._bunch.Bunch",
        "sklearn.nope.Forest",
    ],
)
def test_a_file_naming_an_untrusted_type_is_refused_naming_it(tmp_path, name):
    path = _forest_model(tmp_path)
    assert load_model(path)[0].predict_proba([[0.0, 0.0, 0.0]]).shape == (1, 2)
    _rename_type(path, "sklearn.ensemble._forest.RandomForestClassifier", name)
    with pytest.raises(ArtifactError, match=rf"refusing to load untrusted types \['{name}'\]"):
        load_model(path)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("left_child", 10**6, "left child 1000000"),
        ("right_child", 0, "right child 0"),
        ("feature", 7, "feature 7"),
    ],
)
def test_a_forest_tree_out_of_bounds_is_refused(tmp_path, field, value, reason):
    from tests.support.forge import replace_model

    path = _forest_model(tmp_path)
    forest, _ = load_model(path)
    tree = forest.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][0] = value  # node 0 is the root split
    tree.__setstate__({**state, "nodes": nodes})
    replace_model(path, forest)
    with pytest.raises(ArtifactError, match=f"malformed tree: decision tree node 0: {reason}"):
        load_model(path)
