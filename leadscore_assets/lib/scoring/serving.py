"""The served model: one MLflow pyfunc per project that takes raw leads and answers per lead.

What a run registers under `leadscore-<project>` is this model (see `registry.serving_model`).
It carries the pipeline's own steps, called as the pipeline calls them, so a lead scored over
HTTP gets what `<project>.lead_scores` gives it:

    raw records (the source's own columns, as exported)
      -> personal columns not sent added as nulls (`LeadScorer.with_personal_columns`)
      -> lib.validation.validate     (normalise, type checks, row rules; bad leads reported)
      -> lib.features.feature_rows   (build_feature_frame's features; personal data only as presence)
      -> the champion's sklearn pipeline    (preprocessing + model + calibration)
      -> threshold, grade, decile (build-time cut points), reasons (lib.explain)
      [-> E[order value] for projects with a revenue stage]

Its artifacts are explicit files, nothing pickled by the pyfunc itself: `serving.json` (the
resolved project config, feature set, raw column names, threshold, decile cut points, date
references), `background.npz` (the explainer's background rows, already encoded) and the
sklearn models as `mlflow.sklearn` sub-model directories (`sklearn_model`, `revenue_model`),
which `registry.load_version` loads for code that needs the sklearn pipeline itself.

Validation is the pipeline's `validate` (lib/validation), whose shortcuts answer a one-lead or an
all-valid request within serving's budget; it names each invalid lead. Before it,
`RequestTypes` holds each value to its column's JSON type and size (a
request is JSON, not the source: a list, an object, a number for a date, a 5 MB text) and refuses
the lead of a value that breaks its rule.

Batch-dependent steps of the pipeline are pinned at build time so one lead scores as it does
among all leads: `days_since` counts back from the reference date the features were built with
(the newest date of the validated table), and deciles come from the cut points of the
champion's scores on all leads (`decile_cut_points`), which `lead_scores` uses too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import traceback
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR
from pydantic import PrivateAttr

from leadscore_assets.lib.modelling.blend import LogitBlend
from leadscore_assets.lib.project.config import ProjectConfig
from leadscore_assets.lib.scoring.explain import BACKGROUND_ROWS, REASON_COLUMNS
from leadscore_assets.lib.features.frame import ID, SPLIT, FeatureSet, feature_rows
from leadscore_assets.lib.scoring.scorer import Scorer, decile_cut_points
from leadscore_assets.lib.modelling.calibration import uncalibrated
from leadscore_assets.lib.scoring.refusals import Refusal
from leadscore_assets.lib.validation import FILE, LINEAGE, NULL_TOKENS, REASON, ROW, lead_part, validate

SERVING_FILE, BACKGROUND_FILE, BLEND_BACKGROUND_FILE = "serving.json", "background.npz", "background.parquet"
SKLEARN_SUBMODEL, REVENUE_SUBMODEL = "sklearn_model", "revenue_model"
REQUEST = "request"  # the `_source_file` of served rows: reasons read "request row 2 column ..."
ERROR = "error"
PARAM_REASONS = "reasons"
SCORING_SERVER_MODEL_ENV = "__pyfunc_model_path__"  # set by `mlflow models serve` for its app (scoring_server._SERVER_MODEL_PATH)
_logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Building the artifacts
# --------------------------------------------------------------------------------------------


def days_since_columns(config: ProjectConfig) -> list[str]:
    """Date columns a `days_since` feature counts back from a reference date for."""
    return [col for col, parts in config.features.dates.items() if "days_since" in parts]


def date_references(config: ProjectConfig, newest: dict[str, object]) -> dict[str, str]:
    """The reference date `days_since` counts back from, per date column, as `build_feature_frame`
    took it when this run built its features: `features.reference_date`, or the column's newest
    validated value (`newest`, read by the caller)."""
    out = {}
    for col in days_since_columns(config):
        if config.features.reference_date:
            out[col] = pd.Timestamp(config.features.reference_date).isoformat()
            continue
        value = newest.get(col)
        out[col] = None if value is None else pd.Timestamp(value).isoformat()
    return out


class RawColumns(list):
    """The source's own column names, with the DuckDB type `raw_contacts` holds each in (`types`),
    which `signature` reads. A plain list of names otherwise (as `serving.json` stores it)."""

    def __init__(self, names=(), types: dict[str, str] | None = None):
        super().__init__(names)
        self.types = dict(types or {})


def raw_columns(described: list[tuple]) -> RawColumns:
    """The source's own columns from `DESCRIBE raw_contacts` rows (name, type, ...), lineage
    columns left out, with their types."""
    rows = [r[:2] for r in described if r[0] not in LINEAGE]
    return RawColumns([name for name, _ in rows], {name: str(kind) for name, kind in rows})


def write_background(explained, background: pd.DataFrame, directory: Path) -> Path:
    """The explainer's background as the explained pipeline's preprocessor encodes it (what
    explain() would make of it), or, for a blend, whose members each encode for themselves, as
    readable rows in Parquet (types kept)."""
    if isinstance(explained.steps[-1][1], LogitBlend):
        path = directory / BLEND_BACKGROUND_FILE
        background.to_parquet(path)
        return path
    preprocess = explained.steps[0][1]
    encoded = np.asarray(preprocess.transform(background), dtype=float) if len(background) else np.zeros((0, 0))
    np.savez(directory / BACKGROUND_FILE, background=encoded)
    return directory / BACKGROUND_FILE


def read_background(path: str | Path) -> np.ndarray | pd.DataFrame:
    """What `write_background` wrote: encoded rows, or a blend's readable rows."""
    if str(path).endswith(".parquet"):
        return pd.read_parquet(path)
    with np.load(path) as arrays:
        return arrays["background"]


