"""Personal data found in the values: contact details and names flagged, look-alikes left alone."""

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.lib.personal_data import RESULT_COLUMNS, contains_personal_data, detect_personal_columns

N = 400
FIRST = ["Jane", "John", "Maria", "Ahmed", "Chloé", "Liam", "Sofia", "Noah", "Emma", "Lucas", "Mia", "Hugo",
         "Olivia", "Yusuf", "Ines", "Mateo", "Anna", "Leo", "Zoe", "Ivan"]
LAST = ["Doe", "Smith", "García", "Khan", "Dubois", "O'Neil", "Müller", "Rossi", "Novak", "Jensen", "Silva",
        "Tanaka", "Kowalski", "Martin", "Schmidt", "Moreau", "Costa", "Nguyen", "Brown", "Lopez"]


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    people = rng.permutation([(f, name) for f in FIRST for name in LAST])  # 400 distinct people
    first, last = people[:, 0], people[:, 1]
    companies = [f"{w} {s}" for w, s in zip(
        rng.choice(["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Cyberdyne",
                    "Soylent", "Vandelay", "Wonka", "Oscorp", "Massive", "Dunder"], N),
        rng.choice(["Inc", "Ltd", "GmbH", "LLC", "Corp", "SA", "Group", "Holdings", "AG", "Plc"], N))]
    return pd.DataFrame({
        "lead_ref": [f"L{i:05d}" for i in range(N)],
        "linkedin": [f"https://www.linkedin.com/in/{f.lower()}-{i:06x}" for i, f in enumerate(first)],
        "contact": [f"{f.lower()}.{i}@example.com" if i % 5 else None for i, f in enumerate(first)],  # blanks skipped
        "mobile": [f"+33 6 {rng.integers(10, 99)} {rng.integers(10, 99)} {rng.integers(10, 99)} {i % 100:02d}"
                   if i % 2 else f"({rng.integers(200, 999)}) 555-{i:04d}" for i in range(N)],
        "full_name": [f"{f} {name}" for f, name in zip(first, last)],
        "job_title": rng.choice(["Sales Manager", "Chief Executive Officer", "Software Engineer", "Head Of Growth",
                                 "Marketing Director", "Account Executive", "CTO", "Founder"], N),
        "industry": rng.choice(["Financial Services", "Computer Software", "Retail", "Health Care",
                                "Real Estate", "Higher Education"], N),
        "company": companies,
        "city": rng.choice(["New York", "San Francisco", "Los Angeles", "Paris", "Buenos Aires", "Hong Kong",
                            "Mexico City", "Cape Town"], N),
        "revenue": rng.normal(1e6, 2e5, N),  # numbers stored as numbers
        "employees": rng.integers(1_000_000, 9_999_999, N),  # 7-digit integers: not phones
        "employees_text": [str(v) for v in rng.integers(1_000_000, 9_999_999, N)],  # nor as text
        "size_band": rng.choice(["1-10", "11-50", "1001-5000", "5001-10000"], N),
        "created": [f"2026-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, N), rng.integers(1, 29, N))],
        "created_at": pd.date_range("2026-01-01", periods=N, freq="h"),
    })


def _flags(frame: pd.DataFrame, **kwargs) -> dict[str, str]:
    found = detect_personal_columns(frame, list(frame.columns), **kwargs)
    assert list(found.columns) == RESULT_COLUMNS
    return dict(zip(found.column, found.kind))


def test_contact_details_and_names_are_flagged_and_nothing_else(leads):
    assert _flags(leads) == {
        "linkedin": "url", "contact": "email", "mobile": "phone", "full_name": "person_name",
    }


def test_share_and_pattern_describe_the_column_without_any_value(leads):
    found = detect_personal_columns(leads, list(leads.columns)).set_index("column")
    assert found.loc["linkedin", "share"] == 1.0 and "linkedin.com/in/" in found.loc["linkedin", "pattern"]
    assert found.loc["contact", "share"] == 1.0  # of the non-blank values
    assert found.loc["mobile", "share"] == 1.0
    assert "person name" in found.loc["full_name", "pattern"]
    printed = found.to_string()
    for col in ("linkedin", "contact", "mobile", "full_name"):
        assert not any(str(v) in printed for v in leads[col].dropna()), col
    assert not any(word in printed for word in FIRST + LAST)


def test_not_personal_columns_are_skipped(leads):
    assert set(_flags(leads, not_personal=["Mobile", "linkedin"])) == {"contact", "full_name"}


def test_names_need_most_values_distinct(leads):
    few = leads.assign(full_name=np.resize(leads.full_name.head(20).to_numpy(), N))  # 20 people, repeated
    assert "full_name" not in _flags(few)


def test_a_column_where_few_values_match_is_not_flagged(leads):
    mixed = leads.assign(contact=[f"lead{i}@example.com" if i % 10 == 0 else "n/a" for i in range(N)])
    assert "contact" not in _flags(mixed)
    assert _flags(mixed, min_share=0.05)["contact"] == "email"


def test_company_names_with_suffixes_and_distinct_values_are_not_names():
    suffixes = ["Inc", "Ltd", "GmbH", "LLC", "Corp.", "SA", "S.A.", "AG"] * 50
    companies = pd.DataFrame({"company": [f"{a} {b} {s}" for (a, b), s in zip(
        [(a, b) for a in FIRST for b in LAST], suffixes)]})  # "Jane Doe Inc": a founder's name, then a suffix
    assert companies.company.nunique() > 300
    assert _flags(companies) == {}


def test_numbers_and_dates_as_text_are_not_phones():
    frame = pd.DataFrame({
        "amount": [f"{v:.2f}" for v in np.linspace(1_000_000, 9_000_000, 100)],
        "day": [f"2026/{m:02d}/{d:02d}" for m, d in zip(np.arange(100) % 12 + 1, np.arange(100) % 28 + 1)],
        "compact_day": [f"2026{m:02d}{d:02d}" for m, d in zip(np.arange(100) % 12 + 1, np.arange(100) % 28 + 1)],
        "stamp": [f"2026-01-{d % 28 + 1:02d}T10:{d % 60:02d}:00Z" for d in range(100)],
        "ip": [f"10.0.{i}.{i + 20}" for i in range(100)],
    })
    assert _flags(frame) == {}


def test_sample_bounds_the_work_and_unknown_columns_are_an_error(leads):
    assert _flags(leads, sample=50) == _flags(leads)
    with pytest.raises(ValueError, match="unknown column"):
        detect_personal_columns(leads, ["no_such_column"])
    assert detect_personal_columns(leads.head(0), list(leads.columns)).empty


def test_contains_personal_data_finds_contact_details_inside_free_text():
    for text in ["met at expo, reach me at jane@x.com", "call me +33 6 12 34 56 78", "(555) 123-4567 after 5pm",
                 "see www.example.com/jane", "linkedin.com/in/jane-doe", "jane at x dot com @jdoe"]:
        assert contains_personal_data(text), text
    for text in ["lead_id", "Company Size", "L-000123", "a1", "retail", "12345"]:
        assert not contains_personal_data(text), text
    assert contains_personal_data("0612345678") and not contains_personal_data("1234567890", phones=False)
