"""The fault catalogue: every bad input and fault a user has met or will meet, each run for real.

One module-scoped GOOD run (600 LemList demo contacts, dummy + logistic regression, no search)
publishes a warehouse first. Every bad case copies that data directory (warehouse, MLflow store,
export) into a fresh temp dir, so it starts from a published warehouse as production does,
replaces the export (or the config, or the MLflow store), runs the whole pipeline in-process
against real DuckDB and MLflow, and asserts what a user would notice:

* a blocked run names the check that stopped it, publishes nothing (the published file is the
  same file, its `lead_scores` and `validated_contacts` have the same row counts and checksums)
  and leaves its staged copy, where the reasons can be read;
* a run that goes through shows the bad rows in the quarantine with their reasons;
* every row of the file is accounted for: rows in the file = validated + quarantined
  (+ `quarantined_source_rows` for rows set aside at ingestion), read from the run's staged copy
  when it was blocked, from the published file when it succeeded.

Each case records one row (case, expected, observed, rows in the file, validated, quarantined,
accounted) in `CATALOGUE`, passed or not; the last test prints the table as markdown (visible in
plain pytest output, and with `-s`) and asserts that every case was recorded and passed.

Note: a copied MLflow store still holds the experiment's artifact location and model sources of
the GOOD directory (absolute URIs), so runs in the copies read the GOOD champion's model and log
their artifacts next to it; the GOOD directory is never asserted on after its own run.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from pydantic import ValidationError

from leadscore_assets.components.lead_scoring_project import project_definitions
from leadscore_assets.demo_data import feedback, linkedin
from leadscore_assets.lib.project.config import ProjectConfig, ProjectConfigError, load_project_config
from leadscore_assets.lib.validation.personal_data import share_text
from leadscore_assets.resources.publication import KEEP_FAILED_REPORTS, champion_of, sha256_of
from leadscore_assets.lib.scoring.registry import current_champion
from leadscore_assets.resources.feedback_inbox import file_sha256, scan_folder
from leadscore_assets.resources.warehouse import KEEP_STAGED
from leadscore_assets.resources import build_resources
from leadscore_assets.testing.runs import DEFS_DIR, feedback_run_config, warehouse_file

pytestmark = pytest.mark.slow  # one pipeline run per fault: `pytest -m slow`

ROWS, SEED = 600, 5
PROJECT = "linkedin"
EXPORT = Path("linkedin") / "lemlist_export.csv"
CANDIDATES = ["dummy", "logistic_regression"]
CONCURRENT_TEST = Path(__file__).resolve().parents[1] / "test_concurrent_runs.py"

CASES = [
    "1 missing required column",
    "2 no positives",
    "3 truncated final record",
    "4 dates in the future",
    "5 semicolon-delimited file",
    "6 Latin-1 (cp1252) file",
    "7 literal NULL / None / N/A ids",
    "8 label rule with ; DROP TABLE",
    "9 profile URL not declared personal",
    "10 CRM outcomes re-saved with CRLF",
    "11 MLflow run left RUNNING",
    "12 two runs at once",
    "13 source or feedback path outside the data folder",
    "14 spreadsheet formulas in company, job title, location",
    "15 killed between the warehouse swap and the alias",
    "16 corrupt published warehouse",
    "17 a failed run's leftovers are cleaned by the next",
    "18 emails in 4% of companyName, phones in jobTitle",
]
CATALOGUE: list[dict] = []
STARTED = time.perf_counter()


# -- running ------------------------------------------------------------------------------------


def fast(config: ProjectConfig) -> ProjectConfig:
    models = config.models.model_copy(update={
        "candidates": CANDIDATES, "search": config.models.search.model_copy(update={"n_trials": 0})})
    return config.model_copy(update={"models": models})


@dataclass
class Run:
    """One finished in-process run, with its instance's log messages (context.log notes)."""

    result: dg.ExecuteInProcessResult
    data_dir: Path
    logs: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.result.success

    @property
    def run_id(self) -> str:
        return self.result.run_id

    @property
    def failed_checks(self) -> dict[str, str]:
        return {e.check_name: e.description or "" for e in self.result.get_asset_check_evaluations() if not e.passed}

    @property
    def materialized(self) -> set[str]:
        return {e.asset_key.path[-1] for e in self.result.get_asset_materialization_events()}

    @property
    def warehouse(self) -> Path:
        """What this run wrote: the published file if it went through, else its staged copy."""
        return warehouse_file(self.data_dir, PROJECT) if self.success else warehouse_file(self.data_dir, PROJECT, self.run_id)

    def query(self, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            return conn.execute(sql).df()

    def blocked_by(self) -> str:
        failed = self.failed_checks
        return "; ".join(f"{name}: {desc}"[:160] for name, desc in sorted(failed.items())) or "no check failed"


def execute(config: ProjectConfig, data_dir: Path, run_config: dict | None = None) -> Run:
    """As conftest.materialize_project (every asset and check, in-process, real stores), keeping the
    instance to read the run's log messages, and taking a run config (the feedback files)."""
    defs = dg.Definitions.merge(
        project_definitions(config), dg.Definitions(resources=build_resources(data_dir), executor=dg.in_process_executor)
    )
    job = defs.resolve_job_def(f"{config.name}_pipeline")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)
        logs = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.user_message]
    return Run(result, Path(data_dir), logs)


# -- what a user sees in the warehouse --------------------------------------------------------


def fingerprint(data_dir: Path) -> dict:
    """The published file's identity and its readers' tables: row counts and id checksums."""
    path = warehouse_file(data_dir, PROJECT)
    out = {"inode": path.stat().st_ino, "mtime_ns": path.stat().st_mtime_ns}
    with duckdb.connect(str(path), read_only=True) as conn:
        for name in ("lead_scores", "validated_contacts"):
            n, checksum = conn.execute(f"SELECT count(*), sum(hash(lead_id)) FROM {PROJECT}.{name}").fetchone()
            out[name] = (n, int(checksum or 0))
    return out


