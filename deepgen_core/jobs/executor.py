"""Running one job: the child-process entry point and the executor interface.

The worker (``worker.py``) queues and tracks jobs; an :class:`Executor` runs
them. :class:`LocalProcessExecutor` starts one child process per job with the
``spawn`` method, so CUDA is never initialised in a forked child. Another
executor (for example one that sends jobs to a Ray cluster) can take its
place without changing the store, the client or the pages.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Protocol

from ..errors import InputError, TrainingDiverged
from ..progress import Progress, TrainingCancelled
from .kinds import get_kind
from .store import Job, JobStore

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 0.25
PROGRESS_SECONDS = 0.5
"""Minimum time between two progress events from the training loop."""
REPEAT_PROGRESS_SECONDS = 0.5
"""Without a new report for this long, the last one is sent again, so that
watchers get an event at least once a second even during a slow checkpoint."""
LOG_TAIL_LINES = 40


class Executor(Protocol):
    """Starts jobs and reports when they end."""

    def start(self, runs_dir: Path, job: Job) -> object:
        """Start ``job`` and return a handle for it."""

    def exit_code(self, handle: object) -> int | None:
        """Return the handle's exit code once it has ended, else None."""

    def stop(self, handle: object) -> None:
        """Ask the job to stop at its next batch boundary."""

    def kill(self, handle: object) -> None:
        """End the job at once."""

    def close(self) -> None:
        """Release what the executor holds, such as a warm process."""


class WarmProcess:
    """A long-lived child that has compiled UMAP and runs light jobs in turn.

    Started with the worker, it imports umap-learn and runs a small
    projection first, so that the first projection a user asks for does not
    pay the compile time. It runs one job at a time.
    """

    def __init__(self, context) -> None:
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=serve_warm_jobs, args=(child_end,), name="deepgen-warm", daemon=True
        )
        self.process.start()
        self.ready = False
        self.current: int | None = None
        self.finished: set[int] = set()

    def poll(self) -> None:
        """Read the messages the warm process has sent."""
        try:
            while self.connection.poll():
                message = self.connection.recv()
                if message[0] == "ready":
                    self.ready = True
                    logger.info("warm process ready after %.1f s", message[1])
                elif message[0] == "finished":
                    self.finished.add(message[1])
                    self.current = None
        except (EOFError, OSError):
            pass

    @property
    def alive(self) -> bool:
        return self.process.exitcode is None

    def idle(self) -> bool:
        """Return whether no job runs here.

        A job sent during the warm-up waits for it, which is quicker than
        compiling UMAP again in a new process.
        """
        self.poll()
        return self.alive and self.current is None

    def run(self, runs_dir: Path, job_id: int) -> None:
        self.current = job_id
        self.connection.send((str(runs_dir), job_id))

    def close(self) -> None:
        if self.alive:
            try:
                self.connection.send(None)
            except OSError:
                pass
            self.process.join(timeout=5)
            if self.alive:
                self.process.kill()


def serve_warm_jobs(connection) -> None:
    """Body of the warm process: warm up UMAP, then run the jobs sent to it."""
    from ..embedding import warm_up_umap

    connection.send(("ready", warm_up_umap()))
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        runs_dir, job_id = message
        run_job(runs_dir, job_id)
        connection.send(("finished", job_id))


class WarmHandle:
    """A job running in the warm process."""

    def __init__(self, warm: WarmProcess, job_id: int) -> None:
        self.warm = warm
        self.job_id = job_id


class LocalProcessExecutor:
    """Child processes on this machine, started with ``spawn``.

    Kinds marked ``warm`` (projections, probes) run in the warm process when
    it is idle, and otherwise in a child of their own like every other job.
    """

    def __init__(self, warm: bool = True) -> None:
        self._context = multiprocessing.get_context("spawn")
        self.warm = WarmProcess(self._context) if warm else None

    def start(self, runs_dir: Path, job: Job) -> object:
        if self.warm is not None and get_kind(job.kind).warm and self.warm.idle():
            self.warm.run(runs_dir, job.id)
            return WarmHandle(self.warm, job.id)
        process = self._context.Process(
            target=run_job, args=(str(runs_dir), job.id), name=f"deepgen-job-{job.id}"
        )
        process.start()
        return process

    def exit_code(self, handle: object) -> int | None:
        if isinstance(handle, WarmHandle):
            handle.warm.poll()
            if handle.job_id in handle.warm.finished:
                handle.warm.finished.discard(handle.job_id)
                return 0
            if not handle.warm.alive:
                self._restart_warm()
                return handle.warm.process.exitcode
            return None
        return handle.exitcode

    def _restart_warm(self) -> None:
        logger.warning(
            "warm process exited with code %s; starting a new one",
            self.warm.process.exitcode,
        )
        self.warm = WarmProcess(self._context)

    def stop(self, handle: object) -> None:
        process = handle.warm.process if isinstance(handle, WarmHandle) else handle
        if process.exitcode is None:
            os.kill(process.pid, signal.SIGTERM)

    def kill(self, handle: object) -> None:
        process = handle.warm.process if isinstance(handle, WarmHandle) else handle
        if process.exitcode is None:
            process.kill()

    def close(self) -> None:
        if self.warm is not None:
            self.warm.close()


