"""A lean re-implementation of the fitted pipeline's predict_proba for the model shapes this template trains.

Why: profiling `Pipeline.predict_proba` on one record (see docs/benchmarks.md) showed ~95% of the time in
per-call overhead, not arithmetic: DataFrame validation and column selection in ColumnTransformer, encoder input
checks, and for HistGradientBoosting one OpenMP-parallel Cython call per tree. This module reads the *fitted*
parameters out of the pipeline once and evaluates the same arithmetic on plain numpy arrays (ONNX would do the
same job, but skl2onnx cannot convert this scikit-learn's HistGradientBoostingClassifier).

It is an optimisation, never a source of truth: `compile_pipeline` raises `Unsupported` for any step it does not know, and
`app.model` only uses the result after it matched `pipeline.predict_proba` on a set of check records. A fork that
swaps in another estimator keeps working through the plain scikit-learn path.

Supported: a Pipeline of a ColumnTransformer (passthrough / SimpleImputer / StandardScaler on numeric columns;
SimpleImputer + OrdinalEncoder / OneHotEncoder on category columns) and a binary LogisticRegression or
HistGradientBoostingClassifier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from app.schema import Feature

log = logging.getLogger(__name__)

Block = Callable[[Sequence[Sequence[Any]]], np.ndarray]  # columns -> (n, k) float block
Head = Callable[[np.ndarray], np.ndarray]  # model input matrix -> P(positive class)


class Unsupported(Exception):
    """The pipeline contains a step this module does not re-implement."""


class CompiledPipeline:
    """`predict_proba(columns)`: one sequence of values per feature, in schema order (None or NaN = missing) ->
    P(positive class) per row.

    The preprocessing is re-implemented on numpy (`transform`); the classifier is evaluated by `small` (numpy
    arithmetic, lowest latency for a few rows) or, above `max_rows` rows, by `large` (the fitted classifier's own
    compiled predict_proba on the transformed matrix: skips only the DataFrame and ColumnTransformer overhead).
    """

    def __init__(self, blocks: list[Block], small: Head, large: Head | None, max_rows: int | None):
        self.blocks, self.small, self.large, self.max_rows = blocks, small, large, max_rows

    def transform(self, columns: Sequence[Sequence[Any]]) -> np.ndarray:
        parts = [block(columns) for block in self.blocks]
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def head_for(self, n_rows: int) -> Head:
        if self.large is not None and self.max_rows is not None and n_rows > self.max_rows:
            return self.large
        return self.small

    def predict_proba(self, columns: Sequence[Sequence[Any]]) -> np.ndarray:
        X = self.transform(columns)
        return self.head_for(len(X))(X)


def compile_pipeline(pipeline: Any, features: list[Feature]) -> CompiledPipeline:
    """The fast equivalent of `pipeline`; raises Unsupported (with the reason) for anything else."""
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) != 2:
        raise Unsupported("expected Pipeline([preprocess, classifier])")
    blocks = _compile_column_transformer(steps[0][1], features)
    small, large, max_rows = _compile_head(steps[1][1])
    return CompiledPipeline(blocks, small, large, max_rows)


def columns_of(rows: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """Rows of values in feature order -> one sequence per feature."""
    return list(zip(*rows, strict=True))


def _cls(obj: Any) -> str:
    return type(obj).__name__


def _compile_column_transformer(ct: Any, features: list[Feature]) -> list[Block]:
    if _cls(ct) != "ColumnTransformer":
        raise Unsupported("preprocess is not a ColumnTransformer")
    names = list(getattr(ct, "feature_names_in_", []))
    if names != [f.name for f in features]:
        raise Unsupported("ColumnTransformer input columns differ from the schema")
    by_name = {f.name: (i, f) for i, f in enumerate(features)}
    blocks = []
    for _name, transformer, columns in ct.transformers_:
        if isinstance(columns, slice) or not len(columns):
            cols = list(np.arange(len(names))[columns]) if isinstance(columns, slice) else []
        else:
            cols = list(columns)
        if transformer == "drop" or not cols:
            continue
        cols = [names[c] if isinstance(c, int | np.integer) else c for c in cols]
        idx = [by_name[c][0] for c in cols]
        kinds = {by_name[c][1].type == "category" for c in cols}
        if len(kinds) != 1:
            raise Unsupported("a transformer mixes numeric and category columns")
        steps = (
            []
            if transformer == "passthrough"
            else ([s for _, s in transformer.steps] if _cls(transformer) == "Pipeline" else [transformer])
        )
        blocks.append(_category_block(idx, steps) if kinds.pop() else _numeric_block(idx, steps))
    if not blocks:
        raise Unsupported("no columns")
    return blocks


def _numeric_block(idx: list[int], steps: list[Any]) -> Block:
    ops: list[Callable[[np.ndarray], np.ndarray]] = []
    for step in steps:
        name = _cls(step)
        if name == "FunctionTransformer" and step.func is None:
            continue  # a fitted "passthrough"
        if name == "SimpleImputer" and not step.add_indicator and _is_nan(step.missing_values):
            stats = np.asarray(step.statistics_, dtype=float)
            ops.append(lambda X, s=stats: np.where(np.isnan(X), s, X))
        elif name == "StandardScaler":
            mean = None if step.mean_ is None else np.asarray(step.mean_, dtype=float)
            scale = None if step.scale_ is None else np.asarray(step.scale_, dtype=float)
            ops.append(
                lambda X, m=mean, s=scale: ((X - m) if m is not None else X) / (s if s is not None else 1.0)
            )
        else:
            raise Unsupported(f"numeric step {name}")

    def block(columns: Sequence[Sequence[Any]]) -> np.ndarray:
        # np.asarray turns None into NaN for a float dtype: the model's "missing"
        X = np.array([columns[i] for i in idx], dtype=float).T
        for op in ops:
            X = op(X)
        return X

    return block


def _category_block(idx: list[int], steps: list[Any]) -> Block:
    if not steps:
        raise Unsupported("category passthrough")
    *imputers, encoder = steps
    fills: list[Any] = [None] * len(idx)
    for imp in imputers:
        if (
            _cls(imp) != "SimpleImputer"
            or imp.add_indicator
            or not (_is_nan(imp.missing_values) or imp.missing_values is None)
        ):
            raise Unsupported(f"category step {_cls(imp)}")
        fills = [f if f is not None else s for f, s in zip(fills, imp.statistics_, strict=True)]
    categories = [list(c) for c in encoder.categories_]
    if any(not isinstance(v, str) for cats in categories for v in cats):
        raise Unsupported("non-string categories")
    maps = [{v: i for i, v in enumerate(cats)} for cats in categories]

    def values(columns: Sequence[Sequence[Any]], j: int) -> Sequence[Any]:
        col, fill = columns[idx[j]], fills[j]
        return col if fill is None else [v if v is not None else fill for v in col]

    if _cls(encoder) == "OrdinalEncoder":
        if encoder.handle_unknown != "use_encoded_value":
            raise Unsupported("OrdinalEncoder(handle_unknown='error')")
        unknown, missing = float(encoder.unknown_value), float(encoder.encoded_missing_value)

        def ordinal(columns: Sequence[Sequence[Any]]) -> np.ndarray:
            out = np.empty((len(columns[idx[0]]), len(idx)), dtype=float)
            for j, mapping in enumerate(maps):
                get = mapping.get
                out[:, j] = [missing if v is None else get(v, unknown) for v in values(columns, j)]
            return out

        return ordinal
    if _cls(encoder) == "OneHotEncoder":
        if (
            encoder.handle_unknown != "ignore"
            or encoder.drop_idx_ is not None
            or getattr(encoder, "_infrequent_enabled", False)
        ):
            raise Unsupported("OneHotEncoder options")
        offsets = np.cumsum([0] + [len(c) for c in categories])

        def onehot(columns: Sequence[Sequence[Any]]) -> np.ndarray:
            out = np.zeros((len(columns[idx[0]]), int(offsets[-1])), dtype=float)
            for j, mapping in enumerate(maps):
                for r, v in enumerate(values(columns, j)):
                    k = mapping.get(v)  # unknown or missing: all zeros, like handle_unknown="ignore"
                    if k is not None:
                        out[r, offsets[j] + k] = 1.0
            return out

        return onehot
    raise Unsupported(f"encoder {_cls(encoder)}")


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _compile_head(est: Any) -> tuple[Head, Head | None, int | None]:
    """(small-batch head, large-batch head or None, the row count above which the large one is used)."""
    classes = list(getattr(est, "classes_", []))
    if len(classes) != 2:
        raise Unsupported("not a binary classifier")
    if _cls(est) == "LogisticRegression":
        coef, intercept = np.asarray(est.coef_, dtype=float), np.asarray(est.intercept_, dtype=float)
        if coef.shape[0] != 1:
            raise Unsupported("multinomial coefficients")
        return (lambda X: _sigmoid(X @ coef[0] + intercept[0])), None, None
    if _cls(est) == "HistGradientBoostingClassifier":
        forest = _Forest(est)
        return forest.predict_proba, _tree_loop_head(est, forest) or _estimator_head(est), forest.max_rows
    raise Unsupported(f"classifier {_cls(est)}")


def _tree_loop_head(est: Any, forest: _Forest) -> Head | None:
    """HistGradientBoosting's own compiled per-tree predictor, called directly with one thread.

    `est.predict_proba` spends ~4 ms per call re-encoding the categorical columns (a ColumnTransformer) and ~60 us
    per tree in Python and OpenMP set-up: more than the trees themselves for a 1000-row batch. The re-encoding is a
    column reordering here (see `_hgb_category_remap`), so this calls the compiled predictor of each tree on the
    reordered matrix. It uses a private scikit-learn function: None (and the public path) if it is missing or its
    signature changed; the parity check at load compares it with scikit-learn either way.
    """
    try:
        from sklearn.ensemble._hist_gradient_boosting._predictor import _predict_from_raw_data
    except ImportError:
        return None
    predictors = [trees[0] for trees in est._predictors]
    known_bits, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
    remap, column_of, baseline = forest.remap, forest.column_of, forest.baseline

    def head(X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        Xp = remap(X) if remap is not None else X.take(column_of, axis=1) if column_of is not None else X
        Xp = np.ascontiguousarray(Xp)
        raw, tree = np.full(len(Xp), baseline), np.empty(len(Xp))
        for predictor in predictors:
            _predict_from_raw_data(
                predictor.nodes, Xp, predictor.raw_left_cat_bitsets, known_bits, f_idx_map, 1, tree
            )
            raw += tree
        return _sigmoid(raw)

    try:
        head(np.zeros((1, est.n_features_in_)))
    except (TypeError, ValueError) as exc:  # another scikit-learn's signature
        log.info("fast path: scikit-learn's tree predictor is not callable here (%s)", exc)
        return None
    return head


def _estimator_head(est: Any) -> Head:
    """The fitted classifier's own predict_proba on the transformed matrix (the input it was fitted on)."""
    import sklearn

    def head(X: np.ndarray) -> np.ndarray:
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return est.predict_proba(X)[:, 1]

    return head


