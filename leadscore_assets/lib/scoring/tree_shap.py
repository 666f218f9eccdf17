"""Exact TreeSHAP for shallow boosted trees, by branch pattern: the same values, many times faster.

Path-dependent TreeSHAP (what SHAP's TreeExplainer and XGBoost's / LightGBM's own
`pred_contribs` compute) gives a row's contributions in one tree from the direction the row
takes at each of the tree's splits, and from nothing else. So rows that take the same branch at
every split of a tree share that tree's contributions. A depth-3 tree has 7 splits, so 128
patterns at most: when the model is first explained, each tree's contributions are computed
once for every pattern (the Shapley values of the tree's cover-weighted expected value over
every coalition of its features, which is what TreeSHAP computes), and then every row gets its
pattern's values by a table look-up. The result is exact TreeSHAP, summed per tree in float64
(the libraries add leaf by leaf in float32: the figures agree to ~1e-6, not bit for bit), and a
row's figures do not depend on the rows explained with it (one lead served alone gets what it
gets in `lead_scores`).

Cost: native TreeSHAP over a 300-tree depth-3 model ran at ~6,000 rows/s on 2 cores (more
threads barely help); this runs ~5-10x faster. Whether it applies depends on the model only:
trees of more than MAX_TREE_SPLITS splits (depth 4 and deeper, LightGBM beyond 9 leaves) are
left to the native path (`pattern_shap` returns None).

Checked on every call: the contributions plus the base value must give the model's margin for
every row, and a seeded sample of rows must match native TreeSHAP; otherwise None (native path).
Reads the trees of XGBoost (`gbtree`, binary logistic, numeric splits, one tree per round) and
LightGBM (binary, numeric splits) models; anything else returns None.
"""

from __future__ import annotations

import json
import warnings
import weakref
from dataclasses import dataclass
from math import factorial

import numpy as np

CHECKED_ROWS = 16  # rows compared with native TreeSHAP on every call
MAX_TREE_SPLITS = 8  # a table of 2^8 patterns per tree, each over 2^(its features) coalitions: deeper is native
ZERO_THRESHOLD = 1e-35  # LightGBM's kZeroThreshold: |x| <= this is zero for its "Zero" missing type


@dataclass(frozen=True)
class Tree:
    """One tree, nodes in an order where a parent comes before its children. Per node: left and
    right child (-1: a leaf), input column, threshold, missing values go left, (LightGBM) missing
    type (0 none, 1 zero, 2 NaN), cover (training weight through it) and (leaves) value."""

    left: np.ndarray
    right: np.ndarray
    columns: np.ndarray
    thresholds: np.ndarray
    default_left: np.ndarray
    missing: np.ndarray
    cover: np.ndarray
    value: np.ndarray

    @property
    def splits(self) -> np.ndarray:
        return np.flatnonzero(self.left >= 0)


