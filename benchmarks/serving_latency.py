"""Latency and throughput of the served champion, over HTTP, from MLflow's own scoring server.

Builds the linkedin project on demo data (the way the tests do: in-process, its own YAML), then
starts `mlflow models serve -m models:/leadscore-linkedin@champion --env-manager local` on
loopback and measures, with reasons on and off (the request's `params: {"reasons": ...}`):

- one lead per request: p50 / p99 latency over --requests requests (a different lead each time);
- batches of --batch-size leads: leads per second over --batches requests.

Targets (2 cores): one lead p50 <= 25 ms; batches >= 20,000 leads/s without reasons.

    .venv/bin/python benchmarks/serving_latency.py                 # builds the project (~1-2 min)
    .venv/bin/python benchmarks/serving_latency.py --data-dir data  # an existing data/ with a champion
    .venv/bin/python benchmarks/serving_latency.py --stages         # also: where a batch's time goes, in-process
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from leadscore_assets.testing.servers import model_server, raw_records  # noqa: E402

TARGET_P50_MS, TARGET_LEADS_PER_S = 25.0, 20_000


def build(data_dir: Path, rows: int, fast_models: bool) -> None:
    from leadscore_assets.demo_data import linkedin
    from leadscore_assets.lib.project.config import load_project_config
    from leadscore_assets.testing.runs import DEFS_DIR, fast, materialize_project

    linkedin.write(data_dir, rows=rows, seed=7)
    config = load_project_config(DEFS_DIR / "linkedin" / "defs.yaml")
    result = materialize_project(fast(config) if fast_models else config, data_dir)
    assert result.success


def post(url: str, body: bytes) -> bytes:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        return resp.read()


def single_lead(url: str, records: list[dict], n: int, reasons: bool) -> np.ndarray:
    bodies = [json.dumps({"dataframe_records": [records[i % len(records)]], "params": {"reasons": reasons}}).encode()
              for i in range(n)]
    for body in bodies[:10]:  # warm-up
        post(url, body)
    times = []
    for body in bodies:
        start = time.perf_counter()
        post(url, body)
        times.append(time.perf_counter() - start)
    return np.array(times) * 1000


def batches(url: str, records: list[dict], size: int, n: int, reasons: bool, clients: int = 1) -> tuple[float, float]:
    """(leads per second, mean seconds per batch) over n batches of `size` distinct leads, sent by
    `clients` concurrent clients (use as many as server workers)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    bodies = []
    for _ in range(n):
        pick = rng.choice(len(records), size=min(size, len(records)), replace=False)
        bodies.append(json.dumps({"dataframe_records": [records[i] for i in pick], "params": {"reasons": reasons}},
                                 default=str).encode())
    post(url, bodies[0])  # warm-up
    def send(body: bytes) -> None:
        out = json.loads(post(url, body))["predictions"]
        assert len(out) == min(size, len(records)) and all(o["error"] is None for o in out)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, bodies))
    elapsed = time.perf_counter() - start
    return n * min(size, len(records)) / elapsed, elapsed * clients / n