def tables_only(fp: dict) -> dict:
    return {k: v for k, v in fp.items() if k in ("lead_scores", "validated_contacts")}


def file_rows(path: Path, encoding: str = "utf-8", delimiter: str = ",") -> int:
    """Data records in the file as written (a record cut short counts), blank lines skipped."""
    text = path.read_bytes().decode(encoding)
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
               if r and not (len(r) == 1 and not r[0].strip())]
    return len(records) - 1


def account(row: dict, run: Run, rows_in_file: int) -> None:
    """Rows in the file = validated + quarantined (+ set aside at ingestion), in what the run wrote."""
    with duckdb.connect(str(run.warehouse), read_only=True) as conn:
        raw, valid, quar, source = conn.execute(
            f"SELECT (SELECT count(*) FROM {PROJECT}.raw_contacts), (SELECT count(*) FROM {PROJECT}.validated_contacts), "
            f"(SELECT count(*) FROM {PROJECT}.quarantined_contacts), "
            f"(SELECT count(*) FROM {PROJECT}.quarantined_source_rows)").fetchone()
    ok = rows_in_file == valid + quar + source and raw == valid + quar
    row.update({"input rows": rows_in_file, "validated": valid,
                "quarantined": f"{quar}" + (f" (+{source} at ingestion)" if source else ""),
                "accounted": "yes" if ok else f"NO (raw {raw})",
                "read from": "published" if run.success else "staged copy"})
    assert ok, f"{rows_in_file} rows in the file, {valid} validated + {quar} quarantined + {source} at ingestion"


def assert_blocked(row: dict, run: Run, before: dict, check: str) -> None:
    """Stopped by `check`, nothing published: the same published file with the same tables."""
    row["observed"] = f"blocked by {run.blocked_by()}"
    assert not run.success
    assert check in run.failed_checks, run.failed_checks
    assert "published" not in run.materialized and "lead_scores" not in run.materialized
    assert run.warehouse.exists(), "the blocked run's staged copy is kept for inspection"
    after = fingerprint(run.data_dir)
    assert after == before, f"published warehouse changed: {before} -> {after}"
    row["observed"] += "; published unchanged (same file, same counts and checksums)"


@contextmanager
def case(name: str, expected: str) -> Iterator[dict]:
    """Record one catalogue row, passed or failed (with the first line of the failure)."""
    assert name in CASES
    row = {"case": name, "expected": expected, "observed": "", "input rows": "-", "validated": "-",
           "quarantined": "-", "accounted": "n/a", "read from": "-", "passed": False}
    started = time.perf_counter()
    try:
        yield row
        row["passed"] = True
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        row["observed"] = (row["observed"] + " | " if row["observed"] else "") + f"FAILED {type(err).__name__}: {first}"[:400]
        raise
    finally:
        row["seconds"] = round(time.perf_counter() - started, 1)
        CATALOGUE.append(row)


# -- the GOOD run and the copies ----------------------------------------------------------------


@dataclass
class Good:
    config: ProjectConfig
    data_dir: Path
    export: pd.DataFrame
    fingerprint: dict

    def copy(self, tmp_path: Path) -> Path:
        data_dir = tmp_path / "data"
        shutil.copytree(self.data_dir, data_dir)
        return data_dir

    def unique_rows(self, n: int, skip_last: bool = True) -> list[int]:
        """Indexes of `n` rows whose id appears once in the export (the demo repeats ~1% of rows)."""
        once = list(self.export.index[~self.export._id.duplicated(keep=False)])
        once = once[:-1] if skip_last else once
        step = len(once) // (n + 1)
        return [once[step * (i + 1)] for i in range(n)]


@pytest.fixture(scope="module")
def good(tmp_path_factory, linkedin_config) -> Good:
    data_dir = tmp_path_factory.mktemp("fault_good")
    linkedin.write(data_dir, rows=ROWS, seed=SEED)
    export, _ = linkedin.generate(rows=ROWS, seed=SEED)
    config = fast(linkedin_config)
    run = execute(config, data_dir)
    assert run.success, run.blocked_by()
    return Good(config, data_dir, export, fingerprint(data_dir))


def write_export(data_dir: Path, write: Callable[[Path], None]) -> Path:
    path = data_dir / EXPORT
    path.unlink()
    write(path)
    return path


# -- the cases ------------------------------------------------------------------------------------


def test_1_missing_required_column_blocks_and_names_it(good, tmp_path):
    with case(CASES[0], "blocked by schema_matches_config; published unchanged; staged quarantine names the column") as row:
        d = good.copy(tmp_path)
        before = fingerprint(d)
        path = write_export(d, lambda p: good.export.drop(columns=["campaignName"]).to_csv(p, index=False))
        run = execute(good.config, d)
        assert_blocked(row, run, before, "schema_matches_config")
        reasons = run.query(f"SELECT _quarantine_reason AS r FROM {PROJECT}.quarantined_contacts").r
        assert reasons.str.contains("required column 'campaign_name' is missing", regex=False).all()
        row["observed"] += f"; staged quarantine: {reasons.iloc[0][:110]}"
        account(row, run, file_rows(path))
        assert row["validated"] == 0