class _Model:
    """One fitted ensemble as this module reads it: its trees, and the library calls it makes."""

    def __init__(self, kind: str, booster, trees: list[Tree]):
        self.kind, self.booster, self.trees = kind, booster, trees

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Native TreeSHAP, bias last."""
        if self.kind == "xgboost":
            import xgboost

            return self.booster.predict(xgboost.DMatrix(x), pred_contribs=True, validate_features=False)
        return np.asarray(self.booster.predict(x, pred_contrib=True), dtype=float)

    def margin(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "xgboost":
            import xgboost

            return self.booster.predict(xgboost.DMatrix(x), output_margin=True, validate_features=False)
        return np.asarray(self.booster.predict(x, raw_score=True), dtype=float)

    def columns(self, x: np.ndarray) -> np.ndarray:
        """The rows as the library compares them, one contiguous row per input column (XGBoost
        compares in float32)."""
        return np.ascontiguousarray(x.T, dtype=np.float32 if self.kind == "xgboost" else float)

    def goes_left(self, columns: np.ndarray, nan: np.ndarray, tree: Tree, node: int) -> np.ndarray:
        """Whether each row goes left at split `node`, as the library decides it (`columns` from
        `columns`, `nan` its missing values)."""
        values, missing_value = columns[tree.columns[node]], nan[tree.columns[node]]
        if self.kind == "xgboost":  # `x < split`, missing by its default direction
            left = values < tree.thresholds[node]
            return (left | missing_value) if tree.default_left[node] else (left & ~missing_value)
        # LightGBM NumericalDecision: NaN is 0 unless missing is NaN; a missing value goes by default_left
        kind = tree.missing[node]
        if kind == 2:
            is_missing = missing_value
            left = values <= tree.thresholds[node]
        else:
            zero = missing_value | ((values > -ZERO_THRESHOLD) & (values <= ZERO_THRESHOLD))
            left = np.where(missing_value, 0.0 <= tree.thresholds[node], values <= tree.thresholds[node])
            if kind == 0:
                return left
            is_missing = zero
        return (left | is_missing) if tree.default_left[node] else (left & ~is_missing)


_READ: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # estimator -> its trees, read once


def pattern_shap(model, encoded: np.ndarray, seed: int = 0, margin: np.ndarray | None = None
                 ) -> tuple[np.ndarray, float] | None:
    """(contributions per encoded column, base value) of `model` (an XGBClassifier or
    LGBMClassifier) on the rows of `encoded`, exact, or None where this way does not apply (the
    caller then runs native TreeSHAP). Whether it applies depends on the model alone, never on
    the rows, so a lead gets the same figures scored alone or among a million. `margin`: the
    model's raw output on these rows, when the caller already predicted them (the check uses it)."""
    try:
        read = _READ[model] if model in _READ else _READ.setdefault(model, _read(model))
    except TypeError:  # not weak-referenceable
        read = _read(model)
    if read is None or len(encoded) == 0:
        return None
    x = np.ascontiguousarray(encoded, dtype=float)
    columns = read.columns(x)
    nan = np.isnan(columns)
    out = np.zeros((x.shape[1], len(x)))  # one row per column: each tree adds to a few contiguous rows
    for tree, (nodes, used, table) in zip(read.trees, read.tables):
        if len(nodes) == 0:
            continue  # a stump holds no contributions
        codes = np.zeros(len(x), dtype=np.intp)
        for j, node in enumerate(nodes):
            codes |= read.goes_left(columns, nan, tree, node).astype(np.intp) << j
        for k, column in enumerate(used):
            out[column] += table[codes, k]
    out = out.T
    base = float(read.contributions(x[:1])[0, -1])
    if not _checks(read, x, out, base, seed, margin):
        warnings.warn("pattern TreeSHAP disagreed with the model; native TreeSHAP used instead", RuntimeWarning)
        return None
    return out, base


def native_shap(model, encoded: np.ndarray, threads: int) -> tuple[np.ndarray, float] | None:
    """(contributions per encoded column, base value) from XGBoost's or LightGBM's own TreeSHAP
    (`pred_contribs`): what SHAP's TreeExplainer calls for these models too, without its parse of
    every tree on each call and on `threads` threads, where the model predicts on its own `n_jobs`
    (1 for the small tables' models, fitted two at a time). The values do not depend on the threads.
    None for anything else, or a model that stopped early (the trees used are not all the trees)."""
    name = type(model).__module__.split(".")[0]
    if len(encoded) == 0 or name not in ("xgboost", "lightgbm") or not _uses_every_tree(model):
        return None
    x = np.ascontiguousarray(encoded, dtype=float)
    if name == "xgboost":
        import xgboost

        phi = _threaded_booster(model, threads).predict(xgboost.DMatrix(x, nthread=threads), pred_contribs=True,
                                                         validate_features=False)
    else:
        phi = model.booster_.predict(x, pred_contrib=True, num_threads=threads)
    phi = np.asarray(phi, dtype=float)
    if phi.ndim != 2 or phi.shape[1] != x.shape[1] + 1:
        return None  # more than one output (not a binary classifier)
    return phi[:, :-1], float(phi[0, -1])