def job_log_path(runs_dir: str | os.PathLike, job_id: int) -> Path:
    return Path(runs_dir) / "logs" / f"job-{job_id}.log"


def _log_tail(path: Path) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(deque(handle, maxlen=LOG_TAIL_LINES))
    except OSError:
        return ""


class _JobContext:
    """Heartbeat, progress and stop requests of the job running in this process."""

    def __init__(self, runs_dir: str, job_id: int) -> None:
        self.runs_dir = runs_dir
        self.job_id = job_id
        self.cancel = threading.Event()
        self.shutdown = threading.Event()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.last_progress = 0.0
        self.latest: dict | None = None
        self.store = JobStore(runs_dir)

    def beat_forever(self) -> None:
        store = JobStore(self.runs_dir)  # SQLite connections stay in their thread
        while not self.done.wait(HEARTBEAT_SECONDS):
            try:
                if store.beat(self.job_id):
                    self.cancel.set()
                with self.lock:
                    quiet = time.monotonic() - self.last_progress
                    repeat = self.latest if quiet >= REPEAT_PROGRESS_SECONDS else None
                    if repeat is not None:
                        self.last_progress = time.monotonic()
                        store.report_progress(self.job_id, repeat)
            except InputError:
                logger.exception("heartbeat of job %d failed", self.job_id)
        store.close()

    def progress(self, report: Progress) -> None:
        now = time.monotonic()
        last_step = report.step == report.total
        if now - self.last_progress >= PROGRESS_SECONDS or last_step:
            with self.lock:
                # The end of an epoch is always written, but does not hold back
                # the next report: epochs shorter than the interval would
                # otherwise show no position inside an epoch.
                if not last_step:
                    self.last_progress = now
                self.latest = report.to_dict()
                self.store.report_progress(self.job_id, self.latest)

    def should_stop(self) -> bool:
        return self.cancel.is_set() or self.shutdown.is_set()


def run_job(runs_dir: str, job_id: int) -> None:
    """Run job ``job_id`` to its end and record the outcome in the store.

    SIGTERM makes the job stop at the next batch boundary; a resumable job
    is then queued again to continue from its checkpoint.
    """
    log_path = job_log_path(runs_dir, job_id)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    context = _JobContext(runs_dir, job_id)
    previous_handler = signal.signal(signal.SIGTERM, lambda *_: context.shutdown.set())
    store = context.store
    store.set_pid(job_id, os.getpid())
    job = store.get(job_id)
    kind = get_kind(job.kind)
    beat = threading.Thread(target=context.beat_forever, daemon=True)
    beat.start()
    logger.info(
        "job %d (%s) started in process pid %d, attempt %d",
        job_id,
        job.kind,
        os.getpid(),
        job.attempts,
    )
    try:
        result = kind.run(job.params, job.resume, context.progress, context.should_stop)
    except TrainingCancelled:
        if context.shutdown.is_set() and not context.cancel.is_set():
            logger.info(
                "job %d stopped because the worker stopped; queued again", job_id
            )
            store.requeue(job_id, "worker stopped", resume=kind.resumable)
        else:
            logger.info("job %d cancelled", job_id)
            store.finish(job_id, "cancelled")
    except (InputError, TrainingDiverged) as error:
        logger.error("job %d failed: %s", job_id, error)
        store.finish(job_id, "failed", str(error), _log_tail(log_path))
    except Exception as error:  # noqa: BLE001 - any failure of the job is recorded
        logger.error("job %d failed:\n%s", job_id, traceback.format_exc())
        message = f"{type(error).__name__}: {error}"
        store.finish(job_id, "failed", message, _log_tail(log_path))
    else:
        logger.info("job %d done: %s", job_id, result)
        store.finish(job_id, "done", result=result)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        context.done.set()
        beat.join(timeout=5)
        handler.close()
        root.removeHandler(handler)
