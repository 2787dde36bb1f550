"""training.py: resume at the same epoch and step, the non-finite guard, the schedule, model-only checkpoints,
global-norm clipping and gradient accumulation.

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
import tensorflow as tf

from train import losses
from train import training
from common import weights_files
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
    """Guards the optimizer left out of published weights (saving it too fails here)."""
    model = toy_model()
    with pytest.raises(KeyboardInterrupt):  # stop mid-run so that the backup is still there
        training.fit(model, constant_data(), epochs=2, steps_per_epoch=STEPS_PER_EPOCH, checkpoint_dir=str(tmp_path),
                     config_name="toy", backup_every=1, verbose=0, callbacks=[CrashAt(STEPS_PER_EPOCH + 1)])
    last, backup = str(tmp_path / "last.weights.h5"), training.backup_path(str(tmp_path))
    assert "optimizer" not in h5_groups(last) and "optimizer" in h5_groups(backup)
    assert os.path.getsize(last) < os.path.getsize(backup)
    fresh = toy_model(seed=5, compile=False)
    weights_files.load_weights(fresh, last, "toy")  # loads into a model that has no optimizer at all


# --------------------------------------------------------------------------- clipping, accumulation

def test_gradients_are_clipped_by_their_global_norm():
    """Gradients (30, 40) clipped together keep their direction, (0.6, 0.8); clipped one variable at a
    time they would become (1, 1). The second step (small gradients, no clipping) lets Adam's moments
    show which one was applied: its update is not just the sign of the gradient."""
    def train(optimizer, gradient_steps):
        variables = [keras.Variable([1.0]), keras.Variable([2.0])]
        for grads in gradient_steps:
            optimizer.apply([np.float32([g]) for g in grads], variables)
        return np.array([float(v.numpy()[0]) for v in variables])

    steps = [(30.0, 40.0), (0.3, -0.4)]
    clipped = [tuple(np.float32(grads) * min(1.0, 1.0 / np.linalg.norm(grads))) for grads in steps]
    got = train(training.make_optimizer(1e-2, total_steps=10), steps)
    want = train(training.make_optimizer(1e-2, total_steps=10, global_clipnorm=None), clipped)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    per_variable = train(training.make_optimizer(1e-2, total_steps=10, global_clipnorm=None),
                         [tuple(np.clip(grads, -1.0, 1.0)) for grads in steps])
    assert np.abs(per_variable - want).max() > 1e-4  # the two clippings are told apart here


def sample_stream(count: int) -> tf.data.Dataset:
    rng = np.random.default_rng(2)
    return tf.data.Dataset.from_tensor_slices((rng.normal(size=(count, 5)).astype("float32"),
                                               rng.normal(size=(count, 3)).astype("float32")))


def accumulating_toy_model(accumulate_steps: int, seed: int = 0) -> keras.Model:
    model = toy_model(seed=seed, compile=False)  # no BatchNorm
    model.compile(optimizer=training.make_optimizer(1e-2, STEPS_PER_EPOCH * EPOCHS, warmup_steps=2,
                                                    accumulate_steps=accumulate_steps), loss="mse")
    return model


class RecordPerBatch(keras.callbacks.Callback):
    """The optimizer's step counter and a variable's value at the start of every batch."""

    def __init__(self, variable):
        super().__init__()
        self.variable, self.seen = variable, []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append((int(self.model.optimizer.iterations.numpy()), float(self.variable.numpy())))


def test_two_accumulated_batches_of_b_make_one_step_of_2b(tmp_path):
    """Three steps (in the learning-rate warm-up and after): accumulating 2 x 4 samples gives the
    weights of batches of 8; steps, the schedule and the 3D-weight ramp count optimizer updates."""
    steps, batch = 3, 4
    samples = sample_stream(2 * batch * steps)
    whole = accumulating_toy_model(1)
    training.fit(whole, samples.batch(2 * batch).repeat(), epochs=1, steps_per_epoch=steps,
                 checkpoint_dir=str(tmp_path / "whole"), config_name="toy", verbose=0)
    accumulated = accumulating_toy_model(2)
    weight_3d = losses.Loss3DWeight(1.0, warmup_steps=1, ramp_steps=2)
    record = RecordPerBatch(weight_3d.variable)
    training.fit(accumulated, samples.batch(batch).repeat(), epochs=1, steps_per_epoch=steps,
                 checkpoint_dir=str(tmp_path / "accumulated"), config_name="toy", verbose=0,
                 callbacks=[weight_3d, record])
    for got, want in zip(weights_of(accumulated), weights_of(whole)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert int(accumulated.optimizer.iterations.numpy()) == int(whole.optimizer.iterations.numpy()) == steps
    assert record.seen == [(0, 0.0), (0, 0.0), (1, 0.5), (1, 0.5), (2, 1.0), (2, 1.0)]
    assert float(accumulated.optimizer.learning_rate) == pytest.approx(float(whole.optimizer.learning_rate))


class CrashAtBatch(keras.callbacks.Callback):
    """Simulate a killed process after ``batches`` batches of this fit call."""

    def __init__(self, batches):
        super().__init__()
        self.batches, self.done = batches, 0

    def on_train_batch_end(self, batch, logs=None):
        self.done += 1
        if self.done == self.batches:
            raise KeyboardInterrupt("simulated kill")


def test_resume_in_the_middle_of_an_accumulated_step(tmp_path):
    """Killed after 11 batches (step 6 holds one of its two batches, in epoch 2), the resumed run
    restores the half-filled gradient accumulators and ends with the uninterrupted run's weights."""
    uninterrupted = accumulating_toy_model(2)
    training.fit(uninterrupted, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                 checkpoint_dir=str(tmp_path / "reference"), config_name="toy", backup_every=1, verbose=0)
    checkpoints = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        training.fit(accumulating_toy_model(2), constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                     checkpoint_dir=checkpoints, config_name="toy", backup_every=1, verbose=0,
                     callbacks=[CrashAtBatch(11)])
    info = weights_files.read_weights_info(training.backup_path(checkpoints))
    assert (info["step"], info["batches"]) == (5, 11)
    with pytest.raises(ValueError, match="--accumulate-steps 2"):  # another accumulation cannot resume it
        training.fit(accumulating_toy_model(1), constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                     checkpoint_dir=checkpoints, config_name="toy", resume=True, verbose=0)
    resumed, record = accumulating_toy_model(2, seed=123), RecordStart()
    training.fit(resumed, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH, checkpoint_dir=checkpoints,
                 config_name="toy", resume=True, backup_every=1, verbose=0, callbacks=[record])
    assert record.starts[0] == (1, 5)  # epoch index 1, inside its 2nd step (optimizer step 5 done)
    assert int(resumed.optimizer.iterations.numpy()) == EPOCHS * STEPS_PER_EPOCH
    for got, want in zip(weights_of(resumed), weights_of(uninterrupted)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_accumulation_under_a_distribution_strategy_is_a_clear_error(tmp_path):
    with tf.distribute.MirroredStrategy().scope():  # Keras 3.15 cannot: keras-team/keras#20582
        model = accumulating_toy_model(2)
    with pytest.raises(ValueError, match="--accumulate-steps needs --strategy default"):
        training.fit(model, constant_data(), epochs=1, steps_per_epoch=2, checkpoint_dir=str(tmp_path),
                     config_name="toy", verbose=0)


# --------------------------------------------------------------------------- best.weights.h5

def marked(model, value: float):
    """Set every weight of ``model`` to ``value``: each epoch's weights are told apart in the files."""
    model.set_weights([np.full(w.shape, value, w.dtype) for w in model.get_weights()])
    return value


def file_marker(path) -> float:
    """The value ``marked`` gave the weights saved in ``path``."""
    loaded = toy_model(seed=7, compile=False)
    weights_files.load_weights(loaded, str(path), "toy")
    values = np.unique(np.concatenate([w.ravel() for w in weights_of(loaded)]))
    assert len(values) == 1, values
    return float(values[0])


def run_epochs(checkpoint, model, values, first_epoch=0):
    """End one epoch per value of val_kp3d_mpjpe through ``checkpoint``; the model's weights marked epoch + 1."""
    for epoch, value in enumerate(values, start=first_epoch):
        marked(model, epoch + 1)
        checkpoint.on_epoch_end(epoch, {"loss": 1.0, "kp3d_mpjpe": 100.0, "val_kp3d_mpjpe": value})


def test_best_weights_are_the_epoch_of_the_lowest_validation_mpjpe(tmp_path):
    model = toy_model(compile=False)
    checkpoint = training.AtomicCheckpoint(str(tmp_path), "toy", monitor="val_kp3d_mpjpe", selection="S1's last trials")
    checkpoint.set_model(model)
    values = [80.0, 61.5, 70.0, 55.25, 55.25, 90.0]  # lowest at epoch 4; the tie at epoch 5 does not beat it
    run_epochs(checkpoint, model, values)
    info = weights_files.read_weights_info(str(tmp_path / "best.weights.h5"))
    assert info["epoch"] == 1 + values.index(min(values)) == 4 and info["logs"]["val_kp3d_mpjpe"] == 55.25
    assert info["selected_by"] == "lowest val_kp3d_mpjpe = 55.25. S1's last trials"
    assert file_marker(tmp_path / "best.weights.h5") == 4  # the weights of that epoch, not of a later one
    assert file_marker(tmp_path / "last.weights.h5") == len(values)


def test_a_resumed_run_keeps_the_old_best_until_an_epoch_beats_it(tmp_path):
    model = toy_model(compile=False)
    first = training.AtomicCheckpoint(str(tmp_path), "toy", monitor="val_kp3d_mpjpe")
    first.set_model(model)
    run_epochs(first, model, [70.0, 40.0])  # interrupted after epoch 2: best 40 mm
    resumed = training.AtomicCheckpoint(str(tmp_path), "toy", monitor="val_kp3d_mpjpe", resume=True)
    resumed.set_model(model)
    run_epochs(resumed, model, [60.0, 40.0], first_epoch=2)  # worse, then equal: the old best stays
    assert weights_files.read_weights_info(str(tmp_path / "best.weights.h5"))["epoch"] == 2
    assert file_marker(tmp_path / "best.weights.h5") == 2 and file_marker(tmp_path / "last.weights.h5") == 4
    run_epochs(resumed, model, [39.5], first_epoch=4)  # beats it
    assert weights_files.read_weights_info(str(tmp_path / "best.weights.h5"))["epoch"] == 5
    assert file_marker(tmp_path / "best.weights.h5") == 5


# --------------------------------------------------------------------------- resume on the real input pipeline

def h5_arrays(path) -> dict:
    """{dataset name: array} of every array in an HDF5 file."""
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.update({name: item[()]}) if isinstance(item, h5py.Dataset) else None)
    return arrays


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one_on_the_real_input_pipeline(
        synthetic_dataset, tmp_path, monkeypatch, capsys):
    """tiny through train_and_test.main on the session's crop cache (data_loader.build_dataset): 3 epochs
    x 2 steps of 5 samples over a pass of 12 samples (S1 at stride 40), so the run crosses passes (each
    read in its own order, with its own augmentation draws) inside epochs. Killed after step 3 (epoch 2,
    batch 1) and resumed, the run must end with the uninterrupted run's weights: the resumed steps must
    see the same batches, learning rates and 3D weights."""
    import train_and_test

    def command(folder):
        return ["--mode", "train", "--data-dir", str(synthetic_dataset.data_dir),
                "--labels-dir", str(synthetic_dataset.labels_dir), "--cameras", str(synthetic_dataset.cameras_path),
                "--train-subjects", "S1", "--val-subjects", "none", "--train-stride", "40", "--config", "tiny",
                "--batch-size", "5", "--epochs", "3", "--steps-per-epoch", "2", "--lr-warmup-steps", "2",
                "--backup-every", "1", "--seed", "4", "--verbose", "0", "--checkpoint-dir", str(folder / "checkpoints"),
                "--log-dir", str(folder / "logs")]

    assert train_and_test.main(command(tmp_path / "whole")) == 0
    with monkeypatch.context() as patch:
        standard = training.standard_callbacks
        patch.setattr(training, "standard_callbacks", lambda *args, **kwargs: [*standard(*args, **kwargs), CrashAt(3)])
        assert train_and_test.main(command(tmp_path / "run")) == 130
    assert weights_files.read_weights_info(training.backup_path(str(tmp_path / "run" / "checkpoints")))["step"] == 3
    capsys.readouterr()
    assert train_and_test.main(command(tmp_path / "run") + ["--resume"]) == 0
    assert "Resuming at epoch 2, batch 1 of 2 (training step 3)." in capsys.readouterr().out
    whole = h5_arrays(tmp_path / "whole" / "checkpoints" / "last.weights.h5")
    resumed = h5_arrays(tmp_path / "run" / "checkpoints" / "last.weights.h5")
    assert sorted(whole) == sorted(resumed) and len(whole) > 20
    # The same float32 steps in the same order; only the reduction order of a kernel could differ.
    for name, value in whole.items():
        np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-7, err_msg=name)