def _uses_every_tree(model) -> bool:
    """Whether the model predicts with all its trees (False after early stopping kept fewer)."""
    if type(model).__module__.startswith("xgboost"):
        best = getattr(model, "best_iteration", None)
        return best is None or model.get_booster().num_boosted_rounds() == best + 1
    best = getattr(model, "best_iteration_", None)
    return not best or model.booster_.current_iteration() == best


_THREADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # XGBClassifier -> {threads: booster copy}


def _threaded_booster(model, threads: int):
    """A copy of the model's booster predicting on `threads` threads (its own `nthread` is the
    fitted n_jobs; the model itself is left as it is: it may be serving other requests)."""
    copies = _THREADED.setdefault(model, {})
    if threads not in copies:
        booster = model.get_booster().copy()
        booster.set_param({"nthread": threads})
        copies[threads] = booster
    return copies[threads]


def _compiled(read: _Model | None) -> _Model | None:
    """`read` with each tree's table of contributions for every branch pattern (2^splits rows), or
    None when a tree has more than MAX_TREE_SPLITS splits (deep trees: native TreeSHAP)."""
    if read is None or any(len(tree.splits) > MAX_TREE_SPLITS for tree in read.trees):
        return None
    read.tables = []
    for tree in read.trees:
        nodes = tree.splits
        used = np.unique(tree.columns[nodes])
        every = ((np.arange(1 << len(nodes))[:, None] >> np.arange(len(nodes))) & 1).astype(bool)
        read.tables.append((nodes, used, _shapley(tree, nodes, used, every) if len(nodes) else np.zeros((1, 0))))
    return read


def _shapley(tree: Tree, nodes: np.ndarray, used: np.ndarray, left: np.ndarray) -> np.ndarray:
    """(patterns x used columns) the exact Shapley values of one tree's cover-weighted expected
    value game (what path-dependent TreeSHAP computes), for rows going left at split `nodes[j]`
    as `left[:, j]` says: every coalition of the tree's features evaluated at once."""
    m, p = len(used), len(left)
    coalitions = np.arange(1 << m)
    position = {int(c): i for i, c in enumerate(used)}
    goes = dict(zip(nodes.tolist(), left.T))
    values: dict[int, np.ndarray] = {}
    for node in range(len(tree.left) - 1, -1, -1):  # children first
        lo, hi = int(tree.left[node]), int(tree.right[node])
        if lo < 0:
            values[node] = np.full((1, 1), tree.value[node])
            continue
        known = ((coalitions >> position[int(tree.columns[node])]) & 1).astype(bool)[:, None]
        followed = np.where(goes[node][None, :], values[lo], values[hi])
        averaged = (tree.cover[lo] * values[lo] + tree.cover[hi] * values[hi]) / tree.cover[node]
        values[node] = np.where(known, followed, averaged)
        del values[lo], values[hi]
    f = np.broadcast_to(values[0], (1 << m, p))
    size = np.array([bin(int(c)).count("1") for c in coalitions])
    weight = np.array([factorial(s) * factorial(m - s - 1) / factorial(m) for s in range(m)])
    out = np.empty((p, m))
    for k in range(m):
        without = coalitions[(coalitions >> k) & 1 == 0]
        # summed coalition by coalition, never by BLAS (whose order depends on how many patterns):
        # a row gets the same figures whatever rows it is explained with
        out[:, k] = (weight[size[without]][:, None] * (f[without | (1 << k)] - f[without])).sum(axis=0)
    return out


