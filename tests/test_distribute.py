"""Real worker processes under MultiWorkerMirroredStrategy on 127.0.0.1.

The training tests start ``python -m helpers pretrain-worker`` twice with its own
``TF_CONFIG`` (free ports), train a tiny ResNet for a few steps and read the reports the
workers write. The start-up tests run one worker whose peer never comes, or whose port
is taken, and check what it says and its exit status; they end before TensorFlow loads.
Every wait is bounded: a worker still running at the deadline is killed and the test
fails with its log. The bounds are hang guards, not speed claims (those are
``benchmarks/reliability.py``'s figures).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import distribute as dist

DEADLINE_S = 150  # per launch; a healthy launch takes about 20 s on 2 cores
HANG_S = 60  # a start-up refusal takes a few seconds; this only turns a hang into a failure
ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "--image-size", "16", "--width", "8", "--depth", "1", "1", "--classes", "16",
    "--precision", "float32", "--no-augment", "--timeout", "30", "--learning-rate", "0.05",
]  # fmt: skip


def _wait(processes, log_dir: Path, deadline_s: float = DEADLINE_S) -> list[int]:
    end = time.monotonic() + deadline_s
    codes = []
    for p in processes:
        try:
            codes.append(p.wait(timeout=max(end - time.monotonic(), 1)))
        except Exception:
            for q in processes:
                q.kill()
            logs = "\n".join(f.read_text()[-3000:] for f in sorted(log_dir.glob("*.log")))
            pytest.fail(f"workers did not finish in {deadline_s} s:\n{logs}")
    if any(codes):
        logs = "\n".join(f.read_text()[-3000:] for f in sorted(log_dir.glob("*.log")))
        pytest.fail(f"worker exit codes {codes}:\n{logs}")
    return codes


def _reports(folder: Path, n: int = 2) -> list[dict]:
    return [json.loads((folder / f"worker-{i}.json").read_text()) for i in range(n)]


def _launch(tmp: Path, extra: list[str], tag: str):
    log_dir = tmp / f"logs-{tag}"
    arguments = ["--backup-dir", str(tmp / "backup"), "--report-dir", str(tmp), *TINY, *extra]
    return dist.launch_local_workers(arguments, 2, log_dir=log_dir), log_dir


@pytest.mark.slow
def test_two_workers_train_sharded_tfrecords_to_identical_weights(tmp_path):
    from helpers import pipeline as pl
    from helpers.pretrain import generated_source

    src = generated_source(1200, classes=16, size=16, seed=3)
    pl.export_tfrecords(
        (src.x_train, src.y_train), tmp_path / "shards", shards=4, class_names=src.class_names
    )
    processes, logs = _launch(
        tmp_path,
        ["--tfrecords", str(tmp_path / "shards"), "--per-worker-batch", "16", "--steps", "30",
         "--save-every", "10"],
        "run",
    )  # fmt: skip
    _wait(processes, logs)
    r0, r1 = _reports(tmp_path)
    assert {r0["worker"], r1["worker"]} == {0, 1} and r0["workers"] == 2
    assert r0["global_batch"] == 32  # per-worker batch x workers
    assert r0["steps"] == r1["steps"] == 30
    w0, w1 = np.load(tmp_path / "worker-0.npz"), np.load(tmp_path / "worker-1.npz")
    for k in w0.files:  # trainable weights and the averaged BatchNorm statistics
        np.testing.assert_array_equal(w0[k], w1[k])
    assert r0["losses"] == r1["losses"]  # both report the global loss of each step
    first, last = np.mean(r0["losses"][:5]), np.mean(r0["losses"][-5:])
    assert last < first - 0.1, (first, last)


@pytest.mark.slow
def test_a_killed_worker_resumes_from_its_backup(tmp_path):
    extra = ["--images", "1200", "--per-worker-batch", "16", "--steps", "40", "--save-every", "5"]
    processes, logs = _launch(tmp_path, extra, "first")
    # Both workers' backups of step 10, not worker 1's alone: killed while worker 0 still
    # writes step 10, they would rightly agree on step 5, the newest step both hold.
    marks = [tmp_path / "backup" / f"worker-{i}" / "ckpt-10.index" for i in range(2)]
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end and not all(m.exists() for m in marks):
        if processes[1].poll() is not None:
            pytest.fail(
                "worker 1 ended before it could be killed:\n"
                + (logs / "worker-1.log").read_text()[-3000:]
            )
        time.sleep(0.2)
    assert all(m.exists() for m in marks), "no backup at step 10 in time"
    os.kill(processes[1].pid, signal.SIGKILL)  # a preempted machine
    processes[1].wait(timeout=30)
    try:  # its peer fails its next collective (timeout 30 s) or hangs: stop it like a scheduler
        processes[0].wait(timeout=5)
    except Exception:
        processes[0].kill()
        processes[0].wait(timeout=30)
    first_run = (logs / "worker-0.log").read_text()
    seen = {
        int(line.split()[1]): float(line.split()[3])
        for line in first_run.splitlines()
        if line.startswith("step ")
    }
    assert not (tmp_path / "worker-0.json").exists()  # the first run never finished

    processes, logs = _launch(tmp_path, extra, "again")
    _wait(processes, logs)
    r0, r1 = _reports(tmp_path)
    assert r0["resumed_from"] == r1["resumed_from"] >= 10
    assert r0["steps"] == r1["steps"] == 40
    assert len(r0["losses"]) == 40 - r0["resumed_from"]
    assert r0["digest"] == r1["digest"]
    resumed = r0["resumed_from"] + 1  # the first step after the backup, run twice
    assert r0["resumed_from"] <= max(seen)  # a backup of a step that ran
    if resumed in seen:  # killed after it ran once more: same weights and batch, same loss
        assert r0["losses"][0] == pytest.approx(seen[resumed], abs=1e-5)  # logged with repr


# -- starting: a peer that never comes, a signal while waiting, a taken port ---------------


def _lonely_worker(tmp: Path, *extra: str) -> tuple[subprocess.Popen, list[str]]:
    """Worker 0 of a two-worker TF_CONFIG whose worker 1 is never started."""
    workers = [f"127.0.0.1:{p}" for p in dist.free_ports(2)]
    env = dict(os.environ, TF_CONFIG=dist.tf_config(workers, 0))
    command = [sys.executable, "-m", "helpers", "pretrain-worker"]
    child = subprocess.Popen(
        [*command, "--backup-dir", str(tmp / "backup"), *TINY, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return child, workers


def _finish(child: subprocess.Popen) -> tuple[str, str]:
    try:
        return child.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"the worker was still running after {HANG_S} s:\n{out}\n{err}")


def test_a_worker_whose_peer_never_starts_exits_naming_it(tmp_path):
    child, workers = _lonely_worker(tmp_path, "--startup-timeout", "1")
    out, err = _finish(child)
    assert child.returncode == 1, err
    assert f"waiting up to 1 s for worker 1 at {workers[1]}" in out
    (line,) = err.strip().splitlines()  # one line, no traceback
    assert f"no answer within 1 s from worker 1 at {workers[1]}" in line
    assert "--startup-timeout" in line
    assert "loading TensorFlow" not in out


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_while_waiting_ends_the_worker_with_one_line(tmp_path, signum, status):
    child, workers = _lonely_worker(tmp_path)  # the default deadline: minutes
    ready, _, _ = select.select([child.stdout], [], [], HANG_S)
    if not ready:
        child.kill()
        pytest.fail(f"the worker said nothing in {HANG_S} s")
    assert "waiting up to 300 s" in child.stdout.readline()
    child.send_signal(signum)
    _, err = _finish(child)
    assert child.returncode == status
    (line,) = err.strip().splitlines()
    name = signal.Signals(signum).name
    assert f"stopped by {name} while waiting for worker 1 at {workers[1]}" in line


def test_a_taken_port_is_named_before_tensorflow_starts(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in dist.free_ports(2)]
    port = int(workers[0].rsplit(":", 1)[1])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        done = subprocess.run(
            [sys.executable, "-m", "helpers", "pretrain-worker", "--backup-dir", str(tmp_path)],
            cwd=ROOT,
            env=dict(os.environ, TF_CONFIG=dist.tf_config(workers, 0)),
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert f"cannot listen on port {port}" in line and "in use" in line
    assert "TF_CONFIG" in line and "waiting" not in done.stdout


# -- the loop in this process: the schedule, planner, callbacks and guard it shares --------


def _trainer(total_steps: int):
    from helpers import models
    from helpers import train as T

    return dist.Trainer(
        lambda: models.conv_net((8, 8, 3), 2, widths=(4,), head="gap", batchnorm=True),
        lambda total: T.make_optimizer("sgd", 0.05, total_steps=total, warmup=0.1),
        global_batch=16, num_classes=2, total_steps=total_steps, jit_compile=False,
    )  # fmt: skip


def _two_classes(n=64):
    rng = np.random.default_rng(0)
    y = (np.arange(n) % 2).astype(np.int32)
    x = np.clip(rng.normal(60 + 140 * y[:, None, None, None], 25, (n, 8, 8, 3)), 0, 255)
    return x.astype(np.uint8), y


def test_a_run_s_epochs_have_no_autotuner_to_wait_for_between_epochs():
    """The Trainer starts an iterator per epoch; with tf.data's autotuner on, releasing
    the last one waited out the tuner's sleep (1-20 s an epoch on 2 cores, 07's
    ResNet). The epochs come in a fixed order, unsharded or sharded, without it."""
    epoch_data, _ = dist.array_epochs(*_two_classes(), 16, seed=0)
    for epoch in (0, 1):
        options = epoch_data(epoch).options()
        assert options.autotune.enabled is False and options.deterministic is True
    first = [y.numpy().tolist() for _, y in epoch_data(1).take(4)]
    assert first == [y.numpy().tolist() for _, y in epoch_data(1).take(4)]
    assert first != [y.numpy().tolist() for _, y in epoch_data(2).take(4)]


def test_the_trainer_plans_with_the_planner_and_keeps_fit_s_history():
    from helpers import train as T
    from helpers.quiet import keras

    epoch_data, steps = dist.array_epochs(*_two_classes(), 16, seed=0)
    plan = T.plan_steps(steps, epochs=3)
    trainer = _trainer(plan.total_steps)
    seen = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((epoch, sorted(logs)))

    log = trainer.fit(epoch_data, steps, callbacks=[Epochs()], verbose=False)
    assert log.steps == plan.total_steps == 12 and not log.stopped_early
    assert seen == [(e, ["accuracy", "loss"]) for e in range(3)]
    assert len(log.history["loss"]) == len(log.history["accuracy"]) == 3
    assert log.history["loss"][0] == pytest.approx(np.mean(log.losses[:steps]))
    assert float(trainer.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)  # decayed


def test_the_trainer_s_budget_guard_ends_the_run_inside_the_budget(monkeypatch):
    """After step 3 every step takes 10 s more (the clock is moved, not waited for): with
    a 60-second budget the guard stops the run before the step that would end past it."""
    epoch_data, steps = dist.array_epochs(*_two_classes(), 16, seed=0)
    shift = {"seconds": 0.0}
    real = time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real() + shift["seconds"])

    def slower(step, loss):
        if step >= 3:
            shift["seconds"] += 10.0

    trainer = _trainer(100)
    started = time.perf_counter()
    log = trainer.fit(epoch_data, steps, time_budget_s=60.0, on_step=slower, verbose=False)
    assert time.perf_counter() - started <= 60.0
    assert log.out_of_time and log.stopped_early and 3 < log.steps < 100
    assert len(log.history["loss"]) == -(-log.steps // steps)  # the last epoch cut short


def test_the_trainer_plans_again_from_its_own_pace_and_keeps_the_whole_schedule(monkeypatch):
    """Planned for 1,000 steps, each step taking 2 s (the clock is moved inside the step,
    not waited for) in a 120-second budget: after 10 steps the run plans again from the
    pace it kept, about 50 steps, and its schedule spans exactly those, so it ends
    inside the budget with the learning rate decayed, not cut by the guard mid-decay."""
    epoch_data, steps = dist.array_epochs(*_two_classes(), 16, seed=0)
    shift = {"seconds": 0.0}
    real = time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real() + shift["seconds"])
    trainer = _trainer(1000)
    build = trainer._build_step

    def slow_step():
        step = build()

        def slow(iterator):
            shift["seconds"] += 2.0
            return step(iterator)

        return slow

    trainer._build_step = slow_step
    started = time.perf_counter()
    log = trainer.fit(epoch_data, steps, time_budget_s=120.0, replan_after=10, verbose=False)
    assert time.perf_counter() - started <= 120.0
    assert 30 < trainer.total_steps < 60
    assert "s/step measured" in log.plan and "where 1000 were planned" in log.plan
    assert trainer.optimizer._learning_rate.total_steps == trainer.total_steps
    if not log.out_of_time:  # a machine busy enough to slow the real part may be cut
        assert log.steps == trainer.total_steps
        assert float(trainer.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-7)


def test_a_trainer_without_a_budget_does_not_plan_again():
    epoch_data, steps = dist.array_epochs(*_two_classes(), 16, seed=0)
    trainer = _trainer(6)
    log = trainer.fit(epoch_data, steps, replan_after=2, verbose=False)
    assert (log.steps, trainer.total_steps, log.plan) == (6, 6, None)