def test_2_no_positives_blocks_on_positive_rate(good, tmp_path):
    with case(CASES[1], "blocked by positive_rate_plausible; published unchanged") as row:
        d = good.copy(tmp_path)
        before = fingerprint(d)
        path = write_export(d, lambda p: good.export.assign(lastState="linkedinInviteSent").to_csv(p, index=False))
        run = execute(good.config, d)
        assert_blocked(row, run, before, "positive_rate_plausible")
        assert "no positives" in run.failed_checks["positive_rate_plausible"]
        assert not run.materialized & {"features", "candidate_models", "champion_model"}
        account(row, run, file_rows(path))


def test_3_truncated_final_record_goes_to_source_quarantine(good, tmp_path):
    with case(CASES[2], "last row in quarantined_source_rows with 'record cut short'; never validated") as row:
        d = good.copy(tmp_path)
        # the last record must hold an id of its own (the demo repeats some rows verbatim)
        last = good.unique_rows(1, skip_last=False)[0]
        export = pd.concat([good.export.drop(index=last), good.export.loc[[last]]], ignore_index=True)
        cut_id, created = export._id.iloc[-1], export.createdAt.iloc[-1]
        text = export.to_csv(index=False).rstrip("\n")
        head, _, last_line = text.rpartition("\n")
        last_line = last_line[: last_line.index(created) + len("2026-01-29T18")]  # stops inside createdAt
        path = write_export(d, lambda p: p.write_text(head + "\n" + last_line))
        assert not path.read_bytes().endswith(b"\n")
        run = execute(good.config, d)
        row["observed"] = "run succeeded" if run.success else f"blocked by {run.blocked_by()}"
        assert run.success, run.blocked_by()
        rows = file_rows(path)
        source = run.query(f"SELECT _row_number, reason, raw_values FROM {PROJECT}.quarantined_source_rows")
        assert len(source) == 1 and source._row_number.iloc[0] == rows, source
        assert "record cut short: 15 of 19 fields, no line end" in source.reason.iloc[0]
        assert cut_id in source.raw_values.iloc[0]
        validated = run.query(f"SELECT lead_id, _row_number FROM {PROJECT}.validated_contacts")
        assert cut_id not in set(validated.lead_id) and rows not in set(validated._row_number)
        row["observed"] += f"; quarantined_source_rows: {source.reason.iloc[0]}; id {cut_id} not validated"
        account(row, run, rows)


def test_4_future_dates_are_quarantined_naming_the_column(good, tmp_path):
    with case(CASES[3], "those rows quarantined with 'is in the future' naming created_at") as row:
        d = good.copy(tmp_path)
        export = good.export.copy()
        future = good.unique_rows(5)
        export.loc[future, "createdAt"] = "2031-06-01T10:00:00.000Z"
        ids = set(export.loc[future, "_id"])
        path = write_export(d, lambda p: export.to_csv(p, index=False))
        run = execute(good.config, d)
        row["observed"] = "run succeeded" if run.success else f"blocked by {run.blocked_by()}"
        assert run.success, run.blocked_by()
        q = run.query(f"SELECT _id, _quarantine_reason AS r FROM {PROJECT}.quarantined_contacts")
        hit = q[q.r.str.contains("is in the future", regex=False)]
        assert set(hit._id) == ids, (set(hit._id), ids)
        assert hit.r.str.contains("column 'created_at'", regex=False).all()
        assert not ids & set(run.query(f"SELECT lead_id FROM {PROJECT}.validated_contacts").lead_id)
        row["observed"] += f"; {len(hit)} rows quarantined, e.g. {hit.r.iloc[0][:150]}"
        account(row, run, file_rows(path))


def test_5_semicolon_delimited_file_is_read(good, tmp_path):
    with case(CASES[4], "read with ';' (a note says so); validation passes, no table error") as row:
        d = good.copy(tmp_path)
        path = write_export(d, lambda p: good.export.to_csv(p, index=False, sep=";"))
        run = execute(good.config, d)
        notes = [m for m in run.logs if "delimiter ';' found" in m]
        row["observed"] = ("run succeeded" if run.success else f"blocked by {run.blocked_by()}") + \
            (f"; note: {notes[0]}" if notes else "; no delimiter note")
        assert not {"schema_matches_config", "quarantine_within_limits", "rows_accounted_for"} & set(run.failed_checks)
        assert run.success, run.blocked_by()
        assert notes
        # the same rows as the comma-separated GOOD export, validated alike
        assert tables_only(fingerprint(d))["validated_contacts"] == good.fingerprint["validated_contacts"]
        row["observed"] += "; validated rows identical to the comma file's"
        account(row, run, file_rows(path, delimiter=";"))


def test_6_cp1252_file_is_read_with_its_accents(good, tmp_path):
    with case(CASES[5], "read (as Windows-1252, with a note), rows validated") as row:
        d = good.copy(tmp_path)
        assert good.export.firstName.isin(["Chloé", "Inès"]).any() and good.export.lastName.eq("Müller").any()
        path = write_export(d, lambda p: good.export.to_csv(p, index=False, encoding="cp1252"))
        run = execute(good.config, d)
        notes = [m for m in run.logs if "read as Windows-1252 (cp1252)" in m]
        row["observed"] = ("run succeeded" if run.success else f"blocked by {run.blocked_by()}") + \
            (f"; note: {notes[0][:160]}" if notes else "; no encoding note")
        assert run.success, run.blocked_by()
        assert notes
        names = run.query(f"SELECT DISTINCT first_name, last_name FROM {PROJECT}.validated_contacts")
        assert {"Chloé", "Inès"} <= set(names.first_name) and "Müller" in set(names.last_name)
        assert tables_only(fingerprint(d))["validated_contacts"] == good.fingerprint["validated_contacts"]
        row["observed"] += "; Chloé, Inès, Müller validated as written; same rows as the UTF-8 file"
        account(row, run, file_rows(path, encoding="cp1252"))


