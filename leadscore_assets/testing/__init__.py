"""Test utilities of the product, shared by its tests and its benchmarks (as `pandas.testing` or
Dagster's own test helpers are): running a project's pipeline in-process on demo data and finding
what it wrote (`runs`), starting real servers on loopback and talking to them (`servers`), the
feedback loop driven tick by tick as the daemon drives it (`feedback_loop`), outcome files written
and parsed as the inbox hands them over (`feedback_files`), the parity of a scorer's answers with
`lead_scores` (`parity`), small synthetic leads for the tuning code (`synthetic`) and one LemList
export row for the validation tests (`lemlist_rows`). It needs only
the package's runtime dependencies (never pytest): fixtures stay in the tests, which build them
from these helpers.
"""
