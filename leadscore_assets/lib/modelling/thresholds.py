"""Decision thresholds: which scored leads the sales team should contact.

A probability is not a decision. Each source configures a policy that turns scores into a
contact / do-not-contact flag, chosen on validation rows (never test rows):

- max_f1: the threshold with the best F1 on validation rows;
- capacity: the team can contact K leads a week out of `leads_per_week` arrivals, so contact
  the top K / leads_per_week share of leads by score;
- expected_value: maximise the value per lead of contacting, where a converted contact is
  worth `value_per_conversion - cost_per_contact`, a wasted contact costs `cost_per_contact`
  and an uncontacted lead is worth nothing.

max_f1 and expected_value score every candidate threshold on exactly the validation rows passed
in (the model is never refitted) and keep the first best, as scikit-learn's
TunedThresholdClassifierCV(cv="prefit", refit=False) does with the same candidates: the same
threshold (the tests hold the two equal). The counts behind every candidate come from one sort
of the scores, not from one metric call per candidate (TunedThresholdClassifierCV took 2.6 s on
94,000 validation rows; this takes milliseconds). A lead is contacted when its probability >=
threshold, the rule TunedThresholdClassifierCV and FixedThresholdClassifier apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_score, recall_score

POLICIES = ("max_f1", "capacity", "expected_value")
GRADES = np.array(["D", "C", "B", "A"])
# Candidate thresholds are quantiles of the validation scores, so consecutive candidates
# differ by a fixed share of leads contacted (0.5%) whatever the score distribution.
CANDIDATE_QUANTILES = 201


@dataclass
class ThresholdDecision:
    policy: str  # "max_f1" | "capacity" | "expected_value"
    threshold: float  # contact when probability >= threshold
    precision: float
    recall: float
    f1: float
    expected_value: float | None  # per lead; None unless value_per_conversion and cost_per_contact are given
    contacted_share: float
    details: dict = field(default_factory=dict)


def expected_value_per_lead(y_true, y_pred, *, value_per_conversion: float, cost_per_contact: float) -> float:
    """Gain matrix over the confusion matrix, averaged over leads.

    TP: value - cost (contacted and converted), FP: -cost (contacted in vain), FN and TN: 0
    (not contacted, so no cost and, by assumption, no conversion credited to the team).
    """
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    gain = tp * (value_per_conversion - cost_per_contact) - fp * cost_per_contact
    return float(gain / max(len(y_true), 1))


def candidate_thresholds(p: np.ndarray) -> np.ndarray:
    """Quantiles of the scores, the default 0.5 cut (so tuning never loses to it on these rows)
    and a cut just above the highest score (contact no one, capped at 1)."""
    contact_none = min(float(np.nextafter(p.max(), np.inf)), 1.0)
    quantiles = np.quantile(p, np.linspace(0, 1, CANDIDATE_QUANTILES))
    return np.unique(np.r_[quantiles, 0.5, contact_none])


def contacted_counts(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true positives, false positives) of contacting every lead with p >= t, for each t in
    `thresholds`: counted from one sort of the scores."""
    ordered = np.sort(p)
    ordered_positive = np.sort(p[y == 1])
    contacted = len(p) - np.searchsorted(ordered, thresholds, side="left")
    tp = len(ordered_positive) - np.searchsorted(ordered_positive, thresholds, side="left")
    return tp, contacted - tp