def test_7_written_out_null_ids_are_quarantined_as_missing(good, tmp_path):
    with case(CASES[6], "quarantined as missing ids") as row:
        d = good.copy(tmp_path)
        export = good.export.copy()
        nulls = good.unique_rows(3)
        export.loc[nulls, "_id"] = ["NULL", "None", "N/A"]
        path = write_export(d, lambda p: export.to_csv(p, index=False))
        run = execute(good.config, d)
        row["observed"] = "run succeeded" if run.success else f"blocked by {run.blocked_by()}"
        assert run.success, run.blocked_by()
        q = run.query(f"SELECT _id, _quarantine_reason AS r FROM {PROJECT}.quarantined_contacts "
                      "WHERE _id IN ('NULL', 'None', 'N/A')")
        assert sorted(q._id) == ["N/A", "NULL", "None"]
        assert q.r.str.contains("column 'lead_id'", regex=False).all()
        assert q.r.str.contains("is required (null)", regex=False).all(), q.r.tolist()
        valid = run.query(f"SELECT count(*) FILTER (lead_id IS NULL OR lead_id IN ('NULL', 'None', 'N/A')) AS n "
                          f"FROM {PROJECT}.validated_contacts").n.iloc[0]
        assert valid == 0
        row["observed"] += f"; 3 rows quarantined, e.g. {q.r.iloc[0][:120]}"
        account(row, run, file_rows(path))


def test_8_label_rule_with_a_second_statement_is_refused(good, tmp_path):
    with case(CASES[7], "refused when the YAML loads, naming file, line and label.positive; "
                        "published lead_scores still there") as row:
        d = good.copy(tmp_path)
        before = fingerprint(d)
        attrs = yaml.safe_load((DEFS_DIR / PROJECT / "defs.yaml").read_text())
        attrs["attributes"]["label"]["positive"] = (
            "last_state IN ('linkedinreplied', 'linkedininterested'); DROP TABLE linkedin.lead_scores; SELECT true")
        bad_yaml = tmp_path / "defs.yaml"
        bad_yaml.write_text(yaml.safe_dump(attrs, sort_keys=False))
        with pytest.raises(ProjectConfigError) as from_yaml:
            load_project_config(bad_yaml)
        with pytest.raises(ValidationError) as from_dict:
            ProjectConfig.model_validate(attrs["attributes"])
        message = str(from_yaml.value)
        assert "label.positive" in message and "exactly one is allowed" in message
        assert f"{bad_yaml} line " in message
        assert "label.positive" in str(from_dict.value)
        shown = next(line for line in message.splitlines() if "label.positive" in line).split(" [type=")[0].strip()
        row["observed"] = f"ProjectConfigError: {shown}"
        after = fingerprint(d)
        assert after == before and after["lead_scores"][0] > 0
        row["observed"] += f"; no run started; published lead_scores intact ({after['lead_scores'][0]} rows)"


def test_9_profile_url_not_declared_personal_blocks_naming_it(good, tmp_path):
    with case(CASES[8], "blocked by no_undeclared_personal_data (validated_contacts) naming linkedin_url; "
                        "published unchanged") as row:
        d = good.copy(tmp_path)
        before = fingerprint(d)
        config = good.config.model_copy(update={"personal_data": [c for c in good.config.personal_data
                                                                  if c != "linkedin_url"]})
        run = execute(config, d)  # the export as in the GOOD run: linkedinUrl is there
        assert_blocked(row, run, before, "no_undeclared_personal_data")  # before any feature is built
        assert "'linkedin_url'" in run.failed_checks["no_undeclared_personal_data"]
        assert "profile URLs in 100.0% of values" in run.failed_checks["no_undeclared_personal_data"]
        account(row, run, file_rows(d / EXPORT))


def test_10_crm_outcomes_resaved_with_crlf_count_once(good, tmp_path):
    with case(CASES[9], "same content hash (file_sha256): reported as a duplicate, landed once") as row:
        d = good.copy(tmp_path)
        lf = feedback.write_feedback(d, PROJECT, n=40, seed=31, name="crm_outcomes.csv")
        # the sensor's view, tick by tick: the export settles and is handed out ...
        state = scan_folder(lf.parent, None).state
        landed = scan_folder(lf.parent, state)
        assert [f.path.name for f in landed.ready] == [lf.name]
        # ... then someone opens it in a spreadsheet and saves it again, with CRLF line ends
        crlf = lf.with_name("crm_outcomes (re-saved).csv")
        crlf.write_bytes(lf.read_bytes().replace(b"\n", b"\r\n"))
        assert lf.read_bytes() != crlf.read_bytes()
        digest = file_sha256(lf)
        assert file_sha256(crlf) == digest
        state = scan_folder(lf.parent, landed.state).state
        second = scan_folder(lf.parent, state)
        assert second.ready == []
        assert [(f.path.name, f.duplicate_of) for f in second.duplicates] == [(crlf.name, lf.name)]
        # and a run handed both anyway lands the content once
        run_config = feedback_run_config(good.config, [lf, crlf], [digest, file_sha256(crlf)])
        run = execute(good.config, d, run_config)
        skipped = [m for m in run.logs if "content already landed, skipped" in m]
        row["observed"] = (f"hashes equal ({digest[:12]}); sensor: 1 ready, {crlf.name!r} duplicate of {lf.name!r}; "
                           + ("run succeeded" if run.success else f"run blocked by {run.blocked_by()}"))
        assert run.success, run.blocked_by()
        assert skipped, "the re-saved file was not reported as already landed"
        batches = run.query(f"SELECT * FROM {PROJECT}.feedback_batches")
        assert batches.content_hash.tolist() == [digest] and batches.file.tolist() == [lf.name]
        outcomes = run.query(f"SELECT count(*) AS n FROM {PROJECT}.feedback_outcomes").n.iloc[0]
        b = batches.iloc[0]
        assert outcomes == b.outcomes
        row["observed"] += f"; feedback_batches: 1 row; {outcomes} outcomes (not doubled); log: {skipped[0][-60:]}"
        rows = file_rows(lf)
        ok = rows == b.data_rows == b.outcomes + b.quarantined + b.unknown_leads
        row.update({"input rows": f"{rows} (x2 files)", "validated": int(b.outcomes),
                    "quarantined": f"{int(b.quarantined)} (+{int(b.unknown_leads)} unknown ids)",
                    "accounted": "yes" if ok else "NO", "read from": "published"})
        assert ok, b.to_dict()