def background_rows(x: pd.DataFrame, split: pd.Series, seed: int) -> pd.DataFrame:
    """The rows `explain` measures contributions against: the training rows, sampled as
    `explain` samples them (the same seed), so reasons served equal the reasons scored."""
    background = x[split == "train"]
    if len(background) > BACKGROUND_ROWS:
        background = background.sample(n=BACKGROUND_ROWS, random_state=seed)
    return background


def write_artifacts(
    directory: Path,
    *,
    config: ProjectConfig,
    fs: FeatureSet,
    raw_cols: list[str],
    pipeline,
    sklearn_model_dir: Path,
    frame: pd.DataFrame,
    threshold: float,
    references: dict[str, str],
    revenue_model_dir: Path | None = None,
    scores: np.ndarray | None = None,
) -> dict[str, str]:
    """Write the serving model's artifacts under `directory`; return the pyfunc `artifacts` map.

    `frame` is the run's features table (every lead, labelled or not): the decile cut points are
    taken from `pipeline`'s scores on all of it (`scores`, when the caller has them already), the
    explainer background from its training rows.
    `config` must be resolved (columns declared or inferred). Personal data never gets here:
    the features frame holds none, and the config only names the columns.
    """
    directory.mkdir(parents=True, exist_ok=True)
    x = frame[fs.columns]
    if scores is not None and len(scores) != len(x):
        raise ValueError(f"{len(scores)} scores for {len(x)} leads")
    p = scores if scores is not None else pipeline.predict_proba(x)[:, 1] if len(x) else np.zeros(0)
    background = background_rows(x, frame[SPLIT], config.models.seed)

    background_file = write_background(uncalibrated(pipeline), background, directory)
    spec = {
        "config": config.model_dump(mode="json"),
        "feature_set": fs.to_frame().astype(object).where(fs.to_frame().notna(), None).to_dict(orient="list"),
        "raw_columns": list(raw_cols),
        "threshold": float(threshold),
        "decile_cut_points": decile_cut_points(p),
        "date_references": references,
        "scored_leads": int(len(p)),
    }
    (directory / SERVING_FILE).write_text(json.dumps(spec, indent=2))
    artifacts = {"serving": str(directory / SERVING_FILE), "background": str(background_file)}
    shutil.copytree(sklearn_model_dir, directory / SKLEARN_SUBMODEL)
    artifacts[SKLEARN_SUBMODEL] = str(directory / SKLEARN_SUBMODEL)
    if revenue_model_dir is not None:
        shutil.copytree(revenue_model_dir, directory / REVENUE_SUBMODEL)
        artifacts[REVENUE_SUBMODEL] = str(directory / REVENUE_SUBMODEL)
    return artifacts


TEXT_TYPES = ("VARCHAR", "TEXT", "STRING")  # DuckDB names of a text column of `raw_contacts`