class _Forest:
    """All trees of a binary HistGradientBoostingClassifier as flat arrays, evaluated for all trees at once.

    Mirrors sklearn's `_predict_one_from_raw_data`: NaN follows `missing_go_to_left`; a categorical split goes left
    when the category's bit is set in the node's bitset, right when the category is known to the feature, and
    the missing side otherwise; numeric splits go left when `x <= threshold`.
    Every node's decision is computed at once (one vectorised pass), then each tree is walked by repeated
    lookups `node = next[node]` (leaves point to themselves). Cheap for a few rows; for large batches scikit-learn's
    own Cython loop is faster (it visits one path per tree, not every node), hence `max_rows`.
    """

    # above this many rows the compiled per-tree loop is faster (demo model, idle machine: the numpy forest takes
    # 0.5 ms at 24 rows and 2.1 ms at 32, as its (rows x nodes) arrays outgrow the cache; the loop ~0.6 ms)
    max_rows = 24

    def __init__(self, est: Any):
        if getattr(est, "n_trees_per_iteration_", 1) != 1:
            raise Unsupported("multiclass boosting")
        predictors = [trees[0] for trees in est._predictors]
        known_bits, f_idx_map = est._bin_mapper.make_known_categories_bitsets()
        feat, thr, mleft, left, right, value, iscat, bitset = ([] for _ in range(8))
        roots, raw_bits, node_offset, bits_offset, depth = [], [], 0, 0, 0
        for tree in predictors:
            nodes = tree.nodes
            roots.append(node_offset)
            feat.append(nodes["feature_idx"])
            thr.append(nodes["num_threshold"])
            mleft.append(nodes["missing_go_to_left"].astype(bool))
            is_leaf = nodes["is_leaf"].astype(bool)
            ids = np.arange(len(nodes)) + node_offset
            # leaves point to themselves so that extra walking steps are no-ops
            left.append(np.where(is_leaf, ids, nodes["left"].astype(np.int64) + node_offset))
            right.append(np.where(is_leaf, ids, nodes["right"].astype(np.int64) + node_offset))
            value.append(nodes["value"])
            iscat.append(nodes["is_categorical"].astype(bool) & ~is_leaf)
            bitset.append(nodes["bitset_idx"].astype(np.int64) + bits_offset)
            bits = np.asarray(tree.raw_left_cat_bitsets)
            raw_bits.append(bits.reshape(-1, 8) if bits.size else np.zeros((0, 8), dtype=np.uint32))
            node_offset += len(nodes)
            bits_offset += raw_bits[-1].shape[0]
            depth = max(depth, int(nodes["depth"].max()))
        self.n_nodes = node_offset
        feat_arr = np.concatenate(feat).astype(np.intp)
        self.thr, self.mleft = np.concatenate(thr), np.concatenate(mleft)
        self.left, self.right = np.concatenate(left), np.concatenate(right)
        self.value = np.concatenate(value)
        self.roots = np.asarray(roots, dtype=np.int64)
        self.depth = depth
        self.baseline = float(np.asarray(est._baseline_prediction).ravel()[0])
        self.remap, column_of = _hgb_category_remap(est)
        self.column_of = column_of
        # node -> column of the input matrix (folds HistGradientBoosting's own column reordering in)
        self.feat = column_of[feat_arr] if column_of is not None else feat_arr
        self.cat_nodes = np.flatnonzero(np.concatenate(iscat))
        if len(self.cat_nodes):
            # Each categorical node's direction for every code 0..255, plus column 256 for "missing" (NaN,
            # negative, too large): left if the code is in the node's bitset, right if the feature knows it,
            # else the missing side. One lookup per node at predict time instead of bit arithmetic.
            codes = np.arange(256)
            words, shifts = codes >> 5, (codes & 31).astype(np.uint32)
            node_bits = np.concatenate(raw_bits).astype(np.uint32)[np.concatenate(bitset)[self.cat_nodes]]
            known_rows = np.asarray(known_bits, dtype=np.uint32)[
                np.asarray(f_idx_map, dtype=np.int64)[feat_arr[self.cat_nodes]]
            ]
            in_left = ((node_bits[:, words] >> shifts) & 1).astype(bool)
            known = ((known_rows[:, words] >> shifts) & 1).astype(bool)
            missing_left = self.mleft[self.cat_nodes][:, None]
            self.cat_table = np.concatenate(
                [in_left | (~known & missing_left), missing_left], axis=1
            )  # (cat nodes, 257) -> go left?
            self.cat_rows = np.arange(len(self.cat_nodes))
        self.chunk = max(1, (1 << 19) // max(1, self.n_nodes))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if self.remap is not None:
            X = self.remap(X)
        if len(X) <= self.chunk:
            return self._predict(X)
        return np.concatenate([self._predict(X[i : i + self.chunk]) for i in range(0, len(X), self.chunk)])

    def _predict(self, X: np.ndarray) -> np.ndarray:
        x = X.take(self.feat, axis=1)  # (rows, nodes): each node's input value
        # without a missing value, skip two passes over every node
        go_left = np.where(np.isnan(x), self.mleft, x <= self.thr) if np.isnan(X).any() else x <= self.thr
        if len(self.cat_nodes):
            xc = x[:, self.cat_nodes]
            code = np.where((xc >= 0) & (xc < 256), xc, 256).astype(np.intp)  # NaN compares False: 256
            go_left[:, self.cat_nodes] = self.cat_table[self.cat_rows, code]
        if len(X) == 1:  # the single-record request: no per-row offsets
            nxt1 = np.where(go_left[0], self.left, self.right)
            node1 = self.roots
            for _ in range(self.depth):
                node1 = nxt1.take(node1)
            return _sigmoid(self.value.take(node1).sum(keepdims=True) + self.baseline)
        offsets = (np.arange(len(X)) * self.n_nodes)[:, None]
        nxt = (np.where(go_left, self.left, self.right) + offsets).ravel()  # node -> child, per row
        node = self.roots + offsets
        for _ in range(self.depth):
            node = nxt.take(node)
        return _sigmoid(self.value.take(node - offsets).sum(axis=1) + self.baseline)


def _hgb_category_remap(est: Any) -> tuple[Callable[[np.ndarray], np.ndarray] | None, np.ndarray | None]:
    """HistGradientBoosting re-encodes its categorical columns (codes of the categories seen in fit, unknown ->
    NaN) and moves them first. When those codes are 0..k-1 (always so for an OrdinalEncoder in front), that is
    only a column reordering, returned as `column_of`; otherwise a vectorised re-encoding function."""
    pre = getattr(est, "_preprocessor", None)
    if pre is None:
        return None, None
    encoder = pre.named_transformers_["encoder"]
    is_cat = np.asarray(est.is_categorical_, dtype=bool)
    cat_cols, num_cols = np.flatnonzero(is_cat), np.flatnonzero(~is_cat)
    known = []
    for cats in encoder.categories_:
        cats = np.asarray(cats, dtype=float)
        known.append(cats[~np.isnan(cats)])  # sorted: OrdinalEncoder's "auto" categories
    if all(np.array_equal(cats, np.arange(len(cats))) for cats in known):
        # code k is category k; unseen codes are not in the known bitsets, so they go the missing way as NaN would
        return None, np.concatenate([cat_cols, num_cols]).astype(np.intp)

    def remap(X: np.ndarray) -> np.ndarray:
        out = np.empty_like(X)
        for j, (col, cats) in enumerate(zip(cat_cols, known, strict=True)):
            values = X[:, col]
            pos = np.minimum(np.searchsorted(cats, values), len(cats) - 1)
            out[:, j] = np.where(cats[pos] == values, pos, np.nan)
        out[:, len(cat_cols) :] = X[:, num_cols]
        return out

    return remap, None