def stages(model_uri: str, tracking_uri: str, records: list[dict], size: int, n: int) -> dict[str, float]:
    """Median milliseconds per stage of one batch without reasons, in-process, as the scoring server
    runs it: JSON parsing and MLflow's typing and schema enforcement, then the model's own steps."""
    import mlflow
    from mlflow.models.utils import _enforce_schema
    from mlflow.pyfunc.scoring_server import invocations, predictions_to_json
    from mlflow.utils.proto_json_utils import dataframe_from_parsed_json

    from leadscore_assets.lib.scoring.serving import FILE, REQUEST, ROW, _as_any_typed, _restore_dtypes
    from leadscore_assets.lib.validation import validate, validate_in_full

    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(model_uri)
    schema, scorer = model.metadata.get_input_schema(), model.unwrap_python_model().scorer
    rng = np.random.default_rng(1)
    bodies = [json.dumps({"dataframe_records": [records[i] for i in rng.choice(len(records), min(size, len(records)),
                                                                                 replace=False)],
                          "params": {"reasons": False}}, default=str) for _ in range(n)]
    parsed = [json.loads(b)["dataframe_records"] for b in bodies]
    frames = [dataframe_from_parsed_json(p, "records", schema) for p in parsed]
    enforced = [_enforce_schema(f, schema) for f in frames]
    raws = [_restore_dtypes(_as_any_typed(e.reset_index(drop=True))) for e in enforced]
    lined = [r.assign(**{ROW: np.arange(1, len(r) + 1), FILE: REQUEST}) for r in raws]
    results = [validate(r, scorer.config) for r in lined]
    assert all(len(r.valid) == len(b) for r, b in zip(results, raws)), "every lead of a benchmark batch is valid"
    typed = [r.valid for r in results]
    features = [scorer.features(t)[scorer.fs.columns] for t in typed]
    answers = [scorer.score(_as_any_typed(e), with_reasons=False) for e in enforced]
    steps = {
        "parse JSON (the server parses each request twice)": lambda i: json.loads(bodies[i]),
        "records -> DataFrame (typed by the signature)":
            lambda i: dataframe_from_parsed_json(parsed[i], "records", schema),
        "MLflow schema enforcement": lambda i: _enforce_schema(frames[i], schema),
        "as an Any column would be (_as_any_typed, _restore_dtypes)":
            lambda i: _restore_dtypes(_as_any_typed(enforced[i].reset_index(drop=True))),
        "validate_in_full (the full route: any lead may be invalid)": lambda i: validate_in_full(lined[i], scorer.config),
        "validate (its clean-batch shortcut: every lead valid)": lambda i: validate(lined[i], scorer.config),
        "features (serving: no labels, no splits)": lambda i: scorer.features(typed[i]),
        "predict_proba": lambda i: scorer.pipeline.predict_proba(features[i]),
        "LeadScorer.score (all model steps)": lambda i: scorer.score(raws[i], with_reasons=False),
        "answer -> JSON": lambda i: predictions_to_json(answers[i], io.StringIO()),
        "whole request (scoring_server.invocations)":
            lambda i: invocations(bodies[i], "application/json", model, schema),
    }
    out = {}
    for name, step in steps.items():
        step(0)
        times = []
        for i in range(n):
            start = time.perf_counter()
            step(i)
            times.append(time.perf_counter() - start)
        out[name] = float(np.median(times) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="an existing data directory with a linkedin champion")
    parser.add_argument("--rows", type=int, default=2500, help="demo contacts when building (default 2500)")
    parser.add_argument("--fast-models", action="store_true", help="build with dummy + logistic only, no search")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of the model server")
    parser.add_argument("--clients", type=int, default=None, help="concurrent batch clients (default: --workers)")
    parser.add_argument("--stages", action="store_true", help="also time a batch's stages in-process (median ms)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(tmp) / "data"
            t0 = time.perf_counter()
            build(data_dir, args.rows, args.fast_models)
            print(f"built linkedin on {args.rows} demo contacts in {time.perf_counter() - t0:.0f} s")
        data_dir = data_dir.resolve()
        records = raw_records(data_dir, "linkedin", 100_000)
        tracking_uri = f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}"
        import mlflow

        champion = mlflow.MlflowClient(tracking_uri).get_model_version_by_alias("leadscore-linkedin", "champion")
        print(f"serving models:/leadscore-linkedin@champion (v{champion.version}, "
              f"{champion.tags.get('leadscore.candidate')}), {len(records)} raw leads, {args.workers} worker(s), "
              f"{args.clients or args.workers} batch client(s)")
        if args.stages:
            for name, ms in stages("models:/leadscore-linkedin@champion", tracking_uri, records, args.batch_size,
                                   max(args.batches, 5)).items():
                print(f"  in-process, batch of {args.batch_size}: {name:60s} {ms:6.1f} ms")
        with model_server("models:/leadscore-linkedin@champion", tracking_uri, Path(tmp) / "server.log",
                          workers=args.workers) as base:
            url = f"{base}/invocations"
            results = {}
            for reasons in (True, False):
                ms = single_lead(url, records, args.requests, reasons)
                rate, per_batch = batches(url, records, args.batch_size, args.batches, reasons,
                                          clients=args.clients or args.workers)
                results[reasons] = (ms, rate)
                print(f"reasons {'on ' if reasons else 'off'}: one lead p50 {np.percentile(ms, 50):6.1f} ms, "
                      f"p99 {np.percentile(ms, 99):6.1f} ms ({args.requests} requests); "
                      f"batches of {args.batch_size}: {rate:8,.0f} leads/s ({per_batch * 1000:.0f} ms per batch)")
        p50 = min(np.percentile(results[r][0], 50) for r in (True, False))
        p50_on = np.percentile(results[True][0], 50)
        rate_off = results[False][1]
        print(f"target one lead p50 <= {TARGET_P50_MS:g} ms: reasons on {p50_on:.1f} ms "
              f"({'met' if p50_on <= TARGET_P50_MS else 'MISSED'}), best {p50:.1f} ms "
              f"({'met' if p50 <= TARGET_P50_MS else 'MISSED'})")
        print(f"target batches >= {TARGET_LEADS_PER_S:,} leads/s without reasons: {rate_off:,.0f} "
              f"({'met' if rate_off >= TARGET_LEADS_PER_S else 'MISSED'})")


if __name__ == "__main__":
    main()
