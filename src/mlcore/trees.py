"""Bounds checks of HistGradientBoosting tree arrays, run when a model is loaded (`mlcore.artifact.load_model`).

scikit-learn's compiled predictor trusts its arrays: it follows `left`/`right` node indices, reads input column
`feature_idx` and bitset row `bitset_idx` with no bounds checks (skops and MLflow warn about it), so a crafted
file could make it read outside its arrays or loop forever. A model trained by scikit-learn always satisfies:
- node records have scikit-learn's dtype; flags (`is_leaf`, `missing_go_to_left`, `is_categorical`) are 0 or 1;
- a split's children come after it in the array (so every walk ends at a leaf) and inside it;
- a split's feature is one of the model's input columns, and a categorical split is on a categorical feature
  whose bitset row exists; a numeric split has a threshold that is a number and a bin below the feature's bins;
- a leaf's value is finite; the known categories of a categorical feature are whole numbers in 0..255.
The decision trees of every other tree model (`sklearn.tree._tree.Tree`: forests, extra trees, gradient boosting,
AdaBoost, bagging) are walked the same way by compiled code: each split's children must come after it and inside
the node array, and its feature must be one of the tree's input columns.
`check_tree_arrays` raises `TreeError` naming the first rule broken.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TreeError(ValueError):
    """A tree array of the model is out of bounds or malformed."""


def check_tree_arrays(estimator: Any) -> None:
    """Check every HistGradientBoosting classifier inside `estimator` (Pipeline steps, ColumnTransformer parts)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    for part in _parts(estimator):
        if isinstance(part, HistGradientBoostingClassifier):
            _check_classifier(part)
    for tree in _decision_trees(estimator):
        _check_decision_tree(tree)