def test_11_mlflow_run_left_running_is_ended_by_the_next_run(good, tmp_path):
    with case(CASES[10], "the next real run ends it as FAILED") as row:
        d = good.copy(tmp_path)
        uri = f"sqlite:///{(d / 'mlflow' / 'mlflow.db').resolve()}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.get_experiment_by_name(f"leadscore/{PROJECT}")
        killed = client.create_run(experiment.experiment_id, run_name=f"{PROJECT}-xgboost", tags={
            "dagster.run_id": "killed-0000-0000", "leadscore.project": PROJECT, "leadscore.candidate": "xgboost"})
        assert client.get_run(killed.info.run_id).info.status == "RUNNING"
        run = execute(good.config, d)
        after = client.get_run(killed.info.run_id)
        row["observed"] = f"left RUNNING run is {after.info.status}, tag leadscore.ended_by = " \
                          f"{after.data.tags.get('leadscore.ended_by')!r}"[:200]
        assert after.info.status == "FAILED"
        assert after.data.tags.get("leadscore.ended_by") == f"dagster run {run.run_id}: abandoned"
        assert any("ended 1 MLflow run(s) left RUNNING by a killed run" in m for m in run.logs)
        still = client.search_runs([experiment.experiment_id], filter_string="attributes.status = 'RUNNING'")
        assert not still, [r.info.run_id for r in still]
        assert run.success, run.blocked_by()
        row["observed"] += "; run succeeded, nothing left RUNNING"
        account(row, run, file_rows(d / EXPORT))


def test_12_two_runs_at_once_is_covered_elsewhere():
    with case(CASES[11], "second run stops at once naming the first; covered by test_concurrent_runs.py") as row:
        name = "test_a_second_run_of_a_project_stops_at_once_naming_the_first"
        assert f"def {name}(" in CONCURRENT_TEST.read_text()
        row["observed"] = f"not re-run here: leadscore_assets_tests/test_concurrent_runs.py::{name}"


def test_13_paths_outside_the_data_folder_are_refused(good, tmp_path):
    with case(CASES[12], "refused at YAML load (.., absolute, read_csv in a query) naming file, line and key; "
                         "a symlinked export pointing out stops raw_contacts; published unchanged") as row:
        d = good.copy(tmp_path)
        before = fingerprint(d)
        refused = []
        for key, value, expected in (
            ("source", {"kind": "csv", "path": "../x.csv"}, "source.path '../x.csv' climbs out of the data folder"),
            ("source", {"kind": "csv", "path": "/etc/passwd"}, "source.path '/etc/passwd' is an absolute path"),
            ("source", {"tables": {"contacts": {"path": str(EXPORT)}},
                        "query": "SELECT * FROM contacts UNION ALL BY NAME SELECT * FROM read_csv('/etc/passwd')"},
             "source.query reads read_csv('/etc/passwd'); a query may read only the declared tables: contacts"),
            ("feedback", {"folder": "../../../etc"}, "feedback.folder '../../../etc' climbs out of the data folder"),
        ):
            attrs = yaml.safe_load((DEFS_DIR / PROJECT / "defs.yaml").read_text())
            attrs["attributes"][key] = value
            bad_yaml = tmp_path / "defs.yaml"
            bad_yaml.write_text(yaml.safe_dump(attrs, sort_keys=False))
            with pytest.raises(ProjectConfigError) as err:
                load_project_config(bad_yaml)
            assert expected in str(err.value) and f"{bad_yaml} line " in str(err.value), str(err.value)
            refused.append(expected.split(" ")[0])
        # the YAML is fine, the file it names is a symlink pointing out of the data folder
        outside = tmp_path / "outside.csv"
        shutil.copy(d / EXPORT, outside)
        (d / EXPORT).unlink()
        (d / EXPORT).symlink_to(outside)
        run = execute(good.config, d)
        failures = [str(e.step_failure_data.user_failure_data.description if e.step_failure_data.user_failure_data
                        else e.step_failure_data.error.message)
                    for e in run.result.all_events if e.is_step_failure]
        row["observed"] = f"YAML refused for {', '.join(refused)}; symlink run: " + (failures[0][:200] if failures else
                                                                                        "NOT STOPPED")
        assert not run.success and failures
        assert "source.path 'linkedin/lemlist_export.csv'" in failures[0] and str(outside) in failures[0]
        assert "outside the data folder" in failures[0]
        assert "raw_contacts" not in run.materialized and "published" not in run.materialized
        after = fingerprint(d)
        assert after == before, f"published warehouse changed: {before} -> {after}"
        row["observed"] += "; published unchanged"


