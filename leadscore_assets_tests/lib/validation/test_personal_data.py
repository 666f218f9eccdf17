"""Personal data found in the values: contact details and names flagged, look-alikes left alone."""

import numpy as np
import pandas as pd
import pytest

from leadscore_assets.lib.validation.personal_data import RESULT_COLUMNS, contains_personal_data, detect_personal_columns

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


# -- every value of every outgoing column (issue #22 item 5) ------------------------------------------

from leadscore_assets.assets.common import preview  # noqa: E402
from leadscore_assets.assets.validation import (  # noqa: E402
    personal_data_advice,
    personal_data_findings,
    personal_name_warnings,
)
from leadscore_assets.lib.project.config import ProjectConfig  # noqa: E402
from leadscore_assets.lib.validation.personal_data import (  # noqa: E402
    is_formatted_phone,
    personal_name_kind,
    scan_values,
    share_text,
    value_kind,
)

PHONES = ["+33 6 12 34 56 78", "(555) 123-4567", "555-123-4567", "555.123.4567", "06 12 34 56 78", "+14155550123",
          "1-800-555-0199", "+44 20 7946 0958", "020 7946 0958"]
NOT_PHONES = ["20260105", "2026-01-05", "1234567.5", "1001-5000", "192.168.10.20", "10.0.19041.1", "978-3-16-148410-0",
              "1 234 567", "1.234.567", "12 45 78 90", "1997 1998 1999", "05 01 2026", "12.05.2026", "02134-1234",
              "0612345678", "4155550123", "1234567", "382-4657", "4111 1111 1111 1111", "2026-01-05T08:00:00.000Z",
              "2026-01-05 10:30:00", "$1,234,567.89", "Acme (2019) 1234567", "-5551234567", "lea_0500000123",
              "550e8400-e29b-41d4-a716-446655440000", "7590-VHVEG", "v1.2.3", "3.14159265"]


def test_phones_need_phone_like_formatting():
    assert [p for p in PHONES if not is_formatted_phone(p)] == []
    assert [v for v in NOT_PHONES if value_kind(v)] == []  # ids, amounts, dates, zips, years, versions


def test_value_kind_finds_contact_details_anywhere_in_a_text():
    assert value_kind("Acme jane.doe@acme.co.uk") == "email"
    assert value_kind("Sales Manager, call +1 415 555 0134 after 5") == "phone"
    assert value_kind("Acme (555) 123-4567") == "phone"
    assert value_kind("see https://www.linkedin.com/in/jane-doe") == "profile_url"
    for text in ("Sales Manager", "Acme Inc", "www.acme.com", "@acme", "Paris, France", None, 12345678):
        assert value_kind(text) is None, text


@pytest.fixture()
def contacts() -> pd.DataFrame:
    n = 600
    rng = np.random.default_rng(3)
    company = rng.choice(["Acme", "Globex", "Initech"], n).astype(object)
    title = rng.choice(["CEO", "CTO", "Sales Manager"], n).astype(object)
    company[np.arange(0, n, 25)] = [f"person{i}@mail.example" for i in range(24)]  # 4% of the values
    title[[7, 300, 555]] = ["+33 6 12 34 56 78", "(555) 123-4567 ext 2", "555.987.6543"]
    title[10] = None  # blanks are not values
    return pd.DataFrame({
        "_row_number": np.arange(2, n + 2), "_source_file": "export.csv",
        "lead_id": [f"lea_{i:08d}" for i in range(n)], "company_name": company, "job_title": title,
        "size": rng.integers(1, 10_000, n), "email": [f"x{i}@y.example" for i in range(n)],
    })


def test_scan_values_counts_every_hit_at_any_share_and_keeps_no_value(contacts):
    hits = scan_values(contacts, ["company_name", "job_title", "size"]).set_index("column")
    assert hits.loc["company_name", "kind"] == "email" and hits.loc["company_name", "hits"] == 24
    assert hits.loc["company_name", "values"] == 600 and hits.loc["company_name", "share"] == 0.04
    assert hits.loc["company_name", "examples"] == [0, 25, 50]
    assert (hits.loc["job_title", "kind"], hits.loc["job_title", "hits"], hits.loc["job_title", "values"]) == ("phone", 3, 599)
    one = contacts.assign(job_title="CEO")
    one.loc[123, "job_title"] = "CEO jane@x.example"  # one value of 600 is a hit
    assert scan_values(one, ["job_title"]).hits.tolist() == [1]
    assert "size" not in hits.index  # numbers stored as numbers are not scanned
    assert share_text(24, 600) == "4.0% of values (24 of 600)" and share_text(1, 5000) == "<0.1% of values (1 of 5000)"


