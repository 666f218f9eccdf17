"""Why a lead got its score: SHAP contributions per readable source feature.

A salesperson needs "Job title is ceo (raises the score)", not "job_title_ceo: +0.8". The model
sees encoded columns (one-hot levels, missing indicators, scaled numbers), so SHAP values are
computed on those columns and then summed back onto the source feature each one came from.
SHAP values are additive, so the sum loses nothing: base_value + row sum is still the model's
raw margin (log-odds for boosted trees and logistic regression).

Which source feature an encoded column belongs to is read from the fitted ColumnTransformer:
each transformer's input column list bounds the candidates, a transformer with one input owns
all its outputs, and only a transformer with several inputs needs its output names
(``get_feature_names_out``) matched to those inputs. New transformer kinds (target encoders,
multi-hot tag encoders) therefore need no change here as long as they follow sklearn's naming
conventions (``<input>`` or ``<input>_<level>``).

Cost is measured by the benchmarks, never asserted here (README, `stage_profile.py
web_sessions`: `lead_scores` scores, explains and writes all 471,402 leads of its XGBoost
champion in about 25 s on 2 cores; answers with reasons run at 29,000-32,000 leads/s). It
grows with the trees' count and depth (a deep tuned booster explains at hundreds to a few
thousand leads/s); logistic regression is near free; a random forest's deep trees are exact
but slow.
The scoring asset calls ``explain`` on all rows for small sources and chunk by chunk for large
ones (``max_rows`` samples rows when only a picture of the whole is needed, e.g. for the global
importance plot). ``reasons`` works for whichever rows were explained.

shap 0.51 reads the bracketed ``base_score`` ('[5E-1]') that XGBoost 3 writes correctly, so no
workaround is needed; tests pin this with an additivity check against the XGBoost margin.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from typing import TYPE_CHECKING, get_args

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from leadscore_assets.lib.modelling.blend import LogitBlend, computed_once, known_margin, work_memo
from leadscore_assets.lib.project.config import DatePart
from leadscore_assets.lib.modelling.families import LOG_ODDS, family_of
from leadscore_assets.lib.scoring.tree_shap import native_shap, pattern_shap

if TYPE_CHECKING:  # drawn only by the evaluation: a scoring process never imports matplotlib
    from matplotlib.figure import Figure

MISSING = "missing"
BACKGROUND_ROWS = 500  # rows of background used by the linear explainer
NOISE = 1e-9  # contributions this small are float noise, not a reason
THREADED_FROM_ROWS = 1_000  # native TreeSHAP on more than one thread from this many rows


@dataclass
class Explanation:
    """SHAP contributions summed per source feature.

    contributions: one row per explained row (same index as the rows given to ``explain``),
        one column per source feature; base_value + row sum = the model's raw output.
    base_value: the model's expected raw output over the explainer's background.
    output: what the numbers are in: "log_odds" (boosted trees, logistic regression, dummy) or
        "probability" (random forest, whose trees store class probabilities). Signs mean the same.
    """

    contributions: pd.DataFrame
    base_value: float
    output: str = LOG_ODDS


def explain(
    pipeline: Pipeline,
    x: pd.DataFrame,
    features: list[str],
    background: pd.DataFrame | np.ndarray | None = None,
    max_rows: int | None = None,
    seed: int = 0,
    _memo: dict | None = None,
) -> Explanation:
    """SHAP contributions of each source feature for the rows of ``x``.

    pipeline: fitted ``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])``;
        the estimator may be wrapped as ``CalibratedClassifierCV(FrozenEstimator(estimator))``,
        in which case the uncalibrated model is explained (calibration is monotone, so the
        direction of every reason is unchanged; with cross-validated calibration, the first
        fold's model).
    features: the source feature columns of ``x`` the pipeline was fitted on, in order.
    background: training rows for the linear explainer, which measures contributions against
        their average: readable rows (a DataFrame with the ``features`` columns, encoded here)
        or already encoded rows (array of the preprocessor's output). Without it the explained
        rows are used. At most 500 rows are kept (seeded sample).
    max_rows: explain a seeded random sample of at most this many rows (index order kept).
    A blend's members that hold one fitted preprocessing object encode the rows once between them.
    """
    preprocess, model = _split_pipeline(pipeline)
    features = list(features)
    rows = x[features]
    if max_rows is not None and len(rows) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False))
        rows = rows.iloc[keep]
    if isinstance(model, LogitBlend):  # margins add with the weights, and so do contributions
        # the rows as each fitted preprocessing of the members encoded them (and, inside
        # blend.shared_work, as the probability's prediction already encoded them)
        shared = work_memo() if _memo is None else _memo
        parts = [explain(member, rows, features, background=background, seed=seed, _memo=shared)
                 for member in model.members_]
        contributions = sum(w * part.contributions for w, part in zip(model.weights_, parts))
        return Explanation(contributions=contributions, base_value=float(sum(
            w * part.base_value for w, part in zip(model.weights_, parts))), output=LOG_ODDS)
    owners = source_features(preprocess)
    if unknown := sorted(set(owners) - set(features)):
        raise ValueError(f"the preprocessor reads columns not in features: {unknown}")
    if len(rows):  # the rows as the prediction encodes them (maybe already), made dense once
        as_predicted = computed_once(_memo, [preprocess], lambda: preprocess.transform(rows))
        encoded = computed_once(_memo, [preprocess, _DENSE], lambda: _dense(as_predicted))
    else:  # imputers refuse empty frames; an empty chunk still gets its (empty) explanation
        encoded = np.zeros((0, len(owners)))
    values, base, output = _shap_values(model, encoded, preprocess, background, rows, seed,
                                        known_margin(_memo, model))
    # sum each encoded column onto its source feature: (rows x encoded) @ (encoded x features)
    onto_feature = np.zeros((len(owners), len(features)))
    onto_feature[np.arange(len(owners)), [features.index(owner) for owner in owners]] = 1.0
    contributions = pd.DataFrame(values @ onto_feature, index=rows.index, columns=list(features))
    return Explanation(contributions=contributions, base_value=float(base), output=output)


REASONS_PER_SIDE = 3
# what `reasons` names its columns with the default k: scores, the call list and the served answer
REASON_COLUMNS = [f"reason_{i}_{d}" for d in ("up", "down") for i in range(1, REASONS_PER_SIDE + 1)]


def reasons(explanation: Explanation, x: pd.DataFrame, k: int = REASONS_PER_SIDE,
            wording: ReasonWording | None = None) -> pd.DataFrame:
    """Top ``k`` reasons raising and lowering each explained row's score, as JSON and text.

    A reason is one feature, or one date column whose parts (created_at_weekday, created_at_hour)
    are read together as one reason with their contributions summed; features that ``wording``
    keeps out (``features.not_reasons``) are never offered. ``wording`` defaults to what the
    feature names say (``ReasonWording.from_names``); the served model and ``lead_scores`` must
    pass the same, so that they give the same reasons.

    Columns: reasons_up, reasons_down (JSON lists of {"feature" (what the reason is about: a
    feature or a date column), "features" (the model features it sums), "value", "direction",
    "contribution"}, strongest first) and reason_1_up..reason_k_up, reason_1_down..reason_k_down
    in a seller's words ("Job title is ceo (raises the score)", "Created at: Tuesday, 14:00
    (lowers the score)"; None when the row has fewer reasons). A reason is given only in the
    direction of its own contribution; values are the row's raw values. ``x`` may hold more rows
    than were explained.
    """
    contributions = explanation.contributions
    wording, subject_names, member_lists, member_columns, values, raw_values = _reason_matrix(explanation, x, wording)
    # rows holding the same raw values of a reason share a code: each value is worded once
    value_codes = [_value_codes(raw_values[:, columns]) for columns in member_columns]

    out: dict[str, np.ndarray] = {}
    for direction, sign, verb in (("up", 1.0, "raises"), ("down", -1.0, "lowers")):
        signed = values * sign
        # contributions within float noise (NOISE) of each other tie, and a tie goes to the earlier
        # reason: the same model on another thread count (or machine) gives the same reasons
        strongest = np.argsort(-np.rint(signed / NOISE), axis=1, kind="stable")[:, :k]
        given = np.take_along_axis(signed, strongest, axis=1) > NOISE
        rows, slots = np.nonzero(given)  # row by row, strongest first: every reason given
        subject = strongest[rows, slots]
        rank = np.cumsum(given, axis=1)[rows, slots] - 1  # its place among the row's reasons
        item, text = np.empty(len(rows), dtype=object), np.empty(len(rows), dtype=object)
        for j in np.unique(subject):
            about = np.flatnonzero(subject == j)
            _, first, inverse = np.unique(value_codes[j][rows[about]], return_index=True, return_inverse=True)
            worded = [_worded(wording, subject_names[j], member_lists[j], raw_values[rows[about[i]], member_columns[j]],
                              direction, verb) for i in first]
            item[about] = np.array([w[0] for w in worded], dtype=object)[inverse]
            text[about] = np.array([w[1] for w in worded], dtype=object)[inverse]
        # what json.dumps writes for each rounded contribution (finite: it beat NOISE)
        numbers = np.array(_json_numbers(values[rows, subject]), dtype=object)
        items = np.full((len(signed), k), "", dtype=object)
        texts = np.full((len(signed), k), None, dtype=object)
        items[rows, rank] = item + numbers + "}"
        texts[rows, rank] = text
        given_per_row = given.sum(axis=1)
        joined = items[:, 0] if k else np.full(len(signed), "", dtype=object)
        for i in range(1, k):
            joined = np.where(given_per_row > i, joined + ", " + items[:, i], joined)
        out[f"reasons_{direction}"] = "[" + joined + "]"  # json.dumps(list of the items), byte for byte
        out.update({f"reason_{i + 1}_{direction}": texts[:, i] for i in range(k)})
    columns = ["reasons_up", "reasons_down", *(f"reason_{i}_{d}" for d in ("up", "down") for i in range(1, k + 1))]
    return pd.DataFrame(out, index=contributions.index)[columns]


def _reason_matrix(explanation: Explanation, x: pd.DataFrame, wording: ReasonWording | None):
    """What `reasons` ranks and words: (the wording, the reasons' names, the model features each
    sums, their column positions, each row's contribution per reason, the rows' raw values of the
    explained features as objects)."""
    contributions = explanation.contributions
    raw = _rows_explained(x, contributions)
    names = [str(c) for c in contributions.columns]
    wording = wording if wording is not None else ReasonWording.from_names(names)
    subjects = wording.subjects(names)
    member_lists = [list(members) for members in subjects.values()]
    member_columns = [[names.index(m) for m in members] for members in member_lists]
    # one column per reason: (features x reasons) 0/1, so a date's parts add up to one contribution
    onto_subject = np.zeros((len(names), len(subjects)))
    for j, columns in enumerate(member_columns):
        onto_subject[columns, j] = 1.0
    values = contributions.to_numpy() @ onto_subject
    return (wording, list(subjects), member_lists, member_columns, values,
            raw[contributions.columns].to_numpy(dtype=object))


def _worded(wording: ReasonWording, subject: str, members: list[str], raw: np.ndarray, direction: str,
            verb: str) -> tuple[str, str]:
    """(a reason's JSON up to its contribution, its words) for one row's raw values of it."""
    value, phrase = wording.phrase(subject, dict(zip(members, raw.tolist())))
    item = json.dumps({"feature": subject, "features": members, "value": value, "direction": direction,
                       "contribution": 0.0})
    return item[:-len("0.0}")], f"{phrase} ({verb} the score)"


def _value_codes(raw: np.ndarray) -> np.ndarray:
    """One code per row of `raw` (rows x columns, Python objects): rows with equal values in every
    column share it. Missing values (None, NaN, NaT, NA) are told apart by their type."""
    combined = np.zeros(len(raw), dtype=np.int64)
    for column in raw.T:
        codes, uniques = pd.factorize(column)
        missing = codes < 0
        if missing.any():
            kinds, _ = pd.factorize(np.array([type(v).__name__ for v in column[missing]], dtype=object))
            codes[missing] = len(uniques) + kinds
        combined = pd.factorize(combined * (int(codes.max(initial=0)) + 1) + codes)[0]
    return combined


def _json_numbers(x: np.ndarray) -> list[str]:
    """What `json.dumps` writes for each of `x` rounded to 6 decimals (Python's `round`, exact in
    decimal): the float's repr when finite."""
    if np.isfinite(x).all():
        return list(map(float.__repr__, map(round, x.tolist(), repeat(6))))
    return [float.__repr__(round(v, 6)) if math.isfinite(v) else json.dumps(v) for v in x.tolist()]


# the parts lib/features/frame.py expands a date column into, each a feature named <column>_<part>
DATE_PARTS = tuple(get_args(DatePart))
# the order a date's parts are read in, whatever order the model has them: "Sunday, 08:00"
DATE_READING_ORDER = {p: i for i, p in enumerate(("weekday", "weekend", "day_of_year", "month", "quarter", "hour",
                                                 "days_since"))}
PRESENCE_PREFIX = "has_"  # lib/features/frame.py's flag of whether a personal-data column held a value


@dataclass(frozen=True)
class ReasonWording:
    """What a seller is offered as reasons: which model features are read together as one date,
    which are never offered (they describe the export, not the lead), and how each reads.

    date_of: model feature -> the date column it is a part of (created_at_hour -> created_at).
    not_reasons: model features never offered as a reason.
    """

    date_of: dict[str, str] = field(default_factory=dict)
    not_reasons: frozenset[str] = frozenset()

    @classmethod
    def of(cls, config) -> ReasonWording:
        """From a project's config: its `features.dates` and `features.not_reasons` (a date column
        there covers all its parts, a personal-data column its has_<column> flag)."""
        spec = config.features
        date_of = {f"{column}_{part}": column for column, parts in spec.dates.items() for part in parts}
        hidden = {f for column in spec.not_reasons
                  for f in (column, f"{PRESENCE_PREFIX}{column}", *(f"{column}_{p}" for p in spec.dates.get(column, ())))}
        return cls(date_of=date_of, not_reasons=frozenset(hidden))

    @classmethod
    def from_names(cls, features: list[str]) -> ReasonWording:
        """From the feature names alone: <column>_<date part> is a part of the date <column>
        (lib/features/frame.py's naming); nothing is kept out."""
        date_of = {}
        for feature in features:
            part = next((p for p in DATE_PARTS if feature.endswith(f"_{p}") and len(feature) > len(p) + 1), None)
            if part is not None:
                date_of[feature] = feature[: -len(part) - 1]
        return cls(date_of=date_of)

    def subjects(self, features: list[str]) -> dict[str, tuple[str, ...]]:
        """Reason -> the model features it sums, in the order the features come: a date column
        holds its parts, any other feature itself; features kept out are in none."""
        out: dict[str, list[str]] = {}
        for feature in features:
            if feature in self.not_reasons:
                continue
            out.setdefault(self.date_of.get(feature, feature), []).append(feature)
        return {subject: tuple(members) for subject, members in out.items()}

    def phrase(self, subject: str, values: dict[str, object]) -> tuple[str, str]:
        """(the value as the JSON reason gives it, the reason in a seller's words) for one row."""
        label = _label(subject)
        if len(values) > 1 or next(iter(values)) in self.date_of:  # one date, however many parts
            by_part = {feature.removeprefix(f"{subject}_"): value for feature, value in values.items()}
            parts = [_date_part_words(part, by_part[part])
                     for part in sorted(by_part, key=lambda p: DATE_READING_ORDER.get(p, len(DATE_READING_ORDER)))]
            said = ", ".join(p for p in parts if p is not None)
            return (said or MISSING), (f"{label}: {said}" if said else f"{label} not given")
        [(feature, value)] = values.items()
        readable = readable_value(value)
        if feature.startswith(PRESENCE_PREFIX) and readable in ("0", "1", "true", "false"):
            given = _label(feature.removeprefix(PRESENCE_PREFIX))
            return readable, (f"{given} given" if readable in ("1", "true") else f"No {given.lower()}")
        if readable == MISSING:
            return readable, f"{label} not given"
        return readable, f"{label} is {readable}"


@lru_cache(maxsize=4096)
def _label(column: str) -> str:
    """A column name as words: email_status -> Email status."""
    words = " ".join(column.replace("_", " ").split())
    return words[:1].upper() + words[1:]


def _date_part_words(part: str, value) -> str | None:
    """One part of a date as a seller reads it (Tuesday, 14:00, 12 days ago); None when missing."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if part in ("weekday", "month"):
        return str(value).capitalize()
    if part == "quarter":
        return str(value).upper()
    number = float(value)
    if part == "hour":
        return f"{int(number):02d}:00"
    if part == "day_of_year":
        return f"day {int(number)} of the year"
    if part == "weekend":
        return "at a weekend" if number >= 0.5 else "on a weekday"
    if part == "days_since":
        days = int(round(number))
        return "today" if days == 0 else "1 day ago" if days == 1 else \
            f"{days} days ago" if days > 0 else f"in {-days} day{'s' if days < -1 else ''}"
    return readable_value(value)


def global_importance(explanation: Explanation) -> pd.DataFrame:
    """Mean absolute contribution per source feature, most important first."""
    mean_abs = explanation.contributions.abs().mean(axis=0)
    table = pd.DataFrame({"feature": mean_abs.index.astype(str), "mean_abs_shap": mean_abs.to_numpy(dtype=float)})
    return table.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def summary_plot(explanation: Explanation, x: pd.DataFrame, max_features: int = 15, max_points: int = 2000) -> Figure:
    """Beeswarm-like summary: one dot per row and feature at its contribution.

    Numeric features are coloured by the row's value (low blue, high red); categorical ones
    grey, missing values black. Drawn on a bare Figure, so it needs no display or pyplot state.
    """
    contributions = explanation.contributions
    raw = _rows_explained(x, contributions)
    if len(contributions) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(contributions), size=max_points, replace=False))
        contributions, raw = contributions.iloc[keep], raw.iloc[keep]
    top = global_importance(explanation).feature.head(max_features).tolist()[::-1]  # strongest on top
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 0.45 * len(top) + 1.6))
    ax = fig.add_subplot()
    jitter = np.random.default_rng(1)
    scatter = None
    for pos, feature in enumerate(top):
        shap_values = contributions[feature].to_numpy()
        y = pos + jitter.uniform(-0.3, 0.3, size=len(shap_values))
        column = raw[feature]
        missing = column.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(column) and (~missing).any():
            scaled = column.rank(pct=True).to_numpy()
            scatter = ax.scatter(
                shap_values[~missing], y[~missing], c=scaled[~missing], cmap="coolwarm", vmin=0, vmax=1, s=8, alpha=0.7
            )
        else:
            ax.scatter(shap_values[~missing], y[~missing], color="0.55", s=8, alpha=0.7)
        ax.scatter(shap_values[missing], y[missing], color="black", s=8, alpha=0.7)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_yticks(range(len(top)), top)
    unit = "log-odds" if explanation.output == LOG_ODDS else "probability"
    ax.set(xlabel=f"contribution to the score ({unit}); right raises, left lowers", title="What drives the score")
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, ticks=[0, 1], fraction=0.04)
        bar.ax.set_yticklabels(["low", "high"])
    fig.tight_layout()
    return fig


def source_features(preprocess: ColumnTransformer) -> list[str]:
    """The source feature each output column of a fitted ColumnTransformer comes from."""
    owners: list[str | None] = [None] * sum(s.stop - s.start for s in preprocess.output_indices_.values())
    for name, transformer, columns in preprocess.transformers_:
        out = preprocess.output_indices_.get(name, slice(0, 0))
        if transformer == "drop" or out.stop == out.start:
            continue
        inputs = _inputs_of(preprocess, transformer, columns)
        n_out = out.stop - out.start
        if len(inputs) == 1:
            owners[out] = inputs * n_out
            continue
        names = inputs if transformer == "passthrough" else list(_output_names(transformer, inputs))
        mapped = [_owner_by_name(str(n), inputs) for n in names]
        if None in mapped and len(names) == len(inputs):  # one output per input, renamed
            mapped = list(inputs)
        unmapped = [n for n, m in zip(names, mapped) if m is None]
        if unmapped or len(mapped) != n_out:
            raise ValueError(f"cannot tell which of {inputs} the outputs {unmapped or names} of '{name}' come from")
        owners[out] = mapped
    return [str(o) for o in owners]


def readable_value(value) -> str:
    """A raw feature value as a salesperson would read it: 12 not 12.0, 48213 not 4.821e+04,
    missing for NaN."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if number.is_integer() or abs(number) >= 1000:
            return str(int(round(number)))
        return f"{number:.4g}"
    return str(value)


def _shap_values(model, encoded: np.ndarray, preprocess, background, rows: pd.DataFrame,
                 seed: int, margin: np.ndarray | None = None) -> tuple[np.ndarray, float, str]:
    """(contributions per encoded column, base value, output scale) of one fitted estimator, as
    its family says SHAP explains it (an estimator of no family is tried as trees); `margin`: the
    model's raw output on these rows, when the caller has it."""
    fam = family_of(model)
    if fam is not None and fam.explainer == "prior":
        return np.zeros(encoded.shape), _prior_log_odds(model), LOG_ODDS
    if fam is not None and fam.explainer == "linear":
        return _linear_shap(model, encoded, _encoded_background(preprocess, background, rows, seed))
    return _tree_shap(model, encoded, fam.output if fam is not None else LOG_ODDS, margin)


def _split_pipeline(pipeline: Pipeline):
    """(ColumnTransformer, base estimator), unwrapping calibration and freezing."""
    steps = [step for _, step in pipeline.steps]
    if len(steps) != 2 or not isinstance(steps[0], ColumnTransformer):
        raise TypeError("explain expects Pipeline([('preprocess', ColumnTransformer), ('model', estimator)])")
    model = steps[1]
    if isinstance(model, CalibratedClassifierCV):
        model = model.calibrated_classifiers_[0].estimator
    if isinstance(model, FrozenEstimator):
        model = model.estimator
    return steps[0], model


def _tree_shap(model, encoded: np.ndarray, output: str, margin: np.ndarray | None = None
               ) -> tuple[np.ndarray, float, str]:
    """Exact TreeSHAP: by branch pattern for shallow XGBoost / LightGBM trees (lib/scoring/tree_shap.py, the
    same values ~5-10x faster, checked against the model on every call), the libraries' own TreeSHAP
    on every core this process may use for deeper ones, else SHAP's TreeExplainer."""
    fast = pattern_shap(model, encoded, margin=margin)
    if fast is None:
        fast = native_shap(model, encoded, explain_threads(len(encoded)))
    if fast is not None:
        return fast[0], fast[1], output
    import shap  # heavy import (and import-time warnings), only when a model is explained

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*LightGBM binary classifier.*")
        try:
            explainer = shap.TreeExplainer(model)
        except Exception as error:  # an estimator shap cannot read as trees
            raise TypeError(f"cannot explain a {type(model).__name__}: {error}") from error
        # at least one row: for XGBoost shap sets expected_value (incl. the trees' mean) only on use
        at_least_one = encoded if len(encoded) else np.zeros((1, encoded.shape[1]))
        values = explainer.shap_values(at_least_one, check_additivity=False)
    values = np.asarray(values[-1] if isinstance(values, list) else values, dtype=float)
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
    if values.ndim == 3:  # (rows, columns, classes): keep the positive class
        values = values[:, :, -1]
    values = values[: len(encoded)]
    return values, float(base[-1]), output


def explain_threads(rows: int) -> int:
    """Threads for the libraries' own TreeSHAP: one for a few rows (a served lead: starting threads
    costs more than it saves), else the OpenMP threads this process may use (one inside a scoring
    worker, which limits itself so that two workers share two cores; the cores otherwise)."""
    if rows < THREADED_FROM_ROWS:
        return 1
    from threadpoolctl import threadpool_info

    limits = [int(pool["num_threads"]) for pool in threadpool_info() if pool.get("user_api") == "openmp"]
    return max(1, min(limits) if limits else len(os.sched_getaffinity(0)))


def _linear_shap(model, encoded: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float, str]:
    import shap

    explainer = shap.LinearExplainer(model, background)
    values = np.asarray(explainer.shap_values(encoded), dtype=float)
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype=float))
    return values, float(base[-1]), LOG_ODDS


def _encoded_background(preprocess: ColumnTransformer, background, rows: pd.DataFrame, seed: int) -> np.ndarray:
    if background is None:
        background = rows
    if isinstance(background, pd.DataFrame) and set(rows.columns) <= set(background.columns):
        if len(background) > BACKGROUND_ROWS:
            background = background.sample(n=BACKGROUND_ROWS, random_state=seed)
        if len(background):
            return _dense(preprocess.transform(background[rows.columns]))
        background = np.zeros((0, sum(s.stop - s.start for s in preprocess.output_indices_.values())))
    encoded = _dense(background)
    if len(encoded) == 0:  # nothing to explain and no background: measure from the encoded origin
        return np.zeros((1, encoded.shape[1]))
    if len(encoded) > BACKGROUND_ROWS:
        encoded = encoded[np.sort(np.random.default_rng(seed).choice(len(encoded), BACKGROUND_ROWS, replace=False))]
    return encoded


def _prior_log_odds(model) -> float:
    """The log-odds of a prior-only model's (the dummy's) positive class."""
    prior = float(np.clip(model.class_prior_[-1], 1e-12, 1 - 1e-12))
    return float(np.log(prior / (1 - prior)))


def _owner_by_name(name: str, inputs: list[str]) -> str | None:
    """The input an output name belongs to: itself, <input>_<level> (longest input wins) or
    missingindicator_<input>."""
    if name in inputs:
        return name
    indicator = name.removeprefix("missingindicator_")
    if indicator != name and indicator in inputs:
        return indicator
    prefixed = [c for c in inputs if name.startswith(f"{c}_")]
    return max(prefixed, key=len) if prefixed else None


def _output_names(transformer, inputs: list[str]) -> np.ndarray:
    try:
        return transformer.get_feature_names_out()
    except (TypeError, ValueError, AttributeError):
        return transformer.get_feature_names_out(inputs)


def _inputs_of(preprocess: ColumnTransformer, transformer, columns) -> list[str]:
    """A fitted transformer's input columns: what it saw when fitted, else its column list."""
    if hasattr(transformer, "feature_names_in_"):
        return [str(c) for c in transformer.feature_names_in_]
    if isinstance(columns, (str, int, np.integer)):
        columns = [columns]
    if isinstance(columns, slice) or callable(columns):
        raise TypeError("explain needs ColumnTransformer columns given as lists, not slices or selectors")
    return [str(preprocess.feature_names_in_[c]) if isinstance(c, (int, np.integer)) else str(c) for c in columns]


_DENSE = object()  # the key part that marks an encoding made dense for the explainers in a memo


def _dense(matrix) -> np.ndarray:
    return np.asarray(matrix.toarray() if hasattr(matrix, "toarray") else matrix, dtype=float)


def _rows_explained(x: pd.DataFrame, contributions: pd.DataFrame) -> pd.DataFrame:
    """The raw rows behind the explained rows, in the same order."""
    if x.index.is_unique:
        return x.loc[contributions.index]
    if len(x) == len(contributions) and x.index.equals(contributions.index):
        return x
    raise ValueError("x has a duplicated index; pass the explained rows themselves or reset the index")
