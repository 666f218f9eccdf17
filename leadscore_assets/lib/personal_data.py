"""Personal data detected from the values, not only declared: emails, phone numbers, URLs, names.

A project lists its personal-data columns in `personal_data`, and those never become features
nor appear in reasons. A column it forgot (a second email field, a free-text "contact" column
holding phone numbers) is found here by looking at a sample of its values. The result names the
column, the kind and the share of sampled values that look like it, with a description of the
pattern, never a value: it reaches logs and the UI.

Only text (object / string) columns are scanned: numbers and dates stored as such are not
contact details. Names are the hard case: "Jane Doe" and "Acme Robotics" have the same shape, so
a column counts as person names only when most of its values are distinct (names barely repeat;
cities, job titles and industries do) and values containing a company suffix or a common
job-title or business word are not names. `not_personal` names columns known to be fine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

RESULT_COLUMNS = ["column", "kind", "share", "pattern"]
KINDS = ("email", "url", "phone", "person_name")  # also the order that breaks a tie in share
NAME_MIN_DISTINCT = 0.8  # person names: at least this share of the matching sampled values distinct

_EMAIL = re.compile(r"[\w.%+'-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")  # \w: internationalised addresses too
_URL = re.compile(r"(?:https?://|www\.)\S+|(?:[\w-]+\.)*linkedin\.com/in/\S+", re.IGNORECASE)
_PROFILE_URL = re.compile(r"(?:https?://)?(?:[\w-]+\.)*linkedin\.com/in/", re.IGNORECASE)
_PHONE_CHARS = re.compile(r"\+?[\d\s().\-]+")
_DIGIT_GROUPS = re.compile(r"\d+")
_DATE_LIKE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_RANGE = re.compile(r"\d+\s*-\s*\d+")  # "1001-5000": a company-size band, not a phone
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")

COMPANY_SUFFIXES = frozenset(s.casefold() for s in (
    "Inc", "Inc.", "Incorporated", "Ltd", "Ltd.", "Limited", "GmbH", "LLC", "LLP", "LP", "Corp", "Corp.",
    "Corporation", "Co", "Co.", "Company", "SA", "S.A.", "SAS", "SARL", "SE", "AG", "KG", "BV", "B.V.", "NV",
    "N.V.", "Plc", "PLC", "Pty", "Oy", "AB", "AS", "ApS", "SpA", "S.p.A.", "Srl", "S.r.l.", "KK", "Group",
    "Holding", "Holdings",
))
# Words that make a capitalised two- or three-word value a title, an organisation or a sector
# rather than a person ("Sales Manager", "Acme Technologies", "Financial Services").
NOT_NAME_WORDS = frozenset(s.casefold() for s in (
    "Manager", "Director", "Engineer", "Officer", "Head", "Chief", "President", "Founder", "Owner", "Consultant",
    "Analyst", "Specialist", "Lead", "Developer", "Designer", "Executive", "Assistant", "Associate",
    "Coordinator", "Representative", "Administrator", "Architect", "Scientist", "Intern", "Senior", "Junior",
    "Vice", "Sales", "Marketing", "Operations", "Product", "Account", "Business", "Technology", "Technologies",
    "Solutions", "Systems", "Services", "Software", "Consulting", "Partners", "Labs", "Industries",
    "Enterprises", "International", "Global", "Capital", "Ventures", "Bank", "Media", "Digital", "Agency",
    "Studio", "Foundation", "University", "Institute", "Associates", "Health", "Retail", "Financial",
    "Insurance", "Education", "Manufacturing", "Logistics", "Energy", "Real", "Estate",
))
_NAME_PARTICLES = frozenset(("van", "von", "de", "der", "den", "da", "di", "del", "della", "du", "le", "la", "bin", "ibn"))

_PATTERNS = {
    "email": "email address (local-part@domain.tld)",
    "url": "URL (http(s)://..., www. ...)",
    "profile_url": "profile URL (linkedin.com/in/...)",
    "phone": "phone number (7-15 digits with +, spaces, dashes or parentheses)",
    "person_name": "person name (2-3 capitalised words, e.g. 'Xxxx Xxxx')",
}


def is_email(value: str) -> bool:
    return _EMAIL.fullmatch(value) is not None


def is_url(value: str) -> bool:
    return _URL.fullmatch(value) is not None


def is_phone(value: str) -> bool:
    """+33 6 12 34 56 78, (555) 123-4567, 555-123-4567, +14155550123, 0612345678; not 20260105,
    2026-01-05, 1234567.5, 1001-5000 nor 192.168.10.20."""
    if _PHONE_CHARS.fullmatch(value) is None or "+" in value[1:]:
        return False
    digits = sum(c.isdigit() for c in value)
    if not 7 <= digits <= 15 or _DATE_LIKE.fullmatch(value) or _IPV4.fullmatch(value) or _RANGE.fullmatch(value):
        return False
    if _PLAIN_NUMBER.fullmatch(value):  # digits only: a phone only with a trunk prefix (0612345678)
        return value.startswith("0") and "." not in value and "," not in value and digits >= 9
    groups = len(_DIGIT_GROUPS.findall(value))
    return value.startswith("+") or "(" in value or groups >= 3


_PHONE_INSIDE = re.compile(r"\+?\(?\d[\d\s().\-]{5,}\d")  # a run of digits and separators that could be a phone


def contains_personal_data(value: object, phones: bool = True) -> bool:
    """Whether a text holds, anywhere in it, something that looks like an email address, a URL or
    (unless `phones` is false: numeric lead ids) a phone number (7+ digits): "reach me at
    jane@x.com +33 6 12 34 56 78". Used to decide whether a text (a header name, a lead id) may be
    quoted in a message; errs on the side of hiding (a long date or number counts as a phone)."""
    text = str(value)
    if _EMAIL.search(text) or _URL.search(text) or "@" in text:
        return True
    return phones and any(sum(c.isdigit() for c in m.group()) >= 7 for m in _PHONE_INSIDE.finditer(text))


def _is_name_word(word: str) -> bool:
    """Capitalised, alphabetic (any script; ' and - inside: O'Neil, Mary-Jane), not an acronym."""
    letters = word.replace("'", "").replace("-", "").replace("\u2019", "")
    return len(letters) >= 2 and letters.isalpha() and word[0].isupper() and not letters.isupper()


def is_person_name(value: str) -> bool:
    """Two or three capitalised words ("Jane Doe", "Ana María López", "Jan van Dijk", "John F. Kennedy"),
    none of them a company suffix, a job-title or a business word."""
    words = value.split()
    folded = [w.casefold() for w in words]
    if any(w in COMPANY_SUFFIXES or w.strip(".,") in COMPANY_SUFFIXES or w in NOT_NAME_WORDS for w in folded):
        return False
    inner = [w for w in words[1:-1] if w not in _NAME_PARTICLES and not re.fullmatch(r"[A-Z]\.", w)]
    names = [words[0], *inner, words[-1]] if len(words) >= 2 else words
    return 2 <= len(names) <= 3 and len(words) <= 4 and all(_is_name_word(w) for w in names)


_MATCHERS = {"email": is_email, "url": is_url, "phone": is_phone, "person_name": is_person_name}


def _text_values(series: pd.Series, sample: int) -> pd.Series | None:
    """The sampled non-blank values of a text column (None for a column that is not text)."""
    if not (series.dtype == object or isinstance(series.dtype, pd.StringDtype)):
        return None
    values = series.dropna()
    values = values[[not isinstance(v, str) or bool(v.strip()) for v in values]]
    if len(values) > sample:
        values = values.sample(n=sample, random_state=0)
    return values.map(lambda v: v.strip() if isinstance(v, str) else v)


def _column_kind(values: pd.Series, min_share: float) -> dict | None:
    texts = values[[isinstance(v, str) for v in values]]
    best = None
    for kind in KINDS:
        matches = texts[texts.map(_MATCHERS[kind]).astype(bool)] if len(texts) else texts
        share = len(matches) / len(values)
        if share < min_share or (best is not None and share <= best["share"]):
            continue
        pattern = _PATTERNS[kind]
        if kind == "person_name":
            distinct = matches.nunique() / len(matches)
            if distinct < NAME_MIN_DISTINCT:
                continue
            pattern += f", {distinct:.0%} of them distinct"
        if kind == "url" and matches.map(lambda v: _PROFILE_URL.match(v) is not None).mean() >= 0.5:
            pattern = _PATTERNS["profile_url"]
        best = {"kind": kind, "share": round(share, 4), "pattern": pattern}
    return best


def detect_personal_columns(
    frame: pd.DataFrame,
    columns: list[str],
    not_personal: Iterable[str] = (),
    sample: int = 2000,
    min_share: float = 0.3,
) -> pd.DataFrame:
    """Columns whose values look like personal data: one row per flagged column with its `kind`
    (email, phone, url, person_name), the `share` of sampled non-blank values that match and a
    `pattern` description (never a value). At most `sample` values per column are looked at
    (a fixed random sample); a column is flagged when at least `min_share` of them match one kind.
    Columns in `not_personal` (compared without regard to case) and non-text columns are skipped.
    """
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise ValueError(f"detect_personal_columns: unknown column(s) {unknown}")
    skipped = {c.casefold() for c in not_personal}
    rows = []
    for col in columns:
        if col.casefold() in skipped:
            continue
        values = _text_values(frame[col], sample)
        if values is None or values.empty:
            continue
        found = _column_kind(values, min_share)
        if found:
            rows.append({"column": col, **found})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS).astype({"share": "float64"})
