#!/usr/bin/env bash
# Build .venv-bench: the AutoML peers (AutoGluon, FLAML) for benchmarks/real_tables.py, in their
# own venv because they do not co-install with the project's pins (see benchmarks/automl_peers.py).
# CPU only: AutoGluon without extras (no torch; its tabular neural nets are skipped), with the
# gradient-boosting libraries its default preset uses installed as plain packages.
#     scripts/bench_env.sh          # then: .venv/bin/python benchmarks/real_tables.py (peers on)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv-bench/bin/python ] || "$PY" -m venv .venv-bench
.venv-bench/bin/pip install -q --disable-pip-version-check --upgrade pip
# lightgbm / xgboost / catboost: the boosted-tree models of AutoGluon's default preset (its
# [lightgbm,xgboost,catboost] extras, without the [fastai]/torch ones); FLAML's [automl] extra
# brings lightgbm and xgboost (<3.0) too. The bounds satisfy both AutoGluon 1.6 (its extras) and FLAML.
.venv-bench/bin/pip install -q --disable-pip-version-check \
    "autogluon.tabular" "flaml[automl]" "pyarrow" "pandas" \
    "lightgbm>=4.0,<4.8" "xgboost>=2.1.1,<3.0" "catboost>=1.2,<1.3"
if .venv-bench/bin/pip show -q torch >/dev/null 2>&1; then
    echo "bench_env.sh: torch got installed into .venv-bench; it must not be" >&2
    exit 1
fi
.venv-bench/bin/python -c "import autogluon.tabular, flaml, pyarrow; print('.venv-bench ready: autogluon', \
autogluon.tabular.__version__, '| flaml', flaml.__version__)"