def _checks(read: _Model, x: np.ndarray, out: np.ndarray, base: float, seed: int,
            margin: np.ndarray | None = None) -> bool:
    """Contributions + base give the margin of every row (`margin`: the model's, when the caller
    already predicted these rows); sampled rows equal native TreeSHAP."""
    margin = read.margin(x) if margin is None else margin
    scale = max(1.0, float(np.abs(margin).max()))
    if not np.allclose(out.sum(axis=1) + base, margin, rtol=0, atol=1e-4 * scale):
        return False
    rows = np.sort(np.random.default_rng(seed).choice(len(x), size=min(CHECKED_ROWS, len(x)), replace=False))
    native = read.contributions(x[rows])[:, :-1]
    return bool(np.allclose(out[rows], native, rtol=1e-4, atol=1e-5))


def _read(model) -> _Model | None:
    """The trees of a binary XGBoost or LightGBM classifier with numeric splits, else None."""
    name = type(model).__module__.split(".")[0]
    try:
        if name == "xgboost":
            return _compiled(_read_xgboost(model))
        if name == "lightgbm":
            return _compiled(_read_lightgbm(model))
    except (KeyError, ValueError, AttributeError, TypeError):  # a model saved in a way not read here
        return None
    return None


def _read_xgboost(model) -> _Model | None:
    booster = model.get_booster()
    if not _uses_every_tree(model):
        return None  # early stopping: the trees used are not all the trees
    learner = json.loads(booster.save_raw("json"))["learner"]
    gbm = learner["gradient_booster"]
    if gbm["name"] != "gbtree" or learner["objective"]["name"] != "binary:logistic":
        return None
    spec = gbm["model"]
    if int(spec["gbtree_model_param"].get("num_parallel_tree", 1)) != 1 or any(int(g) != 0 for g in spec["tree_info"]):
        return None
    trees = []
    for tree in spec["trees"]:
        left, right = np.asarray(tree["left_children"], dtype=np.int64), np.asarray(tree["right_children"], dtype=np.int64)
        if any(int(s) != 0 for s in tree.get("split_type", [])) or np.any((left >= 0) & (left <= np.arange(len(left)))):
            return None  # categorical splits, or nodes not numbered parents first
        conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
        trees.append(Tree(left, right, np.asarray(tree["split_indices"], dtype=np.int64), conditions,
                          np.asarray(tree["default_left"], dtype=bool), np.zeros(len(left), dtype=np.int64),
                          np.asarray(tree["sum_hessian"], dtype=float), conditions.astype(float)))
    return _Model("xgboost", booster, trees)


def _read_lightgbm(model) -> _Model | None:
    booster = model.booster_
    dump = booster.dump_model()
    if dump.get("num_class", 1) != 1 or dump.get("num_tree_per_iteration", 1) != 1:
        return None
    if not str(dump.get("objective", "")).startswith("binary"):
        return None
    if not _uses_every_tree(model):
        return None
    missing_types = {"None": 0, "Zero": 1, "NaN": 2}
    trees = []
    for info in dump["tree_info"]:
        rows: list[list] = []  # preorder: a parent before its children

        def add(node) -> int:
            at = len(rows)
            rows.append(None)
            if "split_feature" not in node:
                rows[at] = [-1, -1, 0, 0.0, False, 0, float(node.get("leaf_count", 0)), float(node["leaf_value"])]
                return at
            if node.get("decision_type", "<=") != "<=":
                raise ValueError("categorical split")
            lo, hi = add(node["left_child"]), add(node["right_child"])
            rows[at] = [lo, hi, int(node["split_feature"]), float(node["threshold"]), bool(node["default_left"]),
                        missing_types[node.get("missing_type", "None")], float(node["internal_count"]), 0.0]
            return at

        add(info["tree_structure"])
        cols = list(zip(*rows))
        trees.append(Tree(np.asarray(cols[0], dtype=np.int64), np.asarray(cols[1], dtype=np.int64),
                          np.asarray(cols[2], dtype=np.int64), np.asarray(cols[3], dtype=float),
                          np.asarray(cols[4], dtype=bool), np.asarray(cols[5], dtype=np.int64),
                          np.asarray(cols[6], dtype=float), np.asarray(cols[7], dtype=float)))
    return _Model("lightgbm", booster, trees)