def threshold_scores(y: np.ndarray, p: np.ndarray, thresholds: np.ndarray, policy: str, *,
                     value_per_conversion: float | None = None, cost_per_contact: float | None = None) -> np.ndarray:
    """The policy's score of each candidate threshold on these rows, in scikit-learn's own
    arithmetic: F1 as `f1_score` computes it (2 tp / (positives + contacted), 0 when both are 0),
    expected value as `expected_value_per_lead`."""
    tp, fp = contacted_counts(y, p, thresholds)
    if policy == "max_f1":
        denominator = float(y.sum()) + (tp + fp).astype(float)
        return np.divide(2.0 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    gain = tp * (value_per_conversion - cost_per_contact) - fp * cost_per_contact
    return gain / max(len(y), 1)


def choose_threshold(
    y_val: np.ndarray,
    p_val: np.ndarray | None,
    policy: str,
    *,
    capacity_per_week: int | None = None,
    leads_per_week: float | None = None,
    value_per_conversion: float | None = None,
    cost_per_contact: float | None = None,
    classifier=None,
    x_val=None,
) -> ThresholdDecision:
    """Choose the contact threshold for a policy on validation rows.

    Pass either `classifier` (fitted, never refitted here) with its readable `x_val`, or
    precomputed `p_val` alone. If both are given, `p_val` must equal the classifier's
    probabilities on `x_val`.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown threshold policy {policy!r}; expected one of {POLICIES}")
    y_val = np.asarray(y_val).astype(int)
    if classifier is not None:
        if x_val is None:
            raise ValueError("x_val is required with a classifier")
        p_model = np.asarray(classifier.predict_proba(x_val))[:, 1]
        if p_val is not None and not np.allclose(np.asarray(p_val, dtype=float), p_model):
            raise ValueError("p_val differs from the classifier's probabilities on x_val")
        p_val = p_model
    elif p_val is None:
        raise ValueError("give p_val or a classifier with x_val")
    p_val = np.asarray(p_val, dtype=float)
    if len(p_val) != len(y_val):
        raise ValueError(f"y_val has {len(y_val)} rows but the probabilities have {len(p_val)}")
    if len(y_val) == 0 or np.isnan(p_val).any():
        raise ValueError("threshold selection needs validation rows with probabilities (no NaN)")
    if not set(np.unique(y_val)) <= {0, 1}:
        raise ValueError("validation labels must be binary 0/1")
    value_given = value_per_conversion is not None and cost_per_contact is not None
    if policy == "expected_value" and not value_given:
        raise ValueError("expected_value policy needs value_per_conversion and cost_per_contact")
    if value_given and (value_per_conversion < 0 or cost_per_contact < 0):
        raise ValueError("value_per_conversion and cost_per_contact must be >= 0")

    details: dict = {"rows": len(y_val), "positives": int(y_val.sum())}
    if policy == "capacity":
        if capacity_per_week is None or leads_per_week is None or capacity_per_week <= 0 or leads_per_week <= 0:
            raise ValueError("capacity policy needs capacity_per_week > 0 and leads_per_week > 0")
        share = min(1.0, capacity_per_week / leads_per_week)
        # The (1 - share) quantile, rounded up to an observed score, so the top `share` of
        # validation leads score >= threshold (more only when scores tie at the cut).
        threshold = float(np.quantile(p_val, 1 - share, method="higher"))
        details["target_share"] = share
    else:
        if np.ptp(p_val) == 0:
            raise ValueError("validation probabilities are constant; no threshold separates leads")
        if len(np.unique(y_val)) < 2:
            raise ValueError("threshold tuning needs both converted and unconverted validation rows")
        candidates = candidate_thresholds(p_val)
        scores = threshold_scores(y_val, p_val, candidates, policy, value_per_conversion=value_per_conversion,
                                  cost_per_contact=cost_per_contact)
        best = int(np.argmax(scores))  # the first best, as TunedThresholdClassifierCV keeps it
        threshold = float(candidates[best])
        details["tuned_score"] = float(scores[best])
        details["candidate_thresholds"] = len(candidates)

    contacted = (p_val >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_val, contacted, labels=[0, 1]).ravel()
    details.update(tp=int(tp), fp=int(fp), fn=int(fn), tn=int(tn))
    if leads_per_week:
        details["contacts_per_week"] = float(contacted.mean() * leads_per_week)
    expected_value = None
    if value_given:
        gains = {"value_per_conversion": value_per_conversion, "cost_per_contact": cost_per_contact}
        expected_value = expected_value_per_lead(y_val, contacted, **gains)
        details["expected_value_contact_all"] = expected_value_per_lead(y_val, np.ones_like(y_val), **gains)
    return ThresholdDecision(
        policy=policy,
        threshold=threshold,
        precision=float(precision_score(y_val, contacted, zero_division=0)),
        recall=float(recall_score(y_val, contacted, zero_division=0)),
        f1=float(f1_score(y_val, contacted, zero_division=0)),
        expected_value=expected_value,
        contacted_share=float(contacted.mean()),
        details=details,
    )


def grades(p: np.ndarray, threshold: float) -> np.ndarray:
    """Grade leads 'A'..'D' relative to the contact threshold t (fixed rule, not batch-dependent).

    A: p >= min(2t, (1 + t) / 2): at least twice as likely to convert as the marginal
       contacted lead (capped halfway between t and 1 so high thresholds still have an A band);
    B: t <= p < A cut: contacted;
    C: t / 2 <= p < t: not contacted, within a factor two of the threshold (nurture);
    D: p < t / 2.
    A and B are exactly the contacted leads (p >= t). Grades are monotone in p and every
    row gets one; a NaN probability is an error.
    """
    p = np.asarray(p, dtype=float)
    if np.isnan(p).any():
        raise ValueError("cannot grade NaN probabilities")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    cuts = [threshold / 2, threshold, min(2 * threshold, (1 + threshold) / 2)]
    # side="right": a score equal to a cut belongs to the higher band, as in p >= threshold.
    return GRADES[np.searchsorted(cuts, p, side="right")]

