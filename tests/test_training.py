"""training.py: resume at the same epoch and step, the non-finite guard, the schedule, model-only checkpoints.

A tiny dense model keeps these fast (``toy_models``); the real model goes through
test_train_and_test.py.
"""
import glob
import json
import os

import h5py
import keras
import numpy as np
import pytest

import training
import weights_files
from toy_models import EPOCHS, STEPS_PER_EPOCH, constant_data, toy_model, weights_of


class CrashAt(keras.callbacks.Callback):
    """Simulate a killed process: raise once the optimizer has made ``step`` updates."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt("simulated kill")


class RecordStart(keras.callbacks.Callback):
    """Remember where (epoch, batch, optimizer step) the first batch of a fit call starts."""

    def __init__(self):
        super().__init__()
        self.starts = []
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_begin(self, logs=None):
        self._pending = True

    def on_train_batch_begin(self, batch, logs=None):
        if self._pending:
            self.starts.append((self._epoch, int(self.model.optimizer.iterations.numpy())))
            self._pending = False


def test_resume_after_kill_continues_at_same_epoch_and_step(tmp_path):
    uninterrupted = toy_model()
    training.fit(uninterrupted, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                 checkpoint_dir=str(tmp_path / "reference"), config_name="toy", backup_every=1, verbose=0)

    checkpoints = str(tmp_path / "run")
    killed = toy_model()
    with pytest.raises(KeyboardInterrupt):
        training.fit(killed, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                     checkpoint_dir=checkpoints, config_name="toy", backup_every=1, verbose=0,
                     callbacks=[CrashAt(6)])  # mid-epoch 2 (0-based 1), after its 2nd batch
    # Nothing half-written; the epoch-1 checkpoint survives the kill and loads.
    assert not glob.glob(os.path.join(checkpoints, "**", ".tmp-*"), recursive=True)
    assert json.load(open(os.path.join(checkpoints, "last.weights.h5.json")))["epoch"] == 1
    weights_files.load_weights(toy_model(compile=False), os.path.join(checkpoints, "last.weights.h5"), "toy")
    with pytest.raises(FileExistsError, match="--resume"):
        training.fit(toy_model(), constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                     checkpoint_dir=checkpoints, config_name="toy", verbose=0)

    resumed, record = toy_model(seed=123), RecordStart()  # other initial weights: must be replaced
    training.fit(resumed, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                 checkpoint_dir=checkpoints, config_name="toy", resume=True, backup_every=1, verbose=0,
                 callbacks=[record])
    assert record.starts[0] == (1, 6)  # epoch index 1, optimizer step 6 = batch 2 of that epoch
    assert int(resumed.optimizer.iterations.numpy()) == EPOCHS * STEPS_PER_EPOCH
    for got, want in zip(weights_of(resumed), weights_of(uninterrupted)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert json.load(open(os.path.join(checkpoints, "last.weights.h5.json")))["epoch"] == EPOCHS
    assert not os.path.exists(os.path.dirname(training.backup_path(checkpoints)))  # finished


def test_non_finite_loss_stops_naming_the_step_and_keeps_last_good(tmp_path):
    model = toy_model()
    with pytest.raises(training.NonFiniteLossError, match=r"training step 6 \(epoch 2, batch 2 of 4\)"):
        training.fit(model, constant_data(nan_at_batch=5), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                     checkpoint_dir=str(tmp_path), config_name="toy", backup_every=2, verbose=0)
    info = weights_files.read_weights_info(str(tmp_path / training.LAST_GOOD_FILE_NAME))
    assert info["step"] == 4  # the last backup written before the failure (every 2 steps)
    good = toy_model(compile=False)
    weights_files.load_weights(good, str(tmp_path / training.LAST_GOOD_FILE_NAME), "toy")
    assert all(np.isfinite(w).all() for w in weights_of(good))
    last = toy_model(compile=False)
    weights_files.load_weights(last, str(tmp_path / "last.weights.h5"), "toy")
    assert all(np.isfinite(w).all() for w in weights_of(last))


def test_learning_rate_schedule_warms_up_then_decays():
    schedule = training.make_optimizer(1e-3, total_steps=100, warmup_steps=10)._learning_rate
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert values[0] < values[1] < values[2] == pytest.approx(1e-3)
    assert values[2] > values[3] > values[4] == pytest.approx(1e-5, rel=1e-3)


def h5_groups(path) -> set:
    with h5py.File(path, "r") as handle:
        return set(handle.keys())


def test_published_weights_hold_the_model_only_and_the_backup_the_optimizer(tmp_path):
    model = toy_model()
    with pytest.raises(KeyboardInterrupt):  # stop mid-run so that the backup is still there
        training.fit(model, constant_data(), epochs=2, steps_per_epoch=STEPS_PER_EPOCH, checkpoint_dir=str(tmp_path),
                     config_name="toy", backup_every=1, verbose=0, callbacks=[CrashAt(STEPS_PER_EPOCH + 1)])
    last, backup = str(tmp_path / "last.weights.h5"), training.backup_path(str(tmp_path))
    assert "optimizer" not in h5_groups(last) and "optimizer" in h5_groups(backup)
    assert os.path.getsize(last) < os.path.getsize(backup)
    fresh = toy_model(seed=5, compile=False)
    weights_files.load_weights(fresh, last, "toy")  # loads into a model that has no optimizer at all
