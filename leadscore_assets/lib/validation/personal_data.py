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

Wherever it travels (issue #22): `detect_personal_columns` judges a sample of the feature columns
and needs a share (30%) of look-alikes, so an email typed into 4% of the company names, or phone
numbers in a few job titles, went through to the call list, the one-hot categories of the model
pickles, the drift reference and HTML, the profile and the event log. `scan_values` closes that:

* Which columns: every text column of the validated table that is not declared personal (the
  `personal_data` columns are dropped from the features, refused in `call_list.columns` and hidden
  from previews) nor listed under `features.not_personal` (the project's word that its values are
  not personal), the id column included: anything else can reach the features, the call list,
  the drift reference and reports, the profile or metadata. Lineage columns are not scanned.
* At any share: every value is looked at (each distinct value once), and one value holding an
  email address, a phone number or a profile URL (linkedin.com/in/...) anywhere in its text is a
  hit. Phones need the formatting people write them with (`is_formatted_phone`: a leading +, an
  area code in parentheses, or three digit groups; 7-15 digits), so ids, amounts, zip codes,
  dates, years, versions, ISBNs and numbers with thousands separators are not phones; digits
  alone never are. Zero hits on the five demo sources and on the 16 real tables of
  benchmarks/real_tables.py. Person names and plain URLs stay share-based (above): one "Jane Doe"
  cannot be told from a company, and a company's website is not personal.
* What a hit says: the column, the kind, the share ("4.0% of values (24 of 600)") and the first
  three rows holding one (file, row number and, when it may be quoted, the lead id), never a value.
  The blocking check `no_undeclared_personal_data` on `validated_contacts` (assets/validation.py)
  stops the run before labels, features, models, reports or the call list exist, and says the way
  out: add the column to `personal_data:` in defs.yaml (or correct the source rows; or, for values
  that are not personal, list it under `features.not_personal:`).
* Column names: `personal_name_kind` reads a name that says personal data (first_name, surname,
  email, phone, mobile, address, ssn, date_of_birth, dob, ...; not `name` alone, which on real
  tables is as often a product, a company or a place). Names are ambiguous (the `address` of
  causaldata's social_insure is a village code), so an undeclared one is a warning, in the run's
  log and the advisory check `personal_column_names_declared`, not a block.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
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


# -- every value of every outgoing text column: emails, phones and profile URLs at any share ---------

VALUE_KINDS = ("email", "phone", "profile_url")  # one value is enough: `scan_values`
VALUE_KIND_WORDS = {"email": "email addresses", "phone": "phone numbers", "profile_url": "profile URLs"}
SCAN_COLUMNS = ["column", "kind", "hits", "values", "share", "examples"]
EXAMPLES = 3  # rows named per hit (row positions; the caller turns them into row numbers / lead ids)

# A run of digits and the separators phones are written with, not glued to a word, a path, a time
# or a decimal: "+33 6 12 34 56 78", "(555) 123-4567", "555.123.4567" inside any text.
_PHONE_RUN = re.compile(r"(?<![\w+\-./:@#])(?:\+|\(\+?)?\d[\d \t().\-]*\d\)?(?![\w\-/:@]|[.,]\d)")
_YEAR = re.compile(r"(?:19|20)\d\d")
_DMY = {(2, 2, 4), (1, 2, 4), (2, 1, 4), (1, 1, 4), (4, 2, 2), (4, 1, 2), (4, 2, 1), (4, 1, 1)}


def is_formatted_phone(value: str) -> bool:
    """A phone number written as people write one: 7-15 digits with a leading +, a (area code), or
    at least three digit groups ("555-123-4567", "06 12 34 56 78", "555.123.4567"). Digits alone
    are not enough (ids, amounts, zip codes, dates as 20260105), nor are dates (12.05.2026,
    2026-05-12), ranges (1001-5000), IPv4 addresses, versions or ISBNs (a one-digit group after
    the first: 10.0.19041.1, 978-3-16-148410-0), numbers with thousands separators (1 234 567,
    1.234.567), lists of years or space-separated small numbers ("12 45 78 90")."""
    text = value.strip()
    if _PHONE_CHARS.fullmatch(text) is None or "+" in text[1:]:
        return False
    digits = sum(c.isdigit() for c in text)
    if not 7 <= digits <= 15 or _DATE_LIKE.fullmatch(text) or _IPV4.fullmatch(text) or _RANGE.fullmatch(text):
        return False
    groups = _DIGIT_GROUPS.findall(text)
    if text.startswith("+"):
        return True
    if text.startswith("("):  # an area code, not a year: "(2019) 1234567"
        return not _YEAR.fullmatch(groups[0])
    if len(groups) < 3:
        return False
    sizes = [len(g) for g in groups]
    if any(s == 1 for s in sizes[1:]):  # versions, ISBNs, section numbers
        return False
    if sizes[0] <= 3 and all(s == 3 for s in sizes[1:]):  # 1 234 567 / 1.234.567: thousands
        return False
    if tuple(sizes) in _DMY or all(_YEAR.fullmatch(g) for g in groups):  # 05 01 2026, 1997 1998 1999
        return False
    if not any(c in text for c in "-.()"):  # only spaces: a longer number, trunk 0 when in pairs
        return digits >= 9 and (max(sizes) > 2 or groups[0].startswith("0"))
    return True


def value_kind(value: object) -> str | None:
    """The kind of contact detail a text holds anywhere in it ('email', 'profile_url', 'phone'),
    or None: "reach me at jane@x.com", "Sales Manager +33 6 12 34 56 78", "Acme (555) 123-4567"."""
    if not isinstance(value, str):
        return None
    if "@" in value and _EMAIL.search(value):
        return "email"
    if "linkedin" in value.casefold() and _PROFILE_URL.search(value):
        return "profile_url"
    # a phone has 7+ digits within one run (is_formatted_phone); the regex finds runs faster than
    # Python counts the digits of a value first
    for run in _PHONE_RUN.finditer(value):
        if is_formatted_phone(run.group()):
            return "phone"
    return None


def is_text_column(series: pd.Series) -> bool:
    return series.dtype == object or isinstance(series.dtype, pd.StringDtype)


def scan_values(frame: pd.DataFrame, columns: Iterable[str], examples: int = EXAMPLES) -> pd.DataFrame:
    """Every value of the text `columns` (no sample: one value is a hit): one row per column and
    kind found, with the number of `hits`, the non-blank `values` looked at, their `share` and the
    positions (0-based, in `frame`) of the first `examples` rows that hold one. Never a value.
    Each distinct value is looked at once (categories repeat), so a large table scans quickly."""
    rows = []
    for col in columns:
        series = frame[col]
        if not is_text_column(series):
            continue
        present = series.notna().to_numpy()
        codes, distinct = pd.factorize(series.to_numpy(dtype=object)[present])
        if not len(distinct):
            continue
        kinds = pd.Series([value_kind(v) for v in distinct], dtype=object)
        if kinds.isna().all():
            continue
        row_kinds = kinds.to_numpy()[codes]
        blank = pd.Series([isinstance(v, str) and not v.strip() for v in distinct]).to_numpy()[codes]
        positions = np.flatnonzero(present)
        n_values = int((~blank).sum())
        for kind in VALUE_KINDS:
            hit = row_kinds == kind
            if hit.any():
                rows.append({"column": col, "kind": kind, "hits": int(hit.sum()), "values": n_values,
                             "share": round(float(hit.sum()) / n_values, 6),
                             "examples": positions[hit][:examples].tolist()})
    return pd.DataFrame(rows, columns=SCAN_COLUMNS)


def share_text(hits: int, values: int) -> str:
    """"4.0% of values (24 of 600)"; a share too small to show in tenths is "<0.1%"."""
    share = hits / max(values, 1)
    shown = f"{share:.1%}" if share >= 0.001 else "<0.1%"
    return f"{shown} of values ({hits} of {values})"


# -- column names that say personal data -----------------------------------------------------------

# Names (compared with case, spaces, dashes and underscores ignored: First Name = first_name =
# firstName) that mean a person's details. `name` alone is not among them: on real tables it is as
# often a product, a company or a place as a person.
PERSONAL_NAMES = {
    "person name": ("firstname", "lastname", "surname", "fullname", "givenname", "familyname", "middlename",
                    "maidenname", "forename", "forenames", "contactname", "personname", "fname", "lname"),
    "email address": ("email", "emailaddress", "mail", "emailid", "contactemail", "workemail", "personalemail"),
    "phone number": ("phone", "phonenumber", "telephone", "telephonenumber", "tel", "mobile", "mobilephone",
                     "mobilenumber", "cellphone", "cell", "fax", "contactphone", "workphone", "homephone"),
    "postal address": ("address", "streetaddress", "homeaddress", "postaladdress", "street", "addressline1",
                       "addressline2", "address1", "address2"),
    "national or tax id": ("ssn", "socialsecuritynumber", "nationalid", "nationalidnumber", "passport",
                           "passportnumber", "taxid", "nin", "nino"),
    "date of birth": ("dateofbirth", "dob", "birthdate", "birthday"),
    "IP address": ("ipaddress", "ip"),
    "profile URL": ("linkedin", "linkedinurl", "profileurl", "linkedinprofile"),
}
_NAME_KINDS = {key: kind for kind, keys in PERSONAL_NAMES.items() for key in keys}


def personal_name_kind(column: str) -> str | None:
    """What a column's name says it holds ('person name', 'email address', ...), or None."""
    return _NAME_KINDS.get(re.sub(r"[\W_]+", "", str(column)).casefold())
