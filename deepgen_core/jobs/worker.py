"""The worker: claims queued jobs, runs them through an executor, watches them.

A worker polls the store for queued jobs, claims each one atomically and
hands it to its :class:`~deepgen_core.jobs.executor.Executor`. It notices
when a job's process ends without recording an outcome (killed, out of
memory) and when another worker's jobs stop sending heartbeats. A resumable
job is then queued again to continue from its last checkpoint, and any other
is marked failed, so nothing is silently lost.

The app starts one worker per runs folder: ``--singleton`` makes a worker
hold ``worker.lock`` in the runs folder for its lifetime, so a second one
exits at once, and ``--parent-pid`` makes it stop when the app stops.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .executor import Executor, LocalProcessExecutor, job_log_path
from .kinds import get_kind
from .store import FINISHED, Job, JobStore

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 1.0
STALE_SECONDS = 10.0
"""A running job whose heartbeat is older than this is taken for dead."""
MAX_ATTEMPTS = 3
STOP_GRACE_SECONDS = 30.0
LOCK_NAME = "worker.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Worker:
    """Run queued jobs of one runs folder until stopped.

    Parameters
    ----------
    runs_dir : path
    max_jobs : int
        Jobs run at the same time by this worker.
    parent_pid : int or None
        Stop once this process has exited.
    executor : Executor, default LocalProcessExecutor
    warm : bool
        Start the warm process that compiles UMAP (LocalProcessExecutor only).
    """

    def __init__(
        self,
        runs_dir: str | os.PathLike,
        max_jobs: int = 1,
        parent_pid: int | None = None,
        executor: Executor | None = None,
        warm: bool = True,
    ) -> None:
        self.runs_dir = Path(runs_dir)
        self.store = JobStore(self.runs_dir)
        self.max_jobs = max_jobs
        self.parent_pid = parent_pid
        self.executor = executor
        self.warm = warm
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.handles: dict[int, object] = {}
        self.draining: dict[int, object] = {}
        """Handles of jobs that have recorded their outcome and are exiting."""
        self.stopping = False
        self.lock_file = None

    # Singleton lock ------------------------------------------------------------

    def take_lock(self) -> bool:
        """Hold the runs folder's worker lock; return False if a live worker has it."""
        self.lock_file = open(self.runs_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the worker's life
        try:
            fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock_file.close()
            self.lock_file = None
            return False
        self._write_lock()
        return True

    def _write_lock(self) -> None:
        if self.lock_file is None:
            return
        self.lock_file.seek(0)
        self.lock_file.truncate()
        self.lock_file.write(
            json.dumps(
                {"pid": os.getpid(), "worker": self.id, "heartbeat": time.time()}
            )
        )
        self.lock_file.flush()

    # The loop -------------------------------------------------------------------

    def request_stop(self, *_args) -> None:
        self.stopping = True

    def run(self, max_seconds: float | None = None) -> None:
        """Poll, claim and watch jobs until stopped (SIGTERM, SIGINT, parent gone)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        if self.executor is None:
            self.executor = LocalProcessExecutor(warm=self.warm)
        self.store.register_worker(self.id, os.getpid())
        logger.info(
            "worker %s started on %s (max %d jobs)",
            self.id,
            self.runs_dir,
            self.max_jobs,
        )
        started = last_beat = time.monotonic()
        try:
            while not self.stopping:
                now = time.monotonic()
                if now - last_beat >= HEARTBEAT_SECONDS:
                    last_beat = now
                    self.store.worker_beat(self.id)
                    self._write_lock()
                    self.recover_stale_jobs()
                    if self.parent_pid and not _pid_alive(self.parent_pid):
                        logger.info("parent process %d has exited", self.parent_pid)
                        break
                self.reap_children()
                self.claim_jobs()
                if max_seconds is not None and now - started > max_seconds:
                    break
                time.sleep(POLL_SECONDS)
        finally:
            self.shutdown()

    def claim_jobs(self) -> None:
        while len(self.handles) < self.max_jobs and self.store.has_queued():
            job = self.store.claim(self.id, self.max_jobs)
            if job is None:
                return
            logger.info("job %d (%s) claimed", job.id, job.kind)
            self.handles[job.id] = self.executor.start(self.runs_dir, job)

    def reap_children(self) -> None:
        for job_id, handle in list(self.draining.items()):
            if self.executor.exit_code(handle) is not None:
                del self.draining[job_id]
        for job_id, handle in list(self.handles.items()):
            code = self.executor.exit_code(handle)
            if code is None:
                if self.store.get(job_id).state in FINISHED:
                    # The outcome is recorded and the process is exiting; its
                    # slot is free now, so the next job need not wait for that.
                    self.draining[job_id] = self.handles.pop(job_id)
                continue
            del self.handles[job_id]
            job = self.store.get(job_id)
            if job.state == "running" and job.worker == self.id:
                reason = (
                    f"job process was killed by signal {-code}"
                    if code < 0
                    else f"job process exited with code {code}"
                )
                self.recover(job, reason)

    def recover_stale_jobs(self) -> None:
        """Recover running jobs whose worker or process stopped sending heartbeats."""
        live = set(self.store.live_workers(STALE_SECONDS))
        for job in self.store.stale_running(STALE_SECONDS):
            if job.worker == self.id and job.id in self.handles:
                continue  # our own child, handled by reap_children
            if job.worker in live and job.worker != self.id:
                continue  # another live worker watches its own children
            self.recover(job, f"no heartbeat for {STALE_SECONDS:.0f} s")

    def recover(self, job: Job, reason: str) -> None:
        """Requeue a resumable job that died, or mark it failed."""
        tail = ""
        log = job_log_path(self.runs_dir, job.id)
        if log.exists():
            tail = "".join(log.read_text(errors="replace").splitlines(True)[-40:])
        if get_kind(job.kind).resumable and job.attempts < MAX_ATTEMPTS:
            logger.warning(
                "job %d: %s; queued to resume from its checkpoint", job.id, reason
            )
            self.store.requeue(job.id, reason, resume=True)
        else:
            logger.error("job %d: %s; marked failed", job.id, reason)
            self.store.finish(job.id, "failed", reason, tail)

    def shutdown(self) -> None:
        """Stop running jobs at their next batch boundary, then unregister."""
        for handle in self.handles.values():
            self.executor.stop(handle)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.handles and time.monotonic() < deadline:
            self.reap_children()
            time.sleep(0.1)
        for job_id, handle in self.handles.items():
            logger.warning("job %d did not stop in time; killing it", job_id)
            self.executor.kill(handle)
        for handle in self.draining.values():
            self.executor.kill(handle)
        self.reap_children()
        if self.executor is not None:
            self.executor.close()
        self.store.worker_stopped(self.id)
        logger.info("worker %s stopped", self.id)
        if self.lock_file is not None:
            self.lock_file.close()


def lock_holder(runs_dir: str | os.PathLike) -> dict | None:
    """Return the live singleton worker of ``runs_dir`` (pid, id, heartbeat), or None."""
    path = Path(runs_dir) / LOCK_NAME
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                return json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                return {}
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def ensure_worker(
    runs_dir: str | os.PathLike, parent_pid: int | None = None, max_jobs: int = 1
) -> int | None:
    """Start the singleton worker of ``runs_dir`` unless a live one exists.

    Returns the PID of the process started, or None when a worker already
    runs. Two callers racing here may both start one; the second exits at
    once because the first holds the lock.
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    if lock_holder(runs_dir) is not None:
        return None
    log_dir = runs_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "deepgen_core",
        "worker",
        "--runs-dir",
        str(runs_dir),
        "--singleton",
        "--max-jobs",
        str(max_jobs),
    ]
    if parent_pid is not None:
        command += ["--parent-pid", str(parent_pid)]
    with open(log_dir / "worker.log", "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    logger.info("started worker process %d for %s", process.pid, runs_dir)
    return process.pid
