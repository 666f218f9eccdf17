"""Run a job from the command line and show its progress: one line per finished step.

    python -m leadscore_assets.run_progress --log LOG [--job score_all_sources]

The job runs as `dg launch --job JOB -m leadscore_assets.definitions` (`dagster job execute`
where `dg` is not installed), on the job's own executor (the main job: multiprocess, projects
side by side), with Dagster's whole log written to LOG. This process reads LOG as it grows and
prints, elapsed time first:

     0:12  email_crm     started (load_source)
     0:13  email_crm     load_source                ok      0.5 s   1 step done
     2:40  email_crm     candidate_models           FAILED  61.2 s  ...
     3:40  still running: email_crm candidate_models (1:02), linkedin features (0:20)

and at the end the run's outcome, one line per project (steps done, failed), and the warnings the
log holds (Python's, libraries' logged WARNING lines, Dagster's), counted by kind rather than
repeated. Exit status: the job's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

MODULE = "leadscore_assets.definitions"
HEARTBEAT_S = 60.0  # a line naming what is running when nothing else was printed for this long

# 2026-12-06 10:54:18 +0000 - dagster - DEBUG - <job> - <run id> - [<pid> - ][<step> - ]EVENT - message
EVENT = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} - dagster - \w+ - (?P<job>\S+) - (?P<run>[0-9a-f-]{36}) - "
    r"(?:\d+ - )?(?:(?P<step>[A-Za-z0-9_]+) - )?(?P<event>[A-Z][A-Z_]+) - (?P<message>.*)$")
# /path/to/module.py:123: FutureWarning: message
PY_WARNING = re.compile(r"^(?P<where>\S+?\.py):\d+: (?P<kind>[A-Za-z_]*Warning): (?P<message>.*)$")
# 2026/12/06 13:16:48 WARNING mlflow.sklearn: message (a library's logger, not Python's warnings)
LOGGED_WARNING = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d WARNING (?P<where>\S+?): (?P<message>.*)$")
STEP_TIME = re.compile(r" in (?P<time>[\d.]+(?:ms|s|m[\d.]*s?)?)\.?$")


def projects() -> list[str]:
    """The project folders under defs/ (without importing the code location)."""
    spec = importlib.util.find_spec("leadscore_assets.defs")
    roots = [Path(p) for p in (spec.submodule_search_locations or [])] if spec else []
    return sorted({p.name for r in roots for p in r.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))},
                  key=len, reverse=True)


def split_step(step: str, names: list[str]) -> tuple[str, str]:
    """`email_crm__labels` -> ('email_crm', 'labels'); a step of no project -> ('-', step)."""
    for name in names:  # longest first, so a project named like another's prefix is found
        if step.startswith(name + "_"):
            return name, step[len(name):].lstrip("_")
    return "-", step


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def step_seconds(message: str) -> str:
    """'Finished execution of step "x" in 1m12s.' -> '72.0 s' (Dagster's own wording otherwise)."""
    found = STEP_TIME.search(message)
    if not found:
        return ""
    text = found["time"]
    if text.endswith("ms"):
        return f"{float(text[:-2]) / 1000:.1f} s"
    minutes = re.fullmatch(r"(\d+)m([\d.]+)s?", text)
    if minutes:
        return f"{int(minutes[1]) * 60 + float(minutes[2]):.1f} s"
    return f"{float(text.rstrip('s')):.1f} s" if re.fullmatch(r"[\d.]+s?", text) else text


@dataclass
class Progress:
    """What the log has said so far, and the lines to print about it."""

    names: list[str]
    start: float = field(default_factory=time.monotonic)
    out: object = sys.stdout
    run_id: str | None = None
    outcome: str | None = None  # RUN_SUCCESS / RUN_FAILURE
    running: dict[str, float] = field(default_factory=dict)  # step -> when it started (monotonic)
    done: Counter = field(default_factory=Counter)  # project -> steps finished
    failed: dict[str, list[str]] = field(default_factory=dict)  # project -> failed steps
    skipped: Counter = field(default_factory=Counter)
    started: set = field(default_factory=set)  # projects seen
    warnings: Counter = field(default_factory=Counter)  # (kind, where, message) -> times
    last_print: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        print(f"{clock(time.monotonic() - self.start):>7}  {text}", file=self.out, flush=True)
        self.last_print = time.monotonic()

    def line(self, line: str) -> None:
        warning = PY_WARNING.match(line)
        if warning:
            where = warning["where"].split("site-packages/")[-1].split("/")[0]
            message = re.sub(r"\x1b\[[0-9;]*m", "", warning["message"])  # MLflow colours its warnings
            self.warnings[(warning["kind"], where, message[:110])] += 1
            return
        logged = LOGGED_WARNING.match(line)
        if logged:
            self.warnings[("logged WARNING", logged["where"], logged["message"][:110])] += 1
            return
        found = EVENT.match(line)
        if not found:
            return
        if " - dagster - WARNING - " in line[:60]:  # a Dagster event or one of our steps' log.warning
            self.warnings[("Dagster WARNING", split_step(found["step"] or "-", self.names)[0], found["message"][:110])] += 1
        event, step = found["event"], found["step"]
        if event == "RUN_START" and self.run_id is None:
            self.run_id = found["run"]
            self.say(f"run {self.run_id} of {found['job']} started")
        elif event in ("RUN_SUCCESS", "RUN_FAILURE", "PIPELINE_SUCCESS", "PIPELINE_FAILURE"):
            self.outcome = "RUN_SUCCESS" if event.endswith("SUCCESS") else "RUN_FAILURE"
        elif step and event == "STEP_START":
            project, name = split_step(step, self.names)
            self.running[step] = time.monotonic()
            if project not in self.started:
                self.started.add(project)
                self.say(f"{project:<13} started ({name})")
        elif step and event in ("STEP_SUCCESS", "STEP_FAILURE"):
            project, name = split_step(step, self.names)
            self.running.pop(step, None)
            ok = event == "STEP_SUCCESS"
            if ok:
                self.done[project] += 1
            else:
                self.failed.setdefault(project, []).append(name)
            n = self.done[project]
            detail = f"{n} step{'s' if n != 1 else ''} done" if ok else found["message"][:160]
            self.say(f"{project:<13} {name:<26} {'ok' if ok else 'FAILED':<7} {step_seconds(found['message']):>7}  {detail}")
        elif step and event == "STEP_SKIPPED":
            project, _ = split_step(step, self.names)
            self.skipped[project] += 1

    def heartbeat(self) -> None:
        if self.running and time.monotonic() - self.last_print >= HEARTBEAT_S:
            now = time.monotonic()
            parts = [f"{' '.join(split_step(s, self.names))} ({clock(now - t)})" for s, t in sorted(self.running.items())]
            self.say("still running: " + ", ".join(parts))

    def summary(self) -> list[str]:
        lines = []
        for project in sorted(self.started | set(self.failed)):
            text = f"{project}: {self.done[project]} steps ok"
            if self.failed.get(project):
                text += f", FAILED: {', '.join(self.failed[project])}"
            if self.skipped[project]:
                text += f", {self.skipped[project]} skipped"
            lines.append(text)
        return lines

    def warnings_summary(self) -> list[str]:
        total = sum(self.warnings.values())
        if not total:
            return ["no warnings in the log"]
        lines = [f"{total} warning{'s' if total != 1 else ''} in the log, by kind:"]
        for (kind, where, message), n in self.warnings.most_common():
            lines.append(f"  {n:>4} x {kind} ({where}): {message}")
        return lines


def launch_command(job: str) -> list[str]:
    dg = Path(sys.executable).parent / "dg"
    if dg.exists() or shutil.which("dg"):
        return [str(dg) if dg.exists() else "dg", "launch", "--job", job, "-m", MODULE]
    return [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", MODULE, "-j", job]


def follow(command: list[str], log: Path, progress: Progress, poll_s: float = 0.5) -> int:
    """Run `command` with its output in `log`; feed `progress` each complete line as it comes."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def stop(signum, _frame):  # a TERM to this process stops the run too
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    rest = b""
    try:
        with open(log, "rb") as source:
            while True:
                finished = child.poll() is not None
                chunk = source.read()
                if chunk:
                    *lines, rest = (rest + chunk).split(b"\n")
                    for line in lines:
                        progress.line(line.decode("utf-8", "replace").rstrip("\r"))
                if finished:
                    if rest:
                        progress.line(rest.decode("utf-8", "replace"))
                    return child.returncode
                progress.heartbeat()
                time.sleep(poll_s)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:  # interrupted: the run's processes get Dagster's own shutdown first
            child.send_signal(signal.SIGINT)
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="score_all_sources")
    parser.add_argument("--log", required=True, type=Path, help="where Dagster's whole log goes")
    args = parser.parse_args(argv)
    progress = Progress(names=projects())
    command = launch_command(args.job)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")  # the log is read while it is written
    progress.say(f"starting {args.job} ({' '.join(Path(command[0]).name.split() + command[1:3])} ...)")
    code = follow(command, args.log, progress)
    ok = code == 0 and progress.outcome != "RUN_FAILURE"
    progress.say(f"{args.job} {'succeeded' if ok else 'FAILED'}" + (f" (exit {code})" if code else ""))
    for text in progress.summary():
        print(f"         {text}", flush=True)
    for text in progress.warnings_summary():
        print(f"         {text}", flush=True)
    return 0 if ok else (code or 1)


if __name__ == "__main__":
    sys.exit(main())
