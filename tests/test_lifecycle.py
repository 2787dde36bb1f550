"""Processes end cleanly: data set readers exit 0 every time, Ctrl-C saves the state and exits 130,
and ``--resume`` then finishes the run; every run is a real subprocess, bounded in time."""
import csv
import json
import math
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import protocol_check
import pytest
from subprocesses import subprocess_env

REPO = pathlib.Path(__file__).resolve().parents[1]


def data_flags(dataset):
    return ["--data-dir", str(dataset.data_dir), "--labels-dir", str(dataset.labels_dir),
            "--cameras", str(dataset.cameras_path), "--train-subjects", "S1", "--test-subjects", "S11"]


def start(args, **kwargs) -> subprocess.Popen:
    # Ctrl-C's default action in the child, as in a terminal: a runner started in the background by a
    # non-interactive shell hands its children SIGINT ignored, and Python then keeps it ignored.
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)


def finish(process: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """Wait for ``process`` (killed after ``timeout`` s); (exit code, stdout, stderr)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"still running after {timeout} s:\n{out[-2000:]}\n{err[-2000:]}")
    return process.returncode, out, err


# Turned crops, so that they go through the resampling warp, not the slice.
READ_SOME_BATCHES = textwrap.dedent("""
    import data_loader
    import h36m_utils
    from pipeline import crop_augmentation
    sequences, _ = h36m_utils.find_sequences({data!r}, {labels!r}, ["S1", "S11"])
    cameras = h36m_utils.load_cameras({cameras!r})
    turned = crop_augmentation.Augmentation(root_jitter_mm=(30.0, 30.0, 30.0), roll_deg=30.0)
    for training in (True, False):
        batches = iter(data_loader.build_dataset(sequences, cameras, image_size=32, batch_size=4, training=training,
                                                 with_metadata=True, verbose=False, augmentation=turned))
        for _ in range(3):
            next(batches)
    print("read")
""")


def test_processes_that_read_a_few_batches_exit_cleanly_every_time(synthetic_dataset):
    script = READ_SOME_BATCHES.format(data=str(synthetic_dataset.data_dir),
                                      labels=str(synthetic_dataset.labels_dir),
                                      cameras=str(synthetic_dataset.cameras_path))
    for _ in range(3):  # two at a time: six exits in all
        results = [finish(process, 180) for process in [start(["-c", script]) for _ in range(2)]]
        for code, out, err in results:
            assert code == 0 and "read" in out and "terminate called" not in err, err[-3000:]


def backup_step(path) -> int:
    """The training step of a backup (-1 while there is none)."""
    try:
        return json.loads(pathlib.Path(f"{path}.json").read_text())["step"]
    except (FileNotFoundError, json.JSONDecodeError):
        return -1


def test_ctrl_c_saves_the_state_exits_130_and_resume_finishes(synthetic_dataset, tmp_path):
    checkpoints = tmp_path / "checkpoints"
    train = ["train_and_test.py", "--mode", "train", *data_flags(synthetic_dataset), "--config", "tiny",
             "--batch-size", "2", "--epochs", "2", "--steps-per-epoch", "60", "--val-subjects", "none",
             "--backup-every", "5", "--verbose", "0", "--checkpoint-dir", str(checkpoints),
             "--log-dir", str(tmp_path / "logs")]
    process = start(train)
    backup = checkpoints / "backup" / "state.weights.h5"
    deadline = time.time() + 240
    while backup_step(backup) < 5 and process.poll() is None and time.time() < deadline:
        time.sleep(0.1)  # until training is under way (the periodic backup of step 5)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process, 120)
    assert code == 130, (out[-2000:], err[-2000:])
    assert "Interrupted" in err and "--resume" in err and "Traceback" not in err, err[-3000:]
    saved_at = backup_step(backup)  # the state when interrupted, not the last periodic backup
    assert 5 <= saved_at < 120 and f"training state at step {saved_at} is saved" in out, out[-2000:]

    code, out, err = finish(start(train + ["--resume"]), 300)
    assert code == 0, err[-3000:]
    assert f"training step {saved_at})" in out
    assert json.loads((checkpoints / "last.weights.h5.json").read_text())["epoch"] == 2
    assert not backup.exists()  # finished: nothing left to resume

    # The resumed run's weights through the test mode in a process of its own (crops around the
    # labelled pelvis: the estimated root's path is checked in test_train_and_test.py): its metrics and
    # frame count must be those of the protocol run here on the same weights.
    test = ["--mode", "test", *data_flags(synthetic_dataset), "--config", "tiny", "--root", "labels",
            "--weights", str(checkpoints / "last.weights.h5"), "--test-stride", "10", "--batch-size", "4",
            "--output-dir", str(tmp_path / "outputs"), "--images-dir", str(tmp_path / "imgs")]
    code, out, err = finish(start(["train_and_test.py", *test]), 300)
    assert code == 0 and "Avg (frames)" in out, err[-3000:]
    protocol_check.assert_metrics_match_the_protocol(tmp_path / "outputs" / "metrics.json", test)


@pytest.mark.slow  # two training processes with validation: 9.5 min on the loaded 2-core machine
def test_ctrl_c_in_the_last_validation_then_resume_validates_and_writes_that_epoch_once(synthetic_dataset, tmp_path):
    """Guards "interrupt anywhere, resume exactly" in a real process: SIGINT once the last training
    step is done (so in the last epoch's validation or end), then --resume: the last epoch is
    validated and written, training.csv has each epoch once with its validation numbers, last and
    best carry the right epochs, and no backup is left. (Before: --resume said "Resuming at epoch 3"
    of a 2-epoch run and finished at once, with no row, no validation and last.weights.h5 of epoch 1.)"""
    checkpoints, logs = tmp_path / "checkpoints", tmp_path / "logs"
    steps, epochs = 6, 2
    train = ["train_and_test.py", "--mode", "train", *data_flags(synthetic_dataset), "--config", "tiny",
             "--batch-size", "2", "--epochs", str(epochs), "--steps-per-epoch", str(steps), "--val-subjects", "S1",
             "--val-stride", "1", "--backup-every", "1", "--verbose", "0", "--checkpoint-dir", str(checkpoints),
             "--log-dir", str(logs)]
    process = start(train)
    backup = checkpoints / "backup" / "state.weights.h5"
    deadline = time.time() + 300
    while backup_step(backup) < steps * epochs and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # until the last step's backup: the last validation (hundreds of frames) begins
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process, 120)
    assert code == 130 and "Interrupted" in err, (out[-2000:], err[-2000:])
    assert backup_step(backup) == steps * epochs  # every step ran; the epoch's end did not complete

    code, out, err = finish(start(train + ["--resume"]), 300)
    assert code == 0, err[-3000:]
    rows = list(csv.DictReader(open(logs / "training.csv")))
    assert [int(row["epoch"]) for row in rows] == list(range(epochs)), rows
    val_mpjpe = [float(row["val_kp3d_mpjpe"]) for row in rows]
    assert all(math.isfinite(value) for value in val_mpjpe)  # every epoch validated
    last = json.loads((checkpoints / "last.weights.h5.json").read_text())
    best = json.loads((checkpoints / "best.weights.h5.json").read_text())
    assert last["epoch"] == epochs and last["logs"]["val_kp3d_mpjpe"] == pytest.approx(val_mpjpe[-1], rel=1e-6)
    assert best["epoch"] == 1 + val_mpjpe.index(min(val_mpjpe))
    assert not backup.parent.exists() and "Weights to test and publish" in out
