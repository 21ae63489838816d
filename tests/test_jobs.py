"""The job service with real worker processes."""

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from deepgen_core import jobs
from deepgen_core.dbn import DBNConfig
from deepgen_core.errors import InputError
from deepgen_core.jobs.store import MIGRATIONS, JobStore
from deepgen_core.jobs.worker import lock_holder
from deepgen_core.operations import train_run
from deepgen_core.runs import PRETRAINED, RunConfig, open_run
from deepgen_core.training import RBMTrainingConfig


def start_worker(runs_dir, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deepgen_core",
            "-q",
            "worker",
            "--runs-dir",
            str(runs_dir),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def stop(process, timeout=60):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def runs_dir(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def worker(runs_dir):
    process = start_worker(runs_dir, "--no-warm")
    yield process
    stop(process)


def train_params(out, layers=(64, 32), epochs=2, seed=3, dataset="mnist-10k"):
    rbm = RBMTrainingConfig(epochs=epochs)
    config = RunConfig(dataset, DBNConfig(list(layers), seed=seed, rbm=rbm), "cpu")
    return {"out": str(out), "config": config.to_dict()}


def foreground_weights(tmp_path, params):
    run = train_run(str(tmp_path / "foreground"), RunConfig.from_dict(params["config"]))
    return run.load_stage(PRETRAINED).state_dict()


def assert_same_weights(expected, actual):
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def wait_for(condition, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(message)


def test_train_job_matches_foreground_run(tmp_path, runs_dir, worker):
    params = train_params(runs_dir / "bg", layers=(200, 100), epochs=3)
    job = jobs.submit("train", params, runs_dir)
    assert job.state == "queued"
    finished = jobs.wait(job.id, timeout=300, runs_dir=runs_dir)
    assert finished.state == "done", finished.error
    assert finished.attempts == 1
    assert finished.result["run"] == str((runs_dir / "bg").resolve())

    background = open_run(runs_dir / "bg").load_stage(PRETRAINED).state_dict()
    assert_same_weights(foreground_weights(tmp_path, params), background)

    events = jobs.events(job.id, runs_dir=runs_dir)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    states = [e["data"]["state"] for e in events if e["type"] == "state"]
    assert states == ["queued", "running", "done"]
    progress = [e for e in events if e["type"] == "progress"]
    positions = [
        (p["data"]["layer"], p["data"]["epoch"], p["data"]["step"]) for p in progress
    ]
    assert positions == sorted(positions)
    assert positions[-1] == (2, 3, 80)
    times = [p["time"] for p in progress]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 1.0, f"progress gaps {gaps}"
    later = jobs.events(job.id, since=ids[-2], runs_dir=runs_dir)
    assert [e["id"] for e in later] == ids[-1:]


def test_cancel_stops_running_job_quickly(runs_dir, worker):
    job = jobs.submit("train", train_params(runs_dir / "long", epochs=500), runs_dir)
    wait_for(
        lambda: jobs.get(job.id, runs_dir).progress.get("step"),
        120,
        "the job never reported progress",
    )
    requested = time.monotonic()
    assert jobs.cancel(job.id, runs_dir).cancel_requested
    done = jobs.wait(job.id, timeout=30, runs_dir=runs_dir)
    assert done.state == "cancelled"
    assert time.monotonic() - requested < 2.5
    with pytest.raises(InputError, match=f"job {job.id} is already cancelled"):
        jobs.cancel(job.id, runs_dir)


def test_killed_job_resumes_to_same_weights(tmp_path, runs_dir, worker):
    params = train_params(runs_dir / "killed", layers=(300, 200), epochs=8)
    job = jobs.submit("train", params, runs_dir)

    def mid_epoch():
        """The job once it is inside an epoch after the first checkpoint."""
        current = jobs.get(job.id, runs_dir)
        progress = current.progress
        position = (progress.get("layer") or 0, progress.get("epoch", 0))
        inside = 0 < progress.get("step", 0) < progress.get("total", 0)
        if position >= (1, 2) and inside and current.pid:
            return current
        return None

    running = wait_for(mid_epoch, 240, "the job was never seen inside an epoch")
    os.kill(running.pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def requeued_or_rerunning():
        current = jobs.get(job.id, runs_dir)
        return current.attempts == 2 or current.state == "queued"

    wait_for(requeued_or_rerunning, 10, "the killed job was not noticed in 10 s")
    assert time.monotonic() - killed_at < 10
    finished = jobs.wait(job.id, timeout=300, runs_dir=runs_dir)
    assert finished.state == "done", finished.error
    assert finished.attempts == 2

    resumed = open_run(runs_dir / "killed").load_stage(PRETRAINED).state_dict()
    assert_same_weights(foreground_weights(tmp_path, params), resumed)
    assert list((runs_dir / "killed").rglob("*.tmp")) == []
    reasons = [
        e["data"].get("reason")
        for e in jobs.events(job.id, runs_dir=runs_dir)
        if e["type"] == "state" and e["data"]["state"] == "queued"
    ]
    assert reasons[-1] == "job process was killed by signal 9"


def tiny_train_params(out):
    rbm = RBMTrainingConfig(epochs=1, batch_size=479)
    config = RunConfig("digits", DBNConfig([4], rbm=rbm), "cpu")
    return {"out": str(out), "config": config.to_dict()}


def test_two_workers_share_queue_without_repeats(runs_dir):
    job_ids = [
        jobs.submit("train", tiny_train_params(runs_dir / f"tiny-{i}"), runs_dir).id
        for i in range(20)
    ]
    workers = [start_worker(runs_dir, "--no-warm"), start_worker(runs_dir, "--no-warm")]
    try:
        for job_id in job_ids:
            assert jobs.wait(job_id, timeout=300, runs_dir=runs_dir).state == "done"
    finally:
        for process in workers:
            stop(process)
    claimed_by = set()
    for job_id in job_ids:
        job = jobs.get(job_id, runs_dir)
        assert job.attempts == 1
        starts = [
            e
            for e in jobs.events(job_id, runs_dir=runs_dir)
            if e["type"] == "state" and e["data"]["state"] == "running"
        ]
        assert len(starts) == 1
        claimed_by.add(job.worker)
    assert len(claimed_by) == 2, "both workers should have taken jobs"


def test_app_worker_started_twice_runs_once(runs_dir):
    runs_dir.mkdir()
    script = (
        "import sys, time; from deepgen_core.jobs import ensure_worker; "
        "print(ensure_worker(sys.argv[1], parent_pid=None)); time.sleep(0.1)"
    )
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(runs_dir)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in starters]
    started = [int(out) for out in outputs if out != "None"]
    assert 1 <= len(started) <= 2

    holder = wait_for(lambda: lock_holder(runs_dir), 30, "no worker took the lock")
    time.sleep(3)
    alive = []
    for pid in started:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    try:
        assert alive == [holder["pid"]]
        store = JobStore(runs_dir)
        assert len(store.live_workers(5)) == 1
        assert jobs.ensure_worker(runs_dir) is None
    finally:
        for pid in alive:
            os.kill(pid, signal.SIGTERM)


def test_worker_stops_when_parent_exits(runs_dir):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    worker = start_worker(
        runs_dir, "--no-warm", "--singleton", "--parent-pid", str(parent.pid)
    )
    try:
        wait_for(lambda: lock_holder(runs_dir), 30, "worker did not start")
        parent.kill()
        parent.wait()
        worker.wait(timeout=15)
        assert worker.returncode == 0
        assert lock_holder(runs_dir) is None
    finally:
        stop(worker)
        stop(parent)


# Bad input and faults -------------------------------------------------------------


def test_submit_rejects_unknown_kind_and_bad_params(runs_dir, tmp_path):
    with pytest.raises(InputError, match="unknown job kind 'trian'; valid kinds are"):
        jobs.submit("trian", {}, runs_dir)
    bad = train_params(runs_dir / "bad")
    bad["config"]["dbn"]["rbm"]["batch_size"] = 30
    with pytest.raises(InputError, match="not a multiple of the batch size 30"):
        jobs.submit("train", bad, runs_dir)
    with pytest.raises(InputError, match="run folder .*nowhere does not exist"):
        jobs.submit("finetune", {"run": str(tmp_path / "nowhere")}, runs_dir)
    assert jobs.list(runs_dir) == []


def test_submit_rejects_second_job_on_same_run_folder(runs_dir):
    first = jobs.submit("train", train_params(runs_dir / "same"), runs_dir)
    with pytest.raises(
        InputError, match=f"job {first.id} \\(train, queued\\) already writes"
    ):
        jobs.submit("train", train_params(runs_dir / "same"), runs_dir)


def test_queue_limit_is_enforced(runs_dir):
    for i in range(3):
        jobs.submit(
            "train", tiny_train_params(runs_dir / f"q{i}"), runs_dir, max_queued=3
        )
    with pytest.raises(InputError, match="3 jobs are already queued .* the limit is 3"):
        jobs.submit("train", tiny_train_params(runs_dir / "q3"), runs_dir, max_queued=3)


def test_missing_job_and_finished_job_messages(runs_dir):
    with pytest.raises(InputError, match="job 99 not found"):
        jobs.resume(99, runs_dir)
    job = jobs.submit("train", tiny_train_params(runs_dir / "c"), runs_dir)
    jobs.cancel(job.id, runs_dir)
    with pytest.raises(InputError, match="already cancelled; nothing to cancel"):
        jobs.cancel(job.id, runs_dir)


def test_corrupt_store_gives_clear_error(runs_dir):
    runs_dir.mkdir()
    (runs_dir / "jobs.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(
        InputError, match="cannot be read .* it is damaged. Move it aside"
    ):
        JobStore(runs_dir)


def test_runs_folder_that_is_a_file_is_rejected(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create runs folder"):
        JobStore(blocker / "runs")


def test_old_store_is_migrated(runs_dir):
    runs_dir.mkdir()
    db = sqlite3.connect(runs_dir / "jobs.sqlite3")
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 1")
    db.execute(
        "INSERT INTO jobs (kind, params, state, created) VALUES ('train', '{}', 'done', 0)"
    )
    db.commit()
    db.close()
    store = JobStore(runs_dir)
    version = store._query("PRAGMA user_version")[0][0]
    assert version == len(MIGRATIONS)
    old = store.get(1)
    assert old.state == "done"
    assert old.result is None


def test_failed_job_keeps_error_and_log(runs_dir, worker, tmp_path):
    data = tmp_path / "gone.csv"
    data.write_text("\n".join("0.1,0.2,0.3,0.4" for _ in range(100)) + "\n")
    rbm = RBMTrainingConfig(epochs=1, batch_size=10)
    config = RunConfig(str(data), DBNConfig([3], rbm=rbm), "cpu")
    job = jobs.submit(
        "train", {"out": str(runs_dir / "gone"), "config": config.to_dict()}, runs_dir
    )
    data.unlink()  # the dataset disappears while the job waits
    failed = jobs.wait(job.id, timeout=120, runs_dir=runs_dir)
    assert failed.state == "failed"
    assert "gone.csv" in failed.error
    assert "not found" in failed.error
    assert f"job {job.id} failed" in failed.log_tail
    later = jobs.submit("train", tiny_train_params(runs_dir / "after"), runs_dir)
    assert jobs.wait(later.id, timeout=120, runs_dir=runs_dir).state == "done"


def test_embed_jobs_run_in_warm_process(runs_dir, small_mnist_npz):
    rbm = RBMTrainingConfig(epochs=1, batch_size=50)
    config = RunConfig(str(small_mnist_npz), DBNConfig([32, 16], rbm=rbm), "cpu")
    train_run(str(runs_dir / "small"), config)
    process = start_worker(runs_dir)
    try:
        first = jobs.submit(
            "embed", {"run": str(runs_dir / "small"), "units": "1:*"}, runs_dir
        )
        second = jobs.submit(
            "embed",
            {"run": str(runs_dir / "small"), "units": "2:*", "method": "pca"},
            runs_dir,
        )
        done = [
            jobs.wait(j.id, timeout=300, runs_dir=runs_dir) for j in (first, second)
        ]
    finally:
        stop(process)
    assert [j.state for j in done] == ["done", "done"]
    assert done[0].pid is None  # cleared when the job finished
    pids = {
        int(line.split("pid ")[1].split(",")[0])
        for j in done
        for line in jobs.job_log(j.id, runs_dir).splitlines()
        if "started in process pid" in line
    }
    assert len(pids) == 1, "both jobs should run in the one warm process"
    saved = np.load(done[0].result["path"], allow_pickle=False)
    assert saved["coords"].shape == (200, 2)
    assert saved["labels"].shape == (200,)
    again = jobs.submit(
        "embed", {"run": str(runs_dir / "small"), "units": "1:*"}, runs_dir
    )
    worker = start_worker(runs_dir, "--no-warm")
    try:
        cached = jobs.wait(again.id, timeout=300, runs_dir=runs_dir)
    finally:
        stop(worker)
    assert cached.result["cached"] is True
    assert cached.result["path"] == done[0].result["path"]