# --------------------------------------------------------------------------- interrupted anywhere, resumed exactly

class CrashInValidation(keras.callbacks.Callback):
    """Simulate Ctrl-C during the validation that follows epoch ``epoch`` (0-based)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.current = epoch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_test_batch_end(self, batch, logs=None):
        if self.current == self.epoch:
            raise KeyboardInterrupt("simulated Ctrl-C in validation")


class CrashAtEpochEnd(keras.callbacks.Callback):
    """Simulate Ctrl-C inside the end of epoch ``epoch``, after the checkpoints and the CSV row."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated Ctrl-C at the epoch's end")


def run_with_validation(folder, crash=None, resume=False):
    """EPOCHS x STEPS_PER_EPOCH of the toy model validated on 2 batches, best by val_loss, the CSV
    log as training writes it; ``crash`` is put after the CSV logger."""
    model = toy_model(seed=9 if resume else 0)  # a resumed run must replace its own initial weights
    callbacks = training.standard_callbacks(str(folder / "logs"), resume, keras.Variable(0.0))[-1:]  # the CSV log
    training.fit(model, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                 checkpoint_dir=str(folder / "checkpoints"), config_name="toy", resume=resume, backup_every=2,
                 validation_data=constant_data(batch=3).take(2), validation_steps=2, monitor="val_loss",
                 verbose=0, callbacks=callbacks + ([crash] if crash else []))
    return model


