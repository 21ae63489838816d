"""The job service: a SQLite job store, a worker and a client API.

Long work (pretraining, fine-tuning, probes) runs as jobs in a worker
process, so that the app never waits on it. The client functions here are
what the pages and the CLI call.
"""

from .client import (
    cancel,
    events,
    get,
    job_log,
    list,
    open_store,
    resume,
    submit,
    wait,
)
from .store import FINISHED, STATES, Job, JobStore
from .worker import Worker, ensure_worker

__all__ = [
    "FINISHED",
    "STATES",
    "Job",
    "JobStore",
    "Worker",
    "cancel",
    "ensure_worker",
    "events",
    "get",
    "job_log",
    "list",
    "open_store",
    "resume",
    "submit",
    "wait",
]