def signature(raw_cols: list[str], types: dict[str, str] | None = None):
    """Raw columns, all optional, text columns as `string` and the others of any type; one
    parameter `reasons` (default true). `types` (default: `raw_cols.types`, see `RawColumns`)
    gives each column's DuckDB type in `raw_contacts`; without it every column is of any type.

    Typing is the model's own validation, which names the lead, field and rule, so MLflow must
    neither refuse nor change a value before our checks see it. A column `raw_contacts` holds as
    text (every column of a CSV source) is declared `string`: MLflow 3.17 then takes the column
    as it is (the scoring server makes it an `object` column, `astype(object)`, which keeps
    numbers, booleans and nulls as sent, and schema enforcement passes an `object` column
    through whole), where a column of any type is rebuilt value by value (12-30 ms per
    1,000 leads of 19 columns, by load). `LeadScoringModel.predict` rebuilds what the `Any`
    path would have changed (`_as_any_typed`), so answers are the same either way. Columns of
    other types (numbers, dates of a Parquet or SQLite source) stay of any type: a declared
    number or date would make MLflow refuse an unparseable value ("lots") with its own error
    instead of ours. Optional: a
    missing column must be answered by our check ("required column ... is missing"), not by
    MLflow's schema enforcement, whose error repeats the whole request (personal data
    included) in the response. Caveats of `string` (both outside the JSON `dataframe_*`
    formats the service documents): in-process, `pyfunc.predict` refuses a DataFrame whose
    text column has a non-object dtype (an all-integer column); and the `inputs`/`instances`
    JSON formats turn each value of a `string` column into its text (null -> "None", which
    normalisation reads as null again).
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, DataType, ParamSchema, ParamSpec, Schema

    types = getattr(raw_cols, "types", {}) if types is None else types

    def kind(col: str):
        text = str(types.get(col, "")).upper() in TEXT_TYPES
        return DataType.string if text else AnyType()

    return ModelSignature(
        inputs=Schema([ColSpec(kind(c), c, required=False) for c in raw_cols]),
        params=ParamSchema([ParamSpec(PARAM_REASONS, "boolean", True)]),
    )


# --------------------------------------------------------------------------------------------
# Scoring raw leads
# --------------------------------------------------------------------------------------------


class InvalidLeads(ValueError):
    """No lead of a request can be scored; `errors` names each lead, field and rule."""

    def __init__(self, message: str, errors: list[dict]):
        super().__init__(message)
        self.errors = errors


SHOWN_REFUSALS = 3  # leads named in the message of a refused request (its `errors` name the first MAX_ERRORS)
MAX_ERRORS = 20

_COLUMN_FAILURE = re.compile(r"^column '(?P<field>[^']+)': (?P<rule>.*)$", re.S)
_LEAD_PART = re.compile(r"^ \(lead (?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\)")  # `validation.lead_part`
_RULE = re.compile(r"rule '([^']+)'")
_COLUMN = re.compile(r"column '([^']+)'")
# a table failure of `validate` (every lead refused), each its own error: a missing column,
# columns out of order, a column-wide check; they follow each other joined by "; "
_TABLE_FAILURE = re.compile(r"; (?=required column '[^']+' is missing|columns out of order: |column '[^']+' fails )")
_MISSING_COLUMN = re.compile(r"^required column '(?P<field>[^']+)' is missing$")
REFUSED_ALL = "(every lead of the request refused)"
MISSING_RULE = "required column is missing"


def _describe(reason: str, row: int, lead) -> tuple[str, list[dict]]:
    """A quarantine reason ("request row 2 (lead 'L7') column 'x': rule; ...") as the answer gives it:
    "lead 'L7' (request row 2): column 'x': rule", and its parts (lead id, row, field, rule)."""
    prefix = f"{REQUEST} row {row}"
    pieces = [p for p in re.split(rf"(?:^|; ){re.escape(prefix)}(?=[ :])", str(reason)) if p.strip(" ;")]
    parts, texts = [], []
    for piece in pieces:
        piece = _LEAD_PART.sub("", piece, count=1)  # the lead is named once, in front
        text = piece.lstrip(" :").rstrip(" ;").replace("(whole file quarantined)", REFUSED_ALL)
        texts.append(text)
        failed = _COLUMN_FAILURE.match(text)
        if failed:
            parts.append({"lead_id": lead, "row": int(row), "field": failed.group("field"), "rule": failed.group("rule")})
            continue
        for one in _TABLE_FAILURE.split(text):  # table failures: one error each (a missing column names itself)
            one = one.removesuffix(REFUSED_ALL).strip()
            missing = _MISSING_COLUMN.match(one)
            if missing:
                field, rule = missing.group("field"), MISSING_RULE
            else:
                named = _RULE.search(one) or _COLUMN.search(one)
                field, rule = (named.group(1) if named else None), one
            parts.append({"lead_id": lead, "row": int(row), "field": field, "rule": rule})
    who = f"lead {lead!r}" if lead is not None else "lead with no id"
    return f"{who} ({prefix}): " + "; ".join(texts), parts



# --------------------------------------------------------------------------------------------
# What a served request may hold: JSON types per column, and bounds
# --------------------------------------------------------------------------------------------

MAX_VALUE_CHARS = 4_096  # one value's text; longer is free text nobody scores (or an attack)
MAX_LEADS = 10_000  # records per request (a batch of 1,000 is the benchmarked size)

_ISO_DATE = re.compile(  # 2026-03-25, 2026-03-25T20:12, 2026-03-25 20:12:00.000Z, ...+02:00 (ASCII digits)
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?)?"
    r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?")
_DIGITS_AS_9 = bytes.maketrans(b"0123456789", b"9" * 10)
_NULL_TYPES = (type(None), type(pd.NA), type(pd.NaT))
_NUMBER_TYPES = (int, float, np.integer, np.floating)
_BOOL_TYPES = (bool, np.bool_)
_DATE_TYPES = (pd.Timestamp, np.datetime64, date)  # datetime.datetime is a date
_RULES = {  # the rule a value of the wrong JSON type breaks, per declared type: its kind, never the value
    "number": "must be a number or a numeric string",
    "datetime": "must be an ISO 8601 date or datetime string (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SS[Z])",
    "text": "must be a string (or a number)",
    "boolean": "must be true/false, a string or an integer",
}
NOT_SCALAR = "must be a single value (a string, number, boolean or null), not a list or an object"
TOO_LONG = f"is longer than {MAX_VALUE_CHARS:,} characters"


def _kind(spec_type: str | None) -> str | None:
    return {"integer": "number", "float": "number", "string": "text", "text": "text"}.get(spec_type, spec_type)


def _value_rule(value, kind: str | None) -> str | None:
    """The rule one raw value breaks for a column of `kind` (number, datetime, text, boolean; None
    for a column the config does not declare), or None. Nulls pass (nullability is validate's)."""
    if isinstance(value, str):
        if len(value) > MAX_VALUE_CHARS:
            return TOO_LONG
        if kind == "datetime":
            text = value.strip()
            if text and text not in NULL_TOKENS and not _ISO_DATE.fullmatch(text):
                return _RULES["datetime"]
        return None
    if isinstance(value, _NULL_TYPES) or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return None
    if isinstance(value, _BOOL_TYPES):
        return None if kind in (None, "boolean") else _RULES[kind]
    if isinstance(value, _NUMBER_TYPES):
        if kind == "boolean":
            return None if isinstance(value, (int, np.integer)) else _RULES[kind]
        return _RULES[kind] if kind == "datetime" else None
    if isinstance(value, _DATE_TYPES):
        return None if kind in (None, "datetime") else _RULES[kind]
    return NOT_SCALAR  # list, dict, bytes, ...: no column takes one


class RequestTypes:
    """The JSON types a served request may hold, per column of the project config, and its bounds.

    Batch scoring reads a source whose types the source itself fixes (a CSV export is text);
    a request is JSON, so a value may be of any JSON type, and `validate` would make something of
    most of them (a list as missing, 12345 as a 1970 date). Before a request reaches `validate` (which then
    sees only the values a source could hold), each value is held to its column's declared type:

    - number (integer, float): a JSON number or a string (validate parses it: "12" is 12, "lots"
      is refused with its own rule), as a CSV export sends numbers as text;
    - datetime: an ISO 8601 date or datetime string (2026-03-25, 2026-03-25T20:12:00.000Z,
      2026-03-25 20:12:00+02:00); never a number (it would be read as seconds since 1970);
      in-process, a typed source's datetime objects too;
    - text (string): a string, or a number (an id a typed source holds as a number, such as a
      CRM's integer ids; it is read as its text, as the batch pipeline reads it); not a boolean;
    - boolean: true/false, a string (validate takes true/false, yes/no, y/n, t/f, 1/0) or an
      integer (1/0);
    - every column, declared or not: no list or object, and no text longer than
      `MAX_VALUE_CHARS`; null is always allowed here (validate checks nullability).

    A value that breaks its rule refuses its lead (row), naming the field and the rule, never
    the value; the other leads of the request are scored.
    """

    def __init__(self, config: ProjectConfig):
        self.config = config
        self.kinds = {col: _kind(spec.type) for col, spec in config.columns.items()}
        self._names: dict[tuple, dict[str, str]] = {}

    def _canonical(self, columns: tuple) -> dict[str, str]:
        if columns not in self._names:
            try:
                names = self.config.naming.columns([c for c in columns if c not in LINEAGE])
            except ValueError:  # colliding names: validate refuses the request; the raw names here
                names = {}
            if len(self._names) >= 64:
                self._names.clear()
            self._names[columns] = names
        return self._names[columns]

    def failures(self, raw: pd.DataFrame) -> dict[int, list[tuple[str, str]]]:
        """(field, rule) of each value of `raw` (a positional index) that breaks its rule, by
        request row (1-based). Column by column: a column of strings only (what a JSON request of
        text holds) costs a type scan and a length scan."""
        names = self._canonical(tuple(raw.columns))
        out: dict[int, list[tuple[str, str]]] = {}
        for source in raw.columns:
            if source in LINEAGE:
                continue
            col = names.get(source, source)
            kind = self.kinds.get(col)
            values = raw[source].to_numpy()
            if values.dtype != object:  # a typed column (in-process, or an `Any` column MLflow rebuilt)
                letter = values.dtype.kind
                if letter in "iuf" and kind in (None, "number", "text") or letter == "b" and kind in (None, "boolean") \
                        or letter == "M" and kind in (None, "datetime") or letter in "iu" and kind == "boolean":
                    continue
                if letter == "f" and np.isnan(values).all():
                    continue
                values = values.astype(object)
            types = set(map(type, values))
            if types <= {str}:
                if max(map(len, values), default=0) <= MAX_VALUE_CHARS and (
                        kind != "datetime" or _all_iso_or_null(values)):
                    continue
            for i in np.flatnonzero([_value_rule(v, kind) is not None for v in values]):
                out.setdefault(int(i) + 1, []).append((col, _value_rule(values[i], kind)))
        return dict(sorted(out.items()))


def _iso_or_null(text: str) -> bool:
    text = text.strip()
    return not text or text in NULL_TOKENS or _ISO_DATE.fullmatch(text) is not None


def _all_iso_or_null(texts: np.ndarray) -> bool:
    """Whether every text is an ISO date (or null), checking each distinct shape once: digits
    made 9s, 1,000 datetimes of an export are one or two shapes (0.1 ms instead of 1 ms)."""
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1:  # a text holding a line break: one by one
        return all(map(_iso_or_null, texts))
    shapes = set(joined.encode("utf-8", "surrogatepass").translate(_DIGITS_AS_9).split(b"\n"))
    return all(_iso_or_null(shape.decode("utf-8", "surrogatepass")) for shape in shapes)


class ServingConfig(ProjectConfig):
    """The resolved project config as the served model holds it: its derived column lists are
    computed once (each call parses the label rules with sqlglot, ~5 ms, on every request)."""

    _derived: dict = PrivateAttr(default_factory=dict)

    def label_columns(self, known=()):
        if known == () or known is None:
            key = ("label_columns", known is None)
            if key not in self._derived:
                self._derived[key] = super().label_columns(known)
            return set(self._derived[key])
        return super().label_columns(known)

    def feature_columns(self) -> list[str]:
        if "feature_columns" not in self._derived:
            self._derived["feature_columns"] = super().feature_columns()
        return list(self._derived["feature_columns"])


def _as_any_typed(raw: pd.DataFrame) -> pd.DataFrame:
    """Each column as MLflow's enforcement of an `Any` column gives it: rebuilt from the list of
    its values (`pd.Series([v for v in column])`, which infers a dtype: floats with nulls become
    `float64`, ...). A `string`-typed column is passed through as sent instead (see `signature`),
    so it is rebuilt here, unless it already holds only text and nulls, where a rebuild changes
    nothing. Rebuilding a column rebuilt before gives it back unchanged."""
    out = {}
    for col in raw.columns:
        values = raw[col]
        if values.dtype == object and pd.api.types.infer_dtype(values, skipna=True) == "string":
            continue
        out[col] = pd.Series(list(values), index=raw.index, name=col)
    return raw.assign(**out) if out else raw


def _restore_dtypes(raw: pd.DataFrame) -> pd.DataFrame:
    """Nullable integer and boolean columns as a typed source holds them (DuckDB gives `Int64`).

    MLflow's schema enforcement rebuilds each column of an `Any` input from a list of its values,
    and a list of integers with missing values becomes an `object` column, which the pipeline's
    text normalisation would take for text. Text columns are left alone (the first string stops
    the scan)."""
    out = {}
    for col in raw.columns:
        if raw[col].dtype != object or pd.api.types.infer_dtype(raw[col], skipna=True) == "string":
            continue  # text (the first string would stop the scan below)
        values = raw[col].dropna()
        if values.empty:
            continue
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
            out[col] = raw[col].astype("Int64")
        elif all(isinstance(v, (bool, np.bool_)) for v in values):
            out[col] = raw[col].astype("boolean")
    return raw.assign(**out) if out else raw


class Answers(pd.DataFrame):
    """The answer frame, whose `to_dict(orient="records")` builds the records from each column's
    `tolist()` (Python scalars, as pandas gives them). MLflow's scoring server writes predictions
    as `to_dict(orient="records")`, which pandas builds value by value (~4 ms for 1,000 answers);
    any other use is pandas' own."""

    def to_dict(self, orient="dict", *args, **kwargs):
        if orient != "records" or args or kwargs or not self.columns.is_unique:
            return super().to_dict(orient, *args, **kwargs)
        names = [str(c) for c in self.columns]
        return [dict(zip(names, row)) for row in zip(*(self[c].tolist() for c in self.columns))]


@dataclass
class LeadScorer:
    """Scores raw leads the way the pipeline scores them. Built by `load`, used by the pyfunc."""

    config: ProjectConfig
    fs: FeatureSet
    raw_columns: list[str]
    pipeline: object
    threshold: float
    cut_points: list[float]
    references: dict[str, str]
    background: np.ndarray | pd.DataFrame
    revenue_model: object | None = None
    scorer: Scorer | None = None  # the one scorer over these parts (`lib.scoring`), built by `load`

    @classmethod
    def load(cls, serving_file: str | Path, background_file: str | Path, sklearn_model: str | Path,
             revenue_model: str | Path | None = None) -> "LeadScorer":
        spec = json.loads(Path(serving_file).read_text())
        fs_frame = pd.DataFrame(spec["feature_set"])
        background = read_background(background_file)
        config, fs = ServingConfig.model_validate(spec["config"]), FeatureSet.from_frame(fs_frame)
        pipeline = mlflow.sklearn.load_model(str(sklearn_model))
        revenue = mlflow.sklearn.load_model(str(revenue_model)) if revenue_model else None
        return cls(
            config=config,
            fs=fs,
            raw_columns=spec["raw_columns"],
            pipeline=pipeline,
            threshold=float(spec["threshold"]),
            cut_points=spec["decile_cut_points"],
            references=spec["date_references"],
            background=background,
            revenue_model=revenue,
            scorer=Scorer.of(config, fs.columns, pipeline, float(spec["threshold"]), spec["decile_cut_points"],
                             background, revenue),
        )

    @property
    def output_columns(self) -> list[str]:
        revenue = ["expected_order_value", "expected_revenue"] if self.config.revenue else []
        return [ID, "probability", "decile", "grade", "contact", *revenue, *REASON_COLUMNS, ERROR]

    def _ids(self, raw: pd.DataFrame) -> pd.Series:
        """Each record's lead id as the pipeline reads it (trimmed text), or None."""
        names = self.config.naming.columns(list(raw.columns))
        source = next((c for c, n in names.items() if n == self.config.id_column), None)
        if source is None:
            return pd.Series([None] * len(raw), index=raw.index, dtype=object)
        ids = raw[source].astype(object)
        text = ids.where(ids.isna(), ids.astype(str).str.strip())
        return text.where(text.notna() & (text != ""), None)

    def features(self, valid: pd.DataFrame) -> pd.DataFrame:
        """The feature rows of validated leads (id and `fs` columns), as `build_feature_frame` builds
        them for the run: its `feature_rows`, with the run's feature set and reference dates (not
        this batch's newest date), without the labels and splits only training needs."""
        references = {c: pd.Timestamp(r) for c, r in self.references.items() if r is not None}
        frame, _ = feature_rows(valid, self.config, self.fs, references)
        # as the run's models read them: out of the `features` table, where DuckDB gives a missing text
        # value back as None (not NaN), and the fitted encoders treat the two differently
        for col in self.fs.columns:
            values = frame[col].to_numpy()
            if values.dtype == object and pd.isna(values).any():
                frame[col] = np.where(pd.isna(values), None, values)
        return frame

    def __post_init__(self):
        self.types = RequestTypes(self.config)
        config = self.config
        self.droppable = [c for c in config.personal_data if c in config.columns and c != config.id_column]
        self._layouts: dict[tuple, list[tuple[str, bool]] | None] = {}

    def _layout(self, columns: tuple) -> list[tuple[str, bool]] | None:
        """(name, added) of each column of a request whose columns are `columns` once the personal
        columns it does not send are added, each where `validate` expects it (before the next
        configured column sent: `ordered_columns` holds), or None when none is to be added."""
        if columns in self._layouts:
            return self._layouts[columns]
        config, naming = self.config, self.config.naming
        try:
            names = naming.columns([c for c in columns if c not in LINEAGE])
        except ValueError:  # colliding names: validate refuses the request
            names = None
        sent = set((names or {}).values())
        absent = [] if names is None else [
            c for c in self.droppable if c not in sent and c not in columns and naming.canonical(c) == c]
        layout = None
        if absent:
            at = {c: i for i, c in enumerate(config.columns)}
            layout, pending = [], list(absent)  # in config order
            for source in columns:
                place = at.get(names.get(source, source), len(at)) if source not in LINEAGE else len(at)
                while pending and at[pending[0]] < place:
                    layout.append((pending.pop(0), True))
                layout.append((source, False))
            layout += [(c, True) for c in pending]
        if len(self._layouts) >= 64:  # requests may send any columns: keep the cache small
            self._layouts.clear()
        self._layouts[columns] = layout
        return layout

    def with_personal_columns(self, raw: pd.DataFrame) -> pd.DataFrame:
        """`raw` with each personal-data column (`personal_data`, the id aside) it does not send
        added, null for every lead: the model reads personal data only as presence
        (`has_<column>`), so a lead sent without, say, its phone is scored as a lead whose phone
        is empty (`has_phone` = 0), which is what `lead_scores` gives a lead exported without
        one. Sent, personal columns are read as in the batch (same answer to 1e-9)."""
        layout = self._layout(tuple(raw.columns))
        if layout is None:
            return raw
        empty = np.full(len(raw), None, dtype=object)
        return pd.DataFrame({name: (empty if added else raw[name]) for name, added in layout}, index=raw.index)

    def _paths(self, raw: pd.DataFrame, rows: np.ndarray):
        """(feature frame, request rows scored, messages, errors, ids) of a request, through
        `validate` (the pipeline's own, whose shortcuts take a one-lead or an all-valid request)
        and `feature_rows`. `rows`: the request row (1-based) of each record."""
        lined = _restore_dtypes(raw).assign(**{ROW: rows, FILE: REQUEST})
        try:
            result = validate(lined, self.config)
        except ValueError as err:  # columns the naming cannot map, a broken rule: the request is refused
            raise InvalidLeads(str(err), []) from err
        ids = self._ids(raw) if len(result.quarantined) else None  # only errors name leads
        at = {int(r): i for i, r in enumerate(rows)}
        messages, errors = {}, []
        for row, reason in zip(result.quarantined[ROW].astype(int), result.quarantined[REASON]):
            messages[int(row)], parts = _describe(reason, int(row), ids.iloc[at[int(row)]])
            errors += parts
        if result.valid.empty:
            return None, np.array([], dtype=int), messages, errors, ids
        return self.features(result.valid), result.valid[ROW].to_numpy(), messages, errors, ids

    def _refusals(self, refused: dict[int, list[tuple[str, str]]], ids: pd.Series):
        """(messages, errors) of the leads `RequestTypes` refused, worded as validate words its
        reasons. The lead is named by its id unless the id itself was refused (or is personal data,
        or not an id: see `validation.lead_part`)."""
        config, messages, errors = self.config, {}, []
        for row, broken in refused.items():
            id_refused = any(field == config.id_column for field, _ in broken)
            lead = None if id_refused else ids.iloc[row - 1]
            if id_refused:
                ids.iloc[row - 1] = None  # never repeated in the answer
            named = "" if lead is None or config.id_column in set(config.personal_data) else lead_part(lead)
            reason = "; ".join(f"{REQUEST} row {row}{named} column '{field}': {rule}" for field, rule in broken)
            messages[row], parts = _describe(reason, row, lead)
            errors += parts
        return messages, errors

    def score(self, raw: pd.DataFrame, with_reasons: bool = True) -> pd.DataFrame:
        """One answer row per input record, in order: scores for valid leads, `error` for the others.

        Raises InvalidLeads when no record can be scored (every lead invalid, a required column
        missing, no records, or more than `MAX_LEADS`), naming each lead, field and rule (the
        first `SHOWN_REFUSALS` leads in its message; each missing column its own error). A
        personal-data column is not required: one not sent is null for every lead
        (`with_personal_columns`).

        A value of a type no source would give, or too long, refuses its lead before validation
        (`RequestTypes`); the request's other leads are scored as if it had not held that one.
        """
        lineage = [c for c in raw.columns if c in LINEAGE]
        raw = raw.drop(columns=lineage) if lineage else raw
        raw = raw if raw.index.equals(pd.RangeIndex(len(raw))) else raw.reset_index(drop=True)
        if raw.empty:
            raise InvalidLeads("the request holds no lead records", [])
        if len(raw) > MAX_LEADS:
            raise InvalidLeads(f"the request holds {len(raw):,} lead records; at most {MAX_LEADS:,} are "
                               "scored per request", [])
        raw = self.with_personal_columns(raw)  # personal columns not sent: null (they count as absent)
        refused = self.types.failures(raw)  # values of a type no source gives: their leads are refused here
        rows = np.arange(1, len(raw) + 1)
        if refused:
            ids = self._ids(raw)
            messages, errors = self._refusals(refused, ids)
            rows = rows[~np.isin(rows, list(refused))]
            if len(rows):
                frame, at, more, more_errors, _ = self._paths(raw.iloc[rows - 1].reset_index(drop=True), rows)
                messages = dict(sorted({**messages, **more}.items()))
                errors = sorted(errors + more_errors, key=lambda e: e["row"])
            else:
                frame, at = None, rows
        else:
            frame, at, messages, errors, ids = self._paths(raw, rows)
        if frame is None:
            shown = "; ".join(list(messages.values())[:SHOWN_REFUSALS])
            more = f" (and {len(messages) - SHOWN_REFUSALS} more)" if len(messages) > SHOWN_REFUSALS else ""
            raise InvalidLeads(f"no lead of the request can be scored: {shown}{more}", errors)
        scorer = self.scorer or Scorer.of(self.config, self.fs.columns, self.pipeline, self.threshold, self.cut_points,
                                          self.background, self.revenue_model)
        answers = scorer.score(frame.set_axis(at), with_reasons=with_reasons)  # indexed by request row
        p = answers.probability.to_numpy()
        scored = {ID: frame[ID].to_numpy(dtype=object),
                  **{c: answers[c].to_numpy() for c in self.output_columns if c in answers.columns}}
        scored[ERROR] = np.full(len(p), None, dtype=object)
        if not messages:  # every lead scored: typed columns
            return Answers({c: scored[c] for c in self.output_columns})
        scored = pd.DataFrame(scored, index=at)
        # otherwise one row per record, null (not NaN: NaN is not JSON) where a lead was not scored
        out = pd.DataFrame(index=np.arange(1, len(raw) + 1), columns=self.output_columns, dtype=object)
        out.loc[at, :] = scored[self.output_columns].astype(object).to_numpy()
        out[ID] = out[ID].where(out[ID].notna(), pd.Series(ids.to_numpy(), index=out.index))
        for row, text in messages.items():
            out.loc[row, ERROR] = text
        return Answers(out.astype(object).where(out.notna(), None).reset_index(drop=True))


# --------------------------------------------------------------------------------------------
# The pyfunc
# --------------------------------------------------------------------------------------------



class InvalidRequest(Refusal):
    """A 400 answer naming each refused lead, field and rule (the first `MAX_ERRORS` leads in
    `errors`), and nothing of the request."""

    def __init__(self, message: str, errors: list[dict]):
        super().__init__(message, errors[:MAX_ERRORS])


class ScoringFailure(Refusal):
    """A 500 answer for an error of the model's own (a bug, not the request): its kind only.
    MLflow would answer it with the traceback and the exception's text, which may quote values."""

    def __init__(self, err: Exception):
        super().__init__(f"the model could not score the request ({type(err).__name__}); the server log "
                         "has the traceback", error_code=INTERNAL_ERROR)


class LeadScoringModel(mlflow.pyfunc.PythonModel):
    """The project's champion as a pyfunc: raw lead records in, one answer per lead out.

    predict(model_input, params={"reasons": bool}) returns the columns of
    `LeadScorer.output_columns`: lead_id, probability, decile, grade, contact, [expected order
    value and revenue], reason_1_up..reason_3_down, error. A lead that fails validation gets
    its `error` (lead id, field and rule) and null scores; a request no lead of which can be
    scored raises `InvalidRequest` (HTTP 400), an error of the model's own `ScoringFailure`
    (HTTP 500, the exception's kind only). Values are held to their column's JSON type and
    bounds first (`RequestTypes`). Loaded by MLflow's scoring server (`mlflow models serve`), it
    installs `leadscore_assets.serve`'s guard around the server's body parsing.
    """

    def load_context(self, context) -> None:
        if os.environ.get(SCORING_SERVER_MODEL_ENV):  # inside `mlflow models serve`: bound and guard its parsing
            from leadscore_assets.serve import install_scoring_server_guard

            install_scoring_server_guard()
        a = context.artifacts
        self.scorer = LeadScorer.load(a["serving"], a["background"], a[SKLEARN_SUBMODEL], a.get(REVENUE_SUBMODEL))

    def predict(self, context, model_input, params=None):
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        model_input = _as_any_typed(model_input)  # `string` columns as an `Any` column reaches us (see `signature`)
        with_reasons = (params or {}).get(PARAM_REASONS, True)
        if isinstance(with_reasons, str):
            with_reasons = with_reasons.strip().lower() not in ("false", "0", "no")
        try:
            return self.scorer.score(model_input, with_reasons=bool(with_reasons))
        except InvalidLeads as err:
            raise InvalidRequest(str(err), err.errors) from None
        except Exception as err:  # a bug: logged here (frames, not the message, which may quote values)
            _logger.error("scoring failed: %s\n%s", type(err).__name__, "".join(traceback.format_tb(err.__traceback__)))
            raise ScoringFailure(err) from None


# models-from-code: the file MLflow stores with the model and runs to build it at load time
MODEL_CODE = '''"""The served lead-scoring model: defined in leadscore_assets.lib.scoring.serving."""
from mlflow.models import set_model

from leadscore_assets.lib.scoring.serving import LeadScoringModel

set_model(LeadScoringModel())
'''