def _decision_trees(estimator: Any) -> list[Any]:
    """Every sklearn.tree._tree.Tree reachable from `estimator` through attributes, lists, dicts and arrays."""
    from sklearn.tree._tree import Tree

    found, seen, pending = [], set(), [estimator]
    while pending:
        obj = pending.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | type(None)):
            continue
        seen.add(id(obj))
        if isinstance(obj, Tree):
            found.append(obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                pending.extend(obj.ravel().tolist())
        elif isinstance(obj, dict):
            pending.extend(obj.values())
        elif isinstance(obj, list | tuple | set):
            pending.extend(obj)
        elif hasattr(obj, "__dict__"):
            pending.extend(vars(obj).values())
    return found


def _check_decision_tree(tree: Any) -> None:
    n, n_features = int(tree.node_count), int(tree.n_features)
    if n < 1 or n_features < 1:
        raise TreeError("a decision tree must have nodes and input columns")
    left, right = tree.children_left.astype(np.int64), tree.children_right.astype(np.int64)
    feature, ids = tree.feature.astype(np.int64), np.arange(n)
    leaf = (left == -1) & (right == -1)
    for name, child in (("left", left), ("right", right)):
        bad = np.flatnonzero(~leaf & ((child <= ids) | (child >= n)))
        if len(bad):
            raise TreeError(
                f"decision tree node {bad[0]}: {name} child {child[bad[0]]} must come after it, inside its {n} nodes"
            )
    bad = np.flatnonzero(~leaf & ((feature < 0) | (feature >= n_features)))
    if len(bad):
        raise TreeError(
            f"decision tree node {bad[0]}: feature {feature[bad[0]]} outside its {n_features} input columns"
        )


def _parts(estimator: Any) -> list[Any]:
    out, pending = [], [estimator]
    while pending:
        part = pending.pop()
        out.append(part)
        pending.extend(step for _, step in getattr(part, "steps", ()) or ())
        pending.extend(t for _, t, _ in getattr(part, "transformers_", ()) or ())
    return out


def _check_classifier(clf: Any) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    n_features = getattr(clf, "n_features_in_", None)
    per_iteration = getattr(clf, "n_trees_per_iteration_", None)
    if not _is_count(n_features) or not _is_count(per_iteration):
        raise TreeError("n_features_in_ and n_trees_per_iteration_ must be positive integers")
    baseline = np.asarray(getattr(clf, "_baseline_prediction", None))
    if baseline.shape != (1, per_iteration) or not np.issubdtype(baseline.dtype, np.floating):
        raise TreeError(f"_baseline_prediction must be {per_iteration} number(s)")
    if not np.all(np.isfinite(baseline)):
        raise TreeError("_baseline_prediction must be finite")
    is_categorical, n_bins = _check_bin_mapper(getattr(clf, "_bin_mapper", None), n_features)
    predictors = getattr(clf, "_predictors", None)
    if not isinstance(predictors, list) or not predictors:
        raise TreeError("_predictors must be a non-empty list of iterations")
    for it, trees in enumerate(predictors):
        if not isinstance(trees, list) or len(trees) != per_iteration:
            raise TreeError(f"iteration {it} must hold {per_iteration} tree(s)")
        for tree in trees:
            if type(tree) is not TreePredictor:
                raise TreeError(f"iteration {it} holds a {type(tree).__name__}, not a TreePredictor")
            nodes = tree.nodes
            if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1:
                raise TreeError(f"iteration {it}: nodes must be a 1-d array of scikit-learn's node records")
            n_bitsets = _check_bitsets(tree, it)
            problem = _node_problem(nodes, n_features, is_categorical, n_bins, n_bitsets)
            if problem:
                raise TreeError(f"iteration {it}: {problem}")


def _is_count(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1


def _check_bin_mapper(mapper: Any, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper

    if type(mapper) is not _BinMapper:
        raise TreeError("_bin_mapper must be scikit-learn's _BinMapper")
    is_categorical = getattr(mapper, "is_categorical_", None)
    n_bins = getattr(mapper, "n_bins_non_missing_", None)
    thresholds = getattr(mapper, "bin_thresholds_", None)
    for name, arr in (("is_categorical_", is_categorical), ("n_bins_non_missing_", n_bins)):
        if (
            not isinstance(arr, np.ndarray)
            or arr.shape != (n_features,)
            or not np.issubdtype(arr.dtype, np.integer)
        ):
            raise TreeError(f"_bin_mapper.{name} must be {n_features} integers (one per input column)")
    if not np.isin(is_categorical, (0, 1)).all():
        raise TreeError("_bin_mapper.is_categorical_ must hold 0 or 1")
    if not isinstance(thresholds, list) or len(thresholds) != n_features:
        raise TreeError(f"_bin_mapper.bin_thresholds_ must hold {n_features} arrays")
    for f in np.flatnonzero(is_categorical):
        known = thresholds[f]
        if not isinstance(known, np.ndarray) or known.ndim != 1 or known.dtype.kind not in "iuf":
            raise TreeError(f"_bin_mapper.bin_thresholds_[{f}] must be an array of category codes")
        if not np.all((known >= 0) & (known <= 255) & (known == np.floor(known))):
            raise TreeError(
                f"_bin_mapper.bin_thresholds_[{f}]: category codes must be whole numbers in 0..255"
            )
    return is_categorical, n_bins


def _check_bitsets(tree: Any, it: int) -> int:
    shapes = []
    for name in ("raw_left_cat_bitsets", "binned_left_cat_bitsets"):
        arr = getattr(tree, name, None)
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint32 or arr.ndim != 2 or arr.shape[1] != 8:
            raise TreeError(f"iteration {it}: {name} must be a (n, 8) uint32 array")
        shapes.append(arr.shape[0])
    if shapes[0] != shapes[1]:
        raise TreeError(f"iteration {it}: raw and binned category bitsets differ in length")
    return shapes[0]


def _node_problem(
    nodes: np.ndarray, n_features: int, is_categorical: np.ndarray, n_bins: np.ndarray, n_bitsets: int
) -> str | None:
    n = len(nodes)
    if n == 0:
        return "a tree has no nodes"
    for flag in ("is_leaf", "missing_go_to_left", "is_categorical"):
        bad = np.flatnonzero(nodes[flag] > 1)
        if len(bad):
            return f"node {bad[0]}: {flag} must be 0 or 1"
    leaf = nodes["is_leaf"] == 1
    bad = np.flatnonzero(leaf & ~np.isfinite(nodes["value"]))
    if len(bad):
        return f"node {bad[0]}: a leaf's value must be finite"
    ids = np.arange(n)
    split = ~leaf
    for child in ("left", "right"):
        idx = nodes[child].astype(np.int64)
        bad = np.flatnonzero(split & ((idx <= ids) | (idx >= n)))
        if len(bad):
            return (
                f"node {bad[0]}: {child} child {idx[bad[0]]} must come after it, inside the tree's {n} nodes"
            )
    feature = nodes["feature_idx"].astype(np.int64)
    bad = np.flatnonzero(split & ((feature < 0) | (feature >= n_features)))
    if len(bad):
        return f"node {bad[0]}: feature {feature[bad[0]]} outside the model's {n_features} input columns"
    safe_feature = np.where(split, feature, 0)
    categorical = split & (nodes["is_categorical"] == 1)
    bad = np.flatnonzero(categorical & (is_categorical[safe_feature] != 1))
    if len(bad):
        return f"node {bad[0]}: a categorical split on feature {feature[bad[0]]}, which is not categorical"
    bad = np.flatnonzero(categorical & (nodes["bitset_idx"].astype(np.int64) >= n_bitsets))
    if len(bad):
        return f"node {bad[0]}: bitset {nodes['bitset_idx'][bad[0]]} outside the tree's {n_bitsets} bitsets"
    numeric = split & ~categorical
    bad = np.flatnonzero(numeric & np.isnan(nodes["num_threshold"]))
    if len(bad):
        return f"node {bad[0]}: a numeric split's threshold must be a number"
    bad = np.flatnonzero(numeric & (nodes["bin_threshold"].astype(np.int64) >= n_bins[safe_feature]))
    if len(bad):
        return f"node {bad[0]}: bin threshold {nodes['bin_threshold'][bad[0]]} outside the feature's bins"
    return None
