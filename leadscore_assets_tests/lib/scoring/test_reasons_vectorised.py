"""`reasons` words every lead's reasons column-wise (each distinct value once, the JSON joined in
numpy): held equal, byte for byte, to the row-by-row loop it replaced, kept here as the reference."""

import json

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.lib.scoring.explain import NOISE, Explanation, ReasonWording, _reason_matrix, reasons


def reasons_row_by_row(explanation, x, k=3, wording=None):
    """The loop `reasons` was before it was vectorised (2026-12-07), verbatim but for its cache
    bound, over the same ranked matrix (`_reason_matrix`, unchanged by the vectorising): one row,
    one reason at a time, each distinct (reason, values, direction) worded once."""
    contributions = explanation.contributions
    wording, subject_names, member_lists, member_columns, values, raw_values = _reason_matrix(explanation, x, wording)
    said = {}

    def words(j, row_pos, direction, verb):
        columns = member_columns[j]
        values_ = (raw_values[row_pos, columns[0]],) if len(columns) == 1 else \
            tuple(raw_values[row_pos, c] for c in columns)
        found = said.get((j, values_, direction))
        if found is None:
            value, phrase = wording.phrase(subject_names[j], dict(zip(member_lists[j], values_)))
            item = json.dumps({"feature": subject_names[j], "features": member_lists[j], "value": value,
                               "direction": direction, "contribution": 0.0})
            found = said[j, values_, direction] = (item[:-len("0.0}")], f"{phrase} ({verb} the score)")
        return found

    out = {}
    for direction, sign, verb in (("up", 1.0, "raises"), ("down", -1.0, "lowers")):
        signed = values * sign
        strongest = np.argsort(-np.rint(signed / NOISE), axis=1, kind="stable")[:, :k]
        as_json, as_text = [], [[] for _ in range(k)]
        for row_pos, columns in enumerate(strongest):
            items, texts = [], []
            for j in columns:
                if not signed[row_pos, j] > NOISE:
                    continue
                item, text = words(j, row_pos, direction, verb)
                number = round(float(values[row_pos, j]), 6)
                items.append(f"{item}{float.__repr__(number) if np.isfinite(number) else json.dumps(number)}}}")
                texts.append(text)
            as_json.append(f"[{', '.join(items)}]")
            for i in range(k):
                as_text[i].append(texts[i] if i < len(texts) else None)
        out[f"reasons_{direction}"] = as_json
        out.update({f"reason_{i + 1}_{direction}": as_text[i] for i in range(k)})
    columns = ["reasons_up", "reasons_down", *(f"reason_{i}_{d}" for d in ("up", "down") for i in range(1, k + 1))]
    return pd.DataFrame(out, index=contributions.index)[columns]


def leads(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw rows as lead_scores meets them (text with None and NaN, numbers with NaN, a date in two parts, a
    presence flag, ints) and contributions with exact ties, values within NOISE of 0, both signs,
    tiny and large magnitudes."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({
        "job_title": rng.choice(np.array(["ceo", "intern", "cto", None, np.nan], dtype=object), n),
        "company_size": np.where(rng.random(n) < 0.2, np.nan, np.round(rng.lognormal(4, 1.5, n))),
        "created_at_weekday": rng.choice(np.array(["monday", "tuesday", None], dtype=object), n),
        "created_at_hour": np.where(rng.random(n) < 0.3, np.nan, rng.integers(0, 24, n).astype(float)),
        "has_phone": rng.integers(0, 2, n).astype(float),
        "page_views": rng.poisson(3, n),
        "score": rng.normal(size=n) * 1e3,
    }, index=rng.permutation(np.arange(100, 100 + n)))
    c = rng.normal(size=(n, x.shape[1])) * rng.choice([1e-12, 1e-3, 0.3, 40.0], size=(n, x.shape[1]))
    c[rng.random(c.shape) < 0.15] = 0.0
    tied = rng.random(n) < 0.2
    c[tied, 1] = c[tied, 0]  # exact ties: the earlier feature wins
    c[rng.random(c.shape) < 0.05] = NOISE * 0.9  # too small to be a reason, yet ranked level with ...
    c[rng.random(c.shape) < 0.05] = NOISE * 1.3  # ... one just big enough: a later reason moves up a place
    return x, pd.DataFrame(c, index=x.index, columns=x.columns)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_reasons_equal_the_row_by_row_loop_byte_for_byte(k, seed):
    x, contributions = leads(3000, seed)
    explanation = Explanation(contributions, base_value=0.0)
    for wording in (None, ReasonWording(date_of={"created_at_weekday": "created_at", "created_at_hour": "created_at"},
                                        not_reasons=frozenset({"score"}))):
        got, want = reasons(explanation, x, k=k, wording=wording), reasons_row_by_row(explanation, x, k=k, wording=wording)
        pd.testing.assert_frame_equal(got, want)
        assert got.reasons_up.map(json.loads).map(len).max() == k  # the cases reach every slot


def test_a_sample_of_rows_and_no_rows_read_as_before():
    x, contributions = leads(500, 2)
    sample = Explanation(contributions.iloc[::7], base_value=0.0)
    pd.testing.assert_frame_equal(reasons(sample, x), reasons_row_by_row(sample, x))
    none = Explanation(contributions.iloc[:0], base_value=0.0)
    got = reasons(none, x)
    assert len(got) == 0 and list(got.columns) == list(reasons_row_by_row(none, x).columns)