def csv_rows(folder):
    import csv
    return list(csv.DictReader(open(folder / "logs" / "training.csv")))


@pytest.mark.parametrize("crash", [CrashAt(EPOCHS * STEPS_PER_EPOCH), CrashInValidation(EPOCHS - 1),
                                   CrashAtEpochEnd(EPOCHS - 1), CrashAt(STEPS_PER_EPOCH + 2),
                                   CrashInValidation(0)],
                         ids=["last-step-of-last-epoch", "last-validation", "end-of-last-epoch", "mid-epoch",
                              "first-validation"])
def test_interrupted_anywhere_and_resumed_ends_with_the_files_of_an_uninterrupted_run(tmp_path, crash):
    """Guards resume against losing or doubling an epoch: Ctrl-C at the last step of the last epoch,
    in a validation, inside an epoch's end (after its CSV row) or mid-epoch, then --resume, must end
    with an uninterrupted run's weights, one training.csv row per epoch with its numbers (the
    resumed epoch's training logs over ALL its batches), last and best with the right epochs and
    logs, and no backup. (Before: an interruption after an epoch's last step lost its validation,
    checkpoints and row for good, or wrote its row twice.)"""
    whole = run_with_validation(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run_with_validation(tmp_path / "run", crash)
    resumed = run_with_validation(tmp_path / "run", resume=True)
    for got, want in zip(weights_of(resumed), weights_of(whole)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    want_rows, got_rows = csv_rows(tmp_path / "whole"), csv_rows(tmp_path / "run")
    assert [row["epoch"] for row in got_rows] == [row["epoch"] for row in want_rows] == ["0", "1", "2"]
    for got, want in zip(got_rows, want_rows):
        assert got.keys() == want.keys()
        np.testing.assert_allclose([float(got[k]) for k in want], [float(want[k]) for k in want], rtol=1e-5,
                                   err_msg=str(want))
    for name in ("last.weights.h5", "best.weights.h5"):
        want = weights_files.read_weights_info(str(tmp_path / "whole" / "checkpoints" / name))
        got = weights_files.read_weights_info(str(tmp_path / "run" / "checkpoints" / name))
        assert got["epoch"] == want["epoch"] and got["logs"].keys() == want["logs"].keys(), (name, got, want)
        np.testing.assert_allclose([got["logs"][k] for k in want["logs"]], list(want["logs"].values()), rtol=1e-5)
    assert not (tmp_path / "run" / "checkpoints" / "backup").exists()


# --------------------------------------------------------------------------- runs never clobber runs

def test_a_new_run_never_replaces_or_appends_to_another_runs_files(tmp_path, synthetic_dataset, capsys):
    """Guards "runs never clobber runs": after a finished run (weights, sidecars, training.csv), a new
    run refuses to start naming --resume, --overwrite and --checkpoint-dir, and so does --resume
    (no backup: nothing to resume, and appending its rows would mix two runs in training.csv);
    --overwrite deletes that run's files first; a backup is resumed only with --resume. Through
    train_and_test.main, the refusal comes before anything is written (exit 1)."""
    checkpoints, logs = tmp_path / "checkpoints", tmp_path / "logs"
    training.fit(toy_model(), constant_data(), epochs=1, steps_per_epoch=2, checkpoint_dir=str(checkpoints),
                 config_name="toy", verbose=0,
                 callbacks=training.standard_callbacks(str(logs), False, keras.Variable(0.0))[-1:])
    before = {path: path.read_bytes() for path in [*checkpoints.iterdir(), logs / "training.csv"]}
    assert checkpoints / "last.weights.h5" in before
    with pytest.raises(FileExistsError) as error:
        training.prepare_run_folders(str(checkpoints), str(logs), resume=False, overwrite=False)
    assert all(flag in str(error.value) for flag in ("--resume", "--overwrite", "--checkpoint-dir"))
    with pytest.raises(FileExistsError, match="no interrupted run to continue"):
        training.prepare_run_folders(str(checkpoints), str(logs), resume=True, overwrite=False)
    with pytest.raises(ValueError, match="pass one"):
        training.prepare_run_folders(str(checkpoints), str(logs), resume=True, overwrite=True)
    data = ["--data-dir", str(synthetic_dataset.data_dir), "--labels-dir", str(synthetic_dataset.labels_dir),
            "--cameras", str(synthetic_dataset.cameras_path), "--train-subjects", "S1", "--val-subjects", "none",
            "--config", "tiny", "--verbose", "0", "--checkpoint-dir", str(checkpoints), "--log-dir", str(logs)]
    import train_and_test
    assert train_and_test.main(["--mode", "train", *data]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in before} == before  # nothing touched
    training.prepare_run_folders(str(checkpoints), str(logs), resume=False, overwrite=True)
    assert not list(checkpoints.glob("*.weights.h5*")) and not (logs / "training.csv").exists()
    training.prepare_run_folders(str(checkpoints), str(logs), resume=False, overwrite=False)  # now free
    with pytest.raises(KeyboardInterrupt):  # an interrupted run: its backup is continued with --resume only
        training.fit(toy_model(), constant_data(), epochs=1, steps_per_epoch=4, checkpoint_dir=str(checkpoints),
                     config_name="toy", verbose=0, callbacks=[CrashAt(2)])
    with pytest.raises(FileExistsError, match="interrupted run"):
        training.prepare_run_folders(str(checkpoints), str(logs), resume=False, overwrite=False)
    training.prepare_run_folders(str(checkpoints), str(logs), resume=True, overwrite=False)


def test_training_names_the_sequences_it_lacks_and_refuses_an_empty_validation(synthetic_dataset, tmp_path, capsys):
    """Guards "complete or named" for training, before any slow work: a training subject with no files
    (S5) stops the run naming it and --allow-partial; with --allow-partial the block printed up front
    names what is used and what was left out and why, and the default validation (the last training
    subject, S5) of 0 sequences is an error naming --val-subjects none (it was "0 sequences ()")."""
    import train_and_test
    argv = ["--mode", "train", "--data-dir", str(synthetic_dataset.data_dir),
            "--labels-dir", str(synthetic_dataset.labels_dir), "--cameras", str(synthetic_dataset.cameras_path),
            "--train-subjects", "S1", "S5", "--config", "tiny", "--verbose", "0",
            "--checkpoint-dir", str(tmp_path / "checkpoints"), "--log-dir", str(tmp_path / "logs")]
    assert train_and_test.main(argv) == 1
    printed = capsys.readouterr()
    assert "S5 -: no videos or labels found" in printed.err and "--allow-partial" in printed.err
    assert train_and_test.main(argv + ["--allow-partial"]) == 2
    printed = capsys.readouterr()
    assert "Validation has 0 sequences of S5" in printed.err and "--val-subjects none" in printed.err
    assert "training: " in printed.out and "validation: 0 sequences" in printed.out
    assert "left out, subject not found (1):" in printed.out and "S1 Directions_ALL: an '_ALL'" in printed.out
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "logs").exists()  # nothing written