def test_14_spreadsheet_formulas_never_reach_the_call_list(good, tmp_path):
    with case(CASES[13], "call_list.csv: every text cell starting with = + - @ tab CR is prefixed with '; "
                         "parquet keeps the raw values; numbers stay numbers") as row:
        d = good.copy(tmp_path)
        export = good.export.copy()
        hostile = ["=1+2", "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "-2+3", "\t=2+2", "\r=3+3"]
        rows = good.unique_rows(len(hostile))
        for i, value in zip(rows, hostile):
            export.loc[i, ["companyName", "jobTitle", "location"]] = value
        # quoted, as a CRM writes a value holding a carriage return (unquoted, it would end the record)
        path = write_export(d, lambda p: export.to_csv(p, index=False, quoting=csv.QUOTE_ALL))
        run = execute(good.config, d)
        row["observed"] = "run succeeded" if run.success else f"blocked by {run.blocked_by()}"
        assert run.success, run.blocked_by()
        folder = d / "reports" / PROJECT / "call_list"
        with (folder / "call_list.csv").open(newline="") as fh:
            written = list(csv.reader(fh))
        header, body = written[0], written[1:]
        numeric = {"rank", "probability", "decile", "company_size"}
        live = [(c, v) for r in body for c, v in zip(header, r)
                if c not in numeric and v.lstrip(" \t\r\n").startswith(("=", "+", "-", "@"))]
        assert live == [], live[:5]
        ids = set(export.loc[rows, "_id"])
        shown = {r[header.index("lead_id")]: r for r in body if r[header.index("lead_id")] in ids}
        quarantined = run.query(f"SELECT _id, _quarantine_reason AS r FROM {PROJECT}.quarantined_contacts")
        assert set(shown) == ids, quarantined[quarantined._id.isin(ids - set(shown))].to_dict("records")
        for r in shown.values():
            for column in ("company_name", "job_title", "location"):
                assert r[header.index(column)].startswith("'"), (column, r[header.index(column)])
        raw = pd.read_parquet(folder / "call_list.parquet").set_index("lead_id").loc[list(shown)]
        given = export.set_index("_id").loc[list(shown), "companyName"].str.strip()
        assert raw.company_name.tolist() == given.tolist(), "the parquet copy keeps the raw values"
        row["observed"] += (f"; {len(shown)} hostile rows x 3 columns all written as text, e.g. "
                            f"{next(iter(shown.values()))[header.index('company_name')]!r}; parquet raw")
        account(row, run, file_rows(path))


# -- the table ------------------------------------------------------------------------------------


def test_18_emails_and_phones_in_undeclared_columns_block_and_never_travel(good, tmp_path):
    with case(next(c for c in CASES if c.startswith("18 ")),
              "blocked by no_undeclared_personal_data naming company_name and job_title with their shares and "
              "example rows; published unchanged; no email or phone in the event log, check metadata or any file "
              "the run wrote") as row:
        d = good.copy(tmp_path)
        before = fingerprint(d)
        export = good.export.copy()
        mailed = good.unique_rows(24)  # 4% of the 600 contacts
        emails = [f"leak.person{i}@inbox-mail.example" for i in range(len(mailed))]
        export.loc[mailed, "companyName"] = emails
        phones = ["+1 415 555 0134", "(415) 555-0177", "+33 6 12 34 56 78", "415.555.0199", "06 98 76 54 32",
                  "+44 20 7946 0958"]
        called = [r for r in good.unique_rows(len(mailed) + len(phones)) if r not in set(mailed)][:len(phones)]
        export.loc[called, "jobTitle"] = phones
        path = write_export(d, lambda p: export.to_csv(p, index=False))
        started = time.time()
        run = execute(good.config, d)
        assert_blocked(row, run, before, "no_undeclared_personal_data")
        said = run.failed_checks["no_undeclared_personal_data"]
        counts = run.query(
            f"SELECT count(company_name) AS n_company, count(*) FILTER (company_name LIKE '%@inbox-mail.example') AS "
            f"emails, count(job_title) AS n_title, count(*) FILTER (job_title IN "
            f"({', '.join(repr(p) for p in phones)})) AS phones FROM {PROJECT}.validated_contacts").iloc[0]
        assert counts.emails >= 20 and counts.phones >= 4, counts.to_dict()
        assert (f"'company_name' ('companyName' in the file) holds email addresses in "
                f"{share_text(int(counts.emails), int(counts.n_company))}, e.g. lemlist_export.csv row ") in said, said
        assert (f"'job_title' ('jobTitle' in the file) holds phone numbers in "
                f"{share_text(int(counts.phones), int(counts.n_title))}, e.g. lemlist_export.csv row ") in said, said
        assert "add company_name, job_title to `personal_data:` in defs.yaml" in said
        assert not run.materialized & {"labels", "features", "data_profile", "candidate_models", "lead_scores"}
        # nowhere a value: the event log (every event, metadata included, and log messages) ...
        needles = [*emails, *phones, "@inbox-mail.example"]
        events = "\n".join(dg.serialize_value(e) for e in run.result.all_events) + "\n".join(run.logs)
        assert "holds email addresses in" in events  # what was scanned holds the check's description
        assert [n for n in needles if n in events] == []
        # ... and every file written under the data directory: reports, call list, MLflow store and
        # artifacts (the copy's, and those logged next to the GOOD directory during this run); the
        # export and the warehouse files hold the source rows by design
        written = [f for f in d.rglob("*") if f.is_file() and f != path and ".duckdb" not in f.name]
        written += [f for f in good.data_dir.rglob("*") if f.is_file() and f.stat().st_mtime >= started
                    and ".duckdb" not in f.name]
        leaked = [str(f) for f in written for n in needles if n.encode() in f.read_bytes()]
        assert leaked == [], leaked
        examples = said.split("e.g. ", 1)[1].split(";")[0]
        row["observed"] += f"; says: {said.split(', e.g.')[0]}, e.g. {examples[:70]}...; {len(written)} files " \
                           "and every event scanned: no email or phone"
        account(row, run, file_rows(path))


def _case(number: int) -> str:
    return next(c for c in CASES if c.startswith(f"{number} "))


def promoting(config: ProjectConfig) -> ProjectConfig:
    """The config with a champion that counts as aged at once: a challenger near it is promoted."""
    return config.model_copy(update={"promotion": config.promotion.model_copy(update={"max_champion_age_days": 0})})


_KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from leadscore_assets_tests.assets import test_fault_catalogue as fc
from leadscore_assets.testing.runs import DEFS_DIR
from leadscore_assets.lib.project.config import load_project_config
import leadscore_assets.resources.mlflow_store as mlflow_store_module
from leadscore_assets.resources.warehouse import Warehouse

where = sys.argv[2]
if where == "after_swap":  # the file is swapped in, nothing after it runs: the alias and call list stay
    swap = Warehouse.publish
    def publish_then_killed(self, *args, **kwargs):
        swap(self, *args, **kwargs)
        print("killed after the swap", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    Warehouse.publish = publish_then_killed
else:  # in champion_model, inside its MLflow serving run: parent and child runs stay RUNNING
    def killed(*args, **kwargs):
        print("killed in champion_model", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    mlflow_store_module.serving_model = killed  # what MlflowStore.log_serving_model logs
config = fc.promoting(fc.fast(load_project_config(DEFS_DIR / fc.PROJECT / "defs.yaml")))
# a list that differs from the GOOD run's (one context column fewer), so a stale list shows
config = config.model_copy(update={"call_list": config.call_list.model_copy(
    update={"columns": config.call_list.columns[:-1]})})
fc.execute(config, Path(sys.argv[1]))
print("not killed", flush=True)
"""


def run_killed(data_dir: Path, where: str) -> str:
    """A real run of the pipeline in another process, killed with SIGKILL at `where`."""
    done = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(data_dir), where], capture_output=True, text=True,
                          timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stdout[-500:], done.stderr[-2000:])
    return done.stdout.strip().splitlines()[-1]


def champion_version(data_dir: Path) -> str | None:
    uri = f"sqlite:///{(data_dir / 'mlflow' / 'mlflow.db').resolve()}"
    found = current_champion(MlflowClient(tracking_uri=uri, registry_uri=uri), f"leadscore-{PROJECT}")
    return str(found.version) if found is not None else None


def published_state(data_dir: Path) -> dict:
    """What the published file says the alias and the call list are, and what they are."""
    with duckdb.connect(str(warehouse_file(data_dir, PROJECT)), read_only=True) as conn:
        decided = champion_of(conn, PROJECT)
        recorded = dict(conn.execute("SELECT suffix, sha256 FROM _leadscore.call_list_files").fetchall()) \
            if conn.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = '_leadscore' "
                            "AND table_name = 'call_list_files'").fetchone()[0] else {}
    calls = data_dir / "reports" / PROJECT / "call_list" / "call_list.csv"
    return {"decided": decided, "alias": champion_version(data_dir), "recorded_csv": recorded.get("csv"),
            "call_list_csv": sha256_of(calls) if calls.exists() else None}


def published_metadata(run: Run) -> dict:
    [event] = [e for e in run.result.get_asset_materialization_events() if e.asset_key.path[-1] == "published"]
    return event.materialization.metadata


def test_15_killed_between_the_warehouse_swap_and_the_alias_is_repaired_by_the_next_run(good, tmp_path):
    with case(_case(15), "a run SIGKILLed right after the swap leaves the alias and call list behind the "
                         "published file; the next run's start repairs both, saying so in its log and metadata") as row:
        d = good.copy(tmp_path)
        before = published_state(d)
        assert run_killed(d, "after_swap") == "killed after the swap"
        killed = published_state(d)
        assert killed["decided"] != before["decided"] and killed["alias"] == before["alias"], killed
        assert killed["call_list_csv"] != killed["recorded_csv"]
        row["observed"] = (f"after the kill: published decisions name v{killed['decided']}, alias still "
                           f"v{killed['alias']}, call list not the recorded one")
        run = execute(good.config, d)
        repaired = [m for m in run.logs if m.startswith("repaired: ")]
        assert run.success, run.blocked_by()
        assert any("champion alias" in m and f"to v{killed['decided']}" in m for m in repaired), repaired
        assert any("call_list.csv replaced" in m for m in repaired), repaired
        assert published_metadata(run)["repaired_at_start"].value == [m.removeprefix("repaired: ") for m in repaired]
        after = published_state(d)
        assert after["alias"] == after["decided"] and after["call_list_csv"] == after["recorded_csv"], after
        row["observed"] += f"; next run: {len(repaired)} repairs logged ({repaired[0][:90]}...), run succeeded, " \
                           f"alias v{after['alias']} = published decision, call list = recorded"
        account(row, run, file_rows(d / EXPORT))


def test_16_corrupt_published_warehouse_blocks_at_once_and_rolls_back_with_one_command(good, tmp_path):
    with case(_case(16), "the first step fails naming the file and the rollback command; after that command "
                         "the next run succeeds, the alias and call list in line with the restored file") as row:
        d = good.copy(tmp_path)
        second = execute(good.config, d)  # a second publish: the GOOD file becomes the last good copy
        assert second.success, second.blocked_by()
        published = warehouse_file(d, PROJECT)
        assert (published.parent / "last_good.duckdb").exists()
        data = bytearray(published.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 65536] = bytes(range(256)) * 256  # a damaged stretch in the middle of the file
        published.write_bytes(bytes(data))
        started = time.perf_counter()
        blocked = execute(good.config, d)
        seconds = time.perf_counter() - started
        failures = [str(e.step_failure_data.user_failure_data.description if e.step_failure_data.user_failure_data
                        else e.step_failure_data.error.message)
                    for e in blocked.result.all_events if e.is_step_failure]
        assert not blocked.success and failures
        command = f"python -m leadscore_assets.rollback {PROJECT} --data-dir {d.resolve()}"
        assert str(published.resolve()) in failures[0] and "is corrupt" in failures[0], failures[0]
        assert command in failures[0], failures[0]
        assert not blocked.materialized, blocked.materialized  # stopped at the first step
        assert not warehouse_file(d, PROJECT, blocked.run_id).exists()
        row["observed"] = f"blocked in {seconds:.0f} s: ...{failures[0][failures[0].index('is corrupt'):][:60]}...; " \
                          "names the file and `python -m leadscore_assets.rollback linkedin --data-dir ...`"
        done = subprocess.run([sys.executable, "-m", "leadscore_assets.rollback", PROJECT, "--data-dir", str(d)],
                              capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 0, done.stderr[-2000:]
        restored = published_state(d)
        assert restored["alias"] == restored["decided"] and restored["call_list_csv"] == restored["recorded_csv"]
        assert (published.parent / "rolled_back.duckdb").exists()
        assert tables_only(fingerprint(d)) == tables_only(good.fingerprint)  # the GOOD run's tables again
        row["observed"] += f"; rollback: {done.stdout.strip().splitlines()[0][:80]}..."
        run = execute(good.config, d)
        assert run.success, run.blocked_by()
        row["observed"] += "; next run succeeded"
        account(row, run, file_rows(d / EXPORT))


def test_17_a_failed_runs_leftovers_are_cleaned_by_the_next_run(good, tmp_path):
    with case(_case(17), "the next run ends the killed run's MLflow runs as FAILED and keeps only the newest "
                         f"{KEEP_STAGED} staged copies and {KEEP_FAILED_REPORTS} failed runs' report folders") as row:
        d = good.copy(tmp_path)
        staged = d / "warehouse" / PROJECT / "staged"
        reports = d / "reports" / PROJECT
        staged.mkdir(parents=True, exist_ok=True)
        for i in range(5):  # older failed runs' leftovers, oldest first
            old = time.time() - 3600 * (10 - i)
            shutil.copyfile(warehouse_file(d, PROJECT), staged / f"old-{i}.duckdb")
            (reports / "drift" / f"old-{i}").mkdir(parents=True)
            (reports / "drift" / f"old-{i}" / "feature_drift.html").write_text("<html>" + "x" * 100_000)
            (reports / "call_list" / f"old-{i}.csv").write_text("rank,lead_id\n")
            for path in (staged / f"old-{i}.duckdb", reports / "drift" / f"old-{i}" / "feature_drift.html",
                         reports / "drift" / f"old-{i}", reports / "call_list" / f"old-{i}.csv"):
                os.utime(path, (old, old))
        assert run_killed(d, "in_champion_model") == "killed in champion_model"
        uri = f"sqlite:///{(d / 'mlflow' / 'mlflow.db').resolve()}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.get_experiment_by_name(f"leadscore/{PROJECT}").experiment_id
        running = [r.info.run_id for r in client.search_runs([experiment], "attributes.status = 'RUNNING'")]
        killed_runs = {p.stem for p in staged.glob("*.duckdb")} - {f"old-{i}" for i in range(5)}
        assert len(running) >= 2 and len(killed_runs) == 1, (running, killed_runs)
        [killed] = killed_runs
        assert (reports / "drift" / killed).is_dir()
        row["observed"] = (f"killed run left {len(running)} MLflow runs RUNNING, its staged copy and drift reports; "
                           f"with 5 older failed runs' leftovers: {len(list(staged.glob('*.duckdb')))} staged copies")
        run = execute(good.config, d)
        assert run.success, run.blocked_by()
        assert all(client.get_run(r).info.status == "FAILED" for r in running)
        assert any(f"ended {len(running)} MLflow run(s) left RUNNING by a killed run" in m for m in run.logs), run.logs
        left = sorted(p.stem for p in staged.glob("*.duckdb"))
        assert left == sorted([killed, "old-3", "old-4"]), left  # the newest KEEP_STAGED others
        with duckdb.connect(str(warehouse_file(d, PROJECT)), read_only=True) as conn:
            published_runs = {r[0] for r in conn.execute(f"SELECT dagster_run_id FROM {PROJECT}.model_decisions").fetchall()}
        failed_reports = {p.name for p in (reports / "drift").iterdir()} - published_runs
        assert failed_reports == {killed, "old-3", "old-4"}, failed_reports
        calls = sorted(p.name for p in (reports / "call_list").iterdir())
        assert calls == ["call_list.csv", "call_list.parquet", "kept"], calls  # kept: the recorded lists' copies
        kept = {p.stem for p in (reports / "call_list" / "kept").iterdir()}
        assert kept and not kept & {killed, "old-3", "old-4"}, kept  # never a failed run's list
        row["observed"] += (f"; next run succeeded, ended {len(running)} runs as FAILED, kept staged {left}, "
                            f"failed runs' drift folders {sorted(failed_reports)}")
        account(row, run, file_rows(d / EXPORT))


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def test_catalogue_table(capsys):
    columns = ["case", "expected", "observed", "input rows", "validated", "quarantined", "accounted", "read from",
               "seconds", "result"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sorted(CATALOGUE, key=lambda r: CASES.index(r["case"])):
        row = {**row, "result": "PASS" if row["passed"] else "FAIL"}
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    lines.append(f"\nfault catalogue: {len(CATALOGUE)} cases, module ran {time.perf_counter() - STARTED:.0f} s")
    with capsys.disabled():
        print("\n\n" + "\n".join(lines) + "\n")
    assert CATALOGUE, "no case recorded"
    assert [r["case"] for r in CATALOGUE if not r["passed"]] == []
    assert sorted(r["case"] for r in CATALOGUE) == sorted(CASES)
