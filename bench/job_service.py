"""Measure the job service: lost jobs, queue delay and idle CPU use.

Run from the repository root::

    python bench/job_service.py            # 50 jobs, about 3 minutes on 2 cores
    python bench/job_service.py --jobs 10  # a quicker look

It starts a real worker on a temporary runs folder and reports, in one run:

- idle CPU: the user + system CPU time of the worker and its warm process
  over ``--idle-seconds`` with no jobs, once the UMAP warm-up has finished,
  as a percentage of one core (target under 2%);
- queue delay: for each of ``--jobs`` tiny training jobs, submitted one at a
  time to the idle worker, the time from ``submit`` to the ``running``
  state as the store records them (target: median and worst under 1 s);
- jobs lost: jobs that did not end ``done`` (target 0).

The delay covers the worker's poll and claim, not the child process start,
which follows the claim.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from deepgen_core import jobs
from deepgen_core.dbn import DBNConfig
from deepgen_core.runs import RunConfig
from deepgen_core.training import RBMTrainingConfig

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def family_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (the warm process)."""
    total = 0.0
    for member in [pid, *children(pid)]:
        try:
            total += cpu_seconds(member)
        except OSError:
            pass
    return total


def wait_until_quiet(pid: int, timeout: float = 180) -> float:
    """Wait until the worker's family uses under 5% of a core; return seconds."""
    started = time.monotonic()
    previous = family_cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(2)
        current = family_cpu_seconds(pid)
        if current - previous < 0.1:
            break
        previous = current
    return time.monotonic() - started


def tiny_job(out: Path) -> dict:
    rbm = RBMTrainingConfig(epochs=1, batch_size=479)
    config = RunConfig("digits", DBNConfig([4], rbm=rbm), "cpu")
    return {"out": str(out), "config": config.to_dict()}


def wait_registered(runs_dir: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    store = jobs.open_store(runs_dir)
    while not store.live_workers(5):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not start")
        time.sleep(0.1)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs", type=int, default=50, help="jobs to submit (default: 50)"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=10.0, help="idle CPU window (default: 10)"
    )
    parser.add_argument("--json", action="store_true", help="also print a JSON object")
    args = parser.parse_args()

    runs_dir = Path(tempfile.mkdtemp(prefix="deepgen-bench-")) / "runs"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepgen_core",
            "-q",
            "worker",
            "--runs-dir",
            str(runs_dir),
        ]
    )
    try:
        wait_registered(runs_dir)
        warm_up_seconds = wait_until_quiet(worker.pid)
        before = family_cpu_seconds(worker.pid)
        time.sleep(args.idle_seconds)
        used = family_cpu_seconds(worker.pid) - before
        idle_percent = 100 * used / args.idle_seconds

        delays, ids = [], []
        started = time.monotonic()
        for index in range(args.jobs):
            job = jobs.submit("train", tiny_job(runs_dir / f"job-{index}"), runs_dir)
            ids.append(job.id)
            done = jobs.wait(job.id, timeout=300, runs_dir=runs_dir, poll=0.05)
            delays.append(done.started - done.created)
        total_seconds = time.monotonic() - started
        states = [jobs.get(job_id, runs_dir).state for job_id in ids]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)

    lost = sum(state != "done" for state in states)
    figures = {
        "jobs": args.jobs,
        "jobs_lost": lost,
        "queue_delay_median_s": statistics.median(delays),
        "queue_delay_max_s": max(delays),
        "idle_cpu_percent_of_one_core": idle_percent,
        "seconds_per_job_end_to_end": total_seconds / args.jobs,
        "warm_up_wait_s": warm_up_seconds,
    }
    rows = [
        ("jobs lost", f"{lost} of {args.jobs}", "0", lost == 0),
        (
            "submit -> running, median",
            f"{figures['queue_delay_median_s']:.3f} s",
            "< 1 s",
            figures["queue_delay_median_s"] < 1,
        ),
        (
            "submit -> running, worst",
            f"{figures['queue_delay_max_s']:.3f} s",
            "< 1 s",
            figures["queue_delay_max_s"] < 1,
        ),
        (
            "idle worker CPU",
            f"{idle_percent:.2f}% of one core",
            "< 2%",
            idle_percent < 2,
        ),
    ]
    print(f"job service, {args.jobs} jobs, worker pid {worker.pid}")
    for name, value, target, ok in rows:
        print(
            f"  {name:<28} {value:>22}   target {target:<6} {'PASS' if ok else 'MISS'}"
        )
    print(f"  waited {warm_up_seconds:.0f} s for the warm-up before the idle window")
    print(
        f"  end to end per job (spawn, import, train, record): "
        f"{figures['seconds_per_job_end_to_end']:.2f} s"
    )
    if args.json:
        print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
