"""The one scorer: a feature frame in, the answer columns out.

`lead_scores` (every lead of a run, batch by batch), the served model (`LeadScorer.score`, after
validation and features: HTTP, daily scoring and Spark all go through it) call the same
`Scorer.score`, so a lead gets one answer whichever way it is scored, by construction rather
than by parity tests over two copies:

    features -> the champion's sklearn pipeline (preprocessing + model + calibration): probability
             -> decile against the build-time cut points, grade A-D and contact flag around the threshold
             [-> E[order value] and E[revenue] for projects with a revenue stage]
             -> SHAP contributions (lib.explain) -> the top reasons up and down (lib.explain.reasons)

Pure logic: the model parts are given (loaded by the caller from MLflow or the served model's
artifacts); nothing here reads files, the warehouse or MLflow (nor imports MLflow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from leadscore_assets.lib.modelling.blend import shared_work
from leadscore_assets.lib.modelling.calibration import uncalibrated
from leadscore_assets.lib.scoring.explain import REASON_COLUMNS, ReasonWording, explain, reasons
from leadscore_assets.lib.modelling.thresholds import grades

REVENUE_COLUMNS = ["expected_order_value", "expected_revenue"]
REASON_JSON_COLUMNS = ["reasons_up", "reasons_down"]  # every reason with its value and contribution
BATCH_ROWS = 50_000  # leads scored and explained at a time by `score_batches`: memory stays bounded


def decile_cut_points(p: np.ndarray) -> list[float]:
    """The lowest score of the top k tenths of `p`, k = 1..9 (descending).

    On the population they come from, `deciles_from_cut_points` gives what `evaluation.deciles`
    gives (tied scores aside: they share a decile here instead of being split by order).
    """
    s = np.sort(np.asarray(p, dtype=float))[::-1]
    n = len(s)
    if n == 0:
        return [1.0] * 9
    return [float(s[max(int(np.floor(k * n / 10)), 1) - 1]) for k in range(1, 10)]


def deciles_from_cut_points(p: np.ndarray, cut_points: list[float]) -> np.ndarray:
    """Decile 1..10 of each score against stored cut points: 1 + how many cuts it falls below."""
    ascending = np.asarray(cut_points, dtype=float)[::-1]
    below = len(ascending) - np.searchsorted(ascending, np.asarray(p, dtype=float), side="right")
    return (1 + below).astype(int)


@dataclass(frozen=True)
class Scorer:
    """A champion's parts and how its answers are made.

    pipeline: the fitted sklearn pipeline as registered (maybe calibrated); its uncalibrated
        preprocessing + model is what SHAP explains (calibration is monotone: same directions).
    features: the feature columns it reads, in order.
    threshold: contact at or above it; grades are placed around it.
    cut_points: the decile cut points of the champion's scores on all leads when it was built, so
        a lead's decile does not depend on which other leads are scored with it.
    background: the explainer's background (encoded rows, or a blend's readable rows).
    seed, wording: the project's seed and reason wording (`ReasonWording.of(config)`).
    revenue_model: E[order value | order], for projects with a revenue stage.
    """

    pipeline: object
    features: list[str]
    threshold: float
    cut_points: list[float]
    background: np.ndarray | pd.DataFrame | None
    seed: int = 0
    wording: ReasonWording | None = None
    revenue_model: object | None = None
    explained: object = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "features", list(self.features))
        object.__setattr__(self, "explained", uncalibrated(self.pipeline))

    @classmethod
    def of(cls, config, features: list[str], pipeline, threshold: float, cut_points: list[float], background,
           revenue_model=None) -> Scorer:
        """The scorer of a project's champion: the seed and reason wording come from its config, so
        every caller words reasons alike."""
        return cls(pipeline=pipeline, features=features, threshold=float(threshold), cut_points=list(cut_points),
                   background=background, seed=config.models.seed, wording=ReasonWording.of(config),
                   revenue_model=revenue_model)

    @property
    def columns(self) -> list[str]:
        """The answer columns `score` gives, in order."""
        revenue = REVENUE_COLUMNS if self.revenue_model is not None else []
        return ["probability", "decile", "grade", "contact", *revenue, *REASON_COLUMNS, *REASON_JSON_COLUMNS]

    def probabilities(self, x: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(x[self.features])[:, 1] if len(x) else np.zeros(0)

    def score(self, x: pd.DataFrame, with_reasons: bool = True) -> pd.DataFrame:
        """The answer columns (`columns`) of the rows of feature frame `x`, on its index.

        Without reasons the reason columns are None (explaining is most of the cost)."""
        x = x[self.features]
        positional = x.reset_index(drop=True)  # explain/reasons align rows by index: one that is unique
        with shared_work():  # a blend's members encode and predict these rows once, for both
            return self._score(x, positional, with_reasons)

    def _score(self, x: pd.DataFrame, positional: pd.DataFrame, with_reasons: bool) -> pd.DataFrame:
        p = self.probabilities(positional)
        out = {
            "probability": p,
            "decile": deciles_from_cut_points(p, self.cut_points),
            "grade": grades(p, self.threshold),
            "contact": p >= self.threshold,
        }
        if self.revenue_model is not None:
            value = self.revenue_model.predict(positional) if len(x) else np.zeros(0)
            out["expected_order_value"] = value
            out["expected_revenue"] = p * value
        if with_reasons:
            why = reasons(explain(self.explained, positional, self.features, background=self.background,
                                  seed=self.seed), positional, wording=self.wording)
            out.update({c: why[c].to_numpy(dtype=object) for c in [*REASON_COLUMNS, *REASON_JSON_COLUMNS]})
        else:
            out.update({c: np.full(len(p), None, dtype=object) for c in [*REASON_COLUMNS, *REASON_JSON_COLUMNS]})
        return pd.DataFrame(out, index=x.index)[self.columns]

    def answer(self, piece: pd.DataFrame, with_reasons: bool = True) -> pd.DataFrame:
        """`piece`'s own columns besides the features (its id), then its answer columns."""
        return pd.concat([piece.drop(columns=self.features), self.score(piece, with_reasons)], axis=1)

    def score_batches(self, batches: Iterable[pd.DataFrame], with_reasons: bool = True,
                      rows: int = BATCH_ROWS, workers: int = 1) -> Iterator[pd.DataFrame]:
        """`answer` over frames as they come (e.g. read from the warehouse batch by batch), each cut
        into pieces of at most `rows`: memory holds `workers` pieces' answers and reasons, never
        all. With `workers` > 1 the pieces are scored in that many processes (lib/scoring/workers.py),
        the answers yielded in the same order."""
        pieces = (batch.iloc[start:start + rows] for batch in batches for start in range(0, max(len(batch), 1), rows))
        if workers > 1:
            from leadscore_assets.lib.scoring.workers import score_in_processes

            yield from score_in_processes(self, pieces, with_reasons, workers)
            return
        for piece in pieces:
            yield self.answer(piece, with_reasons)
