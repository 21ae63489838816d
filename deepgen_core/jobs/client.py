"""The client API of the job service, shared by the pages and the CLI.

Each function takes ``runs_dir`` (default ``$DEEPGEN_RUNS_DIR`` or ``runs``)
and opens the store there.
"""

from __future__ import annotations

import builtins
import os
import time
from pathlib import Path

from ..errors import InputError
from .executor import job_log_path
from .kinds import default_runs_dir, get_kind
from .store import FINISHED, Job, JobStore

MAX_QUEUED = 100


def open_store(runs_dir: str | os.PathLike | None = None) -> JobStore:
    return JobStore(runs_dir or default_runs_dir())


def submit(
    kind: str,
    params: dict,
    runs_dir: str | os.PathLike | None = None,
    max_queued: int = MAX_QUEUED,
) -> Job:
    """Check ``params`` for ``kind`` and queue the job.

    Raises :class:`InputError` with the CLI's message for invalid parameters,
    for a run folder that another unfinished job writes, and when
    ``max_queued`` jobs already wait.
    """
    job_kind = get_kind(kind)
    checked = job_kind.validate(dict(params))
    run_dir = job_kind.run_dir(checked)
    store = open_store(runs_dir)
    try:
        if run_dir is not None:
            for other in store.list(("queued", "running")):
                if other.run_dir == run_dir:
                    raise InputError(
                        f"job {other.id} ({other.kind}, {other.state}) already writes "
                        f"{run_dir}; wait for it or cancel it first"
                    )
        return store.insert(kind, checked, run_dir, max_queued)
    finally:
        store.close()


def get(job_id: int, runs_dir: str | os.PathLike | None = None) -> Job:
    store = open_store(runs_dir)
    try:
        return store.get(job_id)
    finally:
        store.close()


def list(
    runs_dir: str | os.PathLike | None = None,
    states: tuple[str, ...] | None = None,
) -> builtins.list[Job]:
    """Jobs, newest first, optionally only those in ``states``."""
    store = open_store(runs_dir)
    try:
        return store.list(states)
    finally:
        store.close()


def cancel(job_id: int, runs_dir: str | os.PathLike | None = None) -> Job:
    """Cancel a queued job, or stop a running one at its next batch boundary."""
    store = open_store(runs_dir)
    try:
        return store.request_cancel(job_id)
    finally:
        store.close()


def resume(job_id: int, runs_dir: str | os.PathLike | None = None) -> Job:
    """Queue a cancelled or failed job again, to continue from its checkpoint."""
    store = open_store(runs_dir)
    try:
        job = store.get(job_id)
        if job.state not in ("cancelled", "failed"):
            raise InputError(
                f"job {job_id} is {job.state}; only cancelled or failed jobs can be "
                "resumed"
            )
        if not get_kind(job.kind).resumable:
            raise InputError(
                f"job {job_id} is a {job.kind} job, which has no checkpoint to resume "
                "from; submit it again"
            )
        if job.run_dir and not Path(job.run_dir).exists():
            raise InputError(
                f"job {job_id} cannot resume: its run folder {job.run_dir} was deleted"
            )
        store.requeue(job_id, "resumed on request", resume=True)
        return store.get(job_id)
    finally:
        store.close()


def job_log(job_id: int, runs_dir: str | os.PathLike | None = None) -> str:
    """Return the log a job's process wrote, empty before it has started."""
    get(job_id, runs_dir)
    path = job_log_path(runs_dir or default_runs_dir(), job_id)
    return path.read_text(errors="replace") if path.exists() else ""


def wait(
    job_id: int,
    timeout: float | None = None,
    runs_dir: str | os.PathLike | None = None,
    poll: float = 0.2,
) -> Job:
    """Block until the job has finished; raise TimeoutError after ``timeout`` s."""
    store = open_store(runs_dir)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            job = store.get(job_id)
            if job.state in FINISHED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} is still {job.state} after {timeout} s"
                )
            time.sleep(poll)
    finally:
        store.close()


def events(
    job_id: int | None = None,
    since: int = 0,
    runs_dir: str | os.PathLike | None = None,
) -> builtins.list[dict]:
    """Events after the cursor ``since`` (an event id), oldest first.

    Pass the last event's ``id`` as ``since`` to read only newer ones.
    """
    store = open_store(runs_dir)
    try:
        return store.events(job_id, since)
    finally:
        store.close()
