"""Scoring with reasons in more than one process: the same `Scorer.answer`, pieces spread over cores.

Explaining a lead (TreeSHAP, then wording its reasons) is mostly Python, so threads share one
core (two threads scored 100,000 sessions in 0.84x the time of one). Here a pool of `workers`
processes scores the pieces while the calling process hands them out, takes the answers back in
the order the pieces went in and writes them (in lead_scores, to DuckDB) as before. Measured on
the 472,871-session champion: after a start-up of about 3 s, two workers answered a 50,000-lead
piece every 1.65 s against 2.77 s in one process.

Worker processes are started with `spawn`, never `fork`: the caller may hold DuckDB, MLflow and
OpenMP threads, and a forked child of a process that ran OpenMP can hang in its first parallel
region. Each worker reads the scorer once, from a file the caller pickled it into, runs its model
libraries on one thread, and then receives only pieces. (Handed over as a start-up argument, the
scorer travelled inside the pickled process object, which the caller writes into a pipe that the
child empties only once its own imports are done: the caller waited for each worker's start-up in
turn, 1.8 s each, before handing out a piece. On 200,000 leads: 13.8-14.2 s -> 11.3-11.5 s.)
Starting one costs its imports, so this pays only for many leads (`scoring_workers`). As with any spawned process, a script that reaches this must
guard its entry point (`if __name__ == "__main__":`); Dagster's and pytest's do.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor

import pandas as pd

# Below this many leads to explain, scoring stays in the calling process: a worker's start-up
# (imports of the model libraries, a few seconds) would cost more than it saves.
PARALLEL_FROM_LEADS = 150_000

_SCORER = None  # the worker process's scorer, set once by `_start`
_LIMITS = None  # its thread limits, kept for its lifetime


def scoring_workers(leads: int) -> int:
    """Processes to score `leads` leads with reasons: two from PARALLEL_FROM_LEADS on a machine
    with two or more cores, else one (the caller's own)."""
    return 2 if leads >= PARALLEL_FROM_LEADS and (os.cpu_count() or 1) >= 2 else 1


def _start(scorer_file: str) -> None:
    global _SCORER, _LIMITS
    from threadpoolctl import threadpool_limits

    _LIMITS = threadpool_limits(1)  # one core per worker: OpenMP (tree models) and BLAS alike
    with open(scorer_file, "rb") as f:
        _SCORER = pickle.load(f)


def _score(piece: pd.DataFrame, with_reasons: bool) -> pd.DataFrame:
    return _SCORER.answer(piece, with_reasons)


def score_in_processes(scorer, pieces: Iterable[pd.DataFrame], with_reasons: bool, workers: int
                       ) -> Iterator[pd.DataFrame]:
    """`scorer.answer(piece, with_reasons)` for each piece, in order, in a pool of `workers`
    processes: up to two pieces per worker are handed out ahead, so a worker never waits for the
    caller to take an answer (at most 2 x `workers` pieces in memory)."""
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="leadscore-scorer-") as tmp:  # private to this user (0700)
        scorer_file = os.path.join(tmp, "scorer.pkl")
        with open(scorer_file, "wb") as f:
            pickle.dump(scorer, f, protocol=pickle.HIGHEST_PROTOCOL)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(scorer_file,)) as pool:
            ahead: deque = deque()
            for piece in pieces:
                ahead.append(pool.submit(_score, piece, with_reasons))
                if len(ahead) >= 2 * workers:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