def _config(**update) -> ProjectConfig:
    base = {"name": "t", "source": {"kind": "csv", "path": "t/export.csv"}, "id_column": "lead_id",
            "personal_data": ["email"], "label": {"positive": "size > 5000", "negative": "size <= 5000"},
            "call_list": {"columns": ["company_name", "job_title"]}}
    return ProjectConfig.model_validate({**base, **update})


def test_findings_name_column_kind_share_and_rows_never_the_value(contacts):
    problems, findings, scanned = personal_data_findings(
        contacts, _config(), ["_row_number", "_source_file", "lead_id", "companyName", "jobTitle", "size", "email"])
    assert scanned == ["lead_id", "company_name", "job_title"]  # the declared `email` is not scanned
    assert problems[0] == ("'company_name' ('companyName' in the file) holds email addresses in 4.0% of values "
                           "(24 of 600), e.g. export.csv row 2 (lead 'lea_00000000'), export.csv row 27 "
                           "(lead 'lea_00000025'), export.csv row 52 (lead 'lea_00000050')")
    assert problems[1].startswith("'job_title' ('jobTitle' in the file) holds phone numbers in 0.5% of values (3 of 599)")
    assert [f["column"] for f in findings] == ["company_name", "job_title"]
    advice = personal_data_advice(findings, _config())
    assert "add company_name, job_title to `personal_data:` in defs.yaml" in advice
    assert "out of `call_list.columns` too" in advice and "`features.not_personal:`" in advice
    printed = " ".join(problems) + repr(findings)
    assert "@" not in printed and not any(p in printed for p in ("12 34 56", "123-4567", "987.6543"))


def test_declared_or_not_personal_columns_are_not_scanned_and_ids_holding_emails_are_not_quoted(contacts):
    problems, _, scanned = personal_data_findings(
        contacts, _config(personal_data=["email", "company_name"], features={"not_personal": ["job_title"]},
                          call_list={"columns": ["job_title"]}))
    assert problems == [] and scanned == ["lead_id"]
    by_email = contacts.assign(lead_id=contacts.email)
    problems, _, _ = personal_data_findings(by_email, _config(personal_data=[]))
    assert any(p.startswith("'lead_id' holds email addresses in 100.0% of values (600 of 600), e.g. export.csv row 2,")
               for p in problems)
    assert "(lead '" not in " ".join(problems)  # an id column that holds emails is never quoted


def test_column_names_that_say_personal_data():
    for name in ("first_name", "firstName", "First Name", "surname", "full_name", "email", "E-mail", "phone",
                 "mobile", "address", "ssn", "date_of_birth", "dob", "birthdate", "linkedin_url"):
        assert personal_name_kind(name), name
    for name in ("name", "company_name", "email_status", "emails_sent", "has_phone", "phone_type", "city",
                 "zip", "job_title", "village", "product_name"):
        assert personal_name_kind(name) is None, name
    config = _config(columns={c: {"type": t} for c, t in (
        ("lead_id", "string"), ("first_name", "string"), ("email", "string"), ("address", "string"),
        ("size", "integer"))}, features={"not_personal": ["address"]}, call_list={"columns": []})
    valid = pd.DataFrame({"lead_id": ["a", "b", "c"], "first_name": ["Ann", "Bo", "Cy"], "email": ["x", "y", "z"],
                          "address": ["1 A St", "2 B St", "3 C St"], "size": [1, 2, 3]})
    assert personal_name_warnings(valid.assign(first_name=["yes", "no", "yes"]), config) == []  # a flag
    warnings = personal_name_warnings(valid, config)
    assert warnings == ["'first_name' is named like personal data (person name) but not declared personal "
                        "(a model input): add it to `personal_data:` in defs.yaml if it holds personal data, "
                        "or to `features.not_personal:` if it does not"]


def test_a_preview_never_shows_a_contact_detail(contacts):
    shown = preview(contacts.iloc[[0, 7, 8]], hide=["email"]).value
    assert "(hidden: email)" in shown and "(hidden: phone)" in shown
    assert "@" not in shown and "12 34 56" not in shown and "Acme" in shown or "Globex" in shown or "Initech" in shown
