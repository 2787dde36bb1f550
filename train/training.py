"""Everything around ``keras.Model.fit``: the learning-rate schedule, checkpoints, resume, logs.

* Checkpoints: ``last.weights.h5`` every epoch and ``best.weights.h5`` on the best validation
  value, model only, written atomically with a sidecar (``weights_files``).
* Resume: ``StepBackup`` keeps the full training state (weights + optimizer) in
  ``<checkpoint_dir>/backup``, with the position (``TrainingPosition``: batches run) in its
  sidecar; ``fit`` restarts from it at the same epoch and batch. Keras 3's own
  ``BackupAndRestore`` restores only the epoch (mid-epoch progress is lost) and overwrites its
  file in place, so it is not used.
* Steps: a training step is one optimizer update. With gradient accumulation
  (``make_optimizer(accumulate_steps=N)``) a step is N batches; ``--steps-per-epoch``,
  ``--backup-every``, the learning-rate schedule and the 3D-weight ramp all count steps, and
  ``fit`` runs N batches per step.
* A non-finite loss stops training at once, naming the step, and leaves the last good
  state in ``<checkpoint_dir>/last_good.weights.h5``.
"""
from __future__ import annotations

import csv
import math
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from common import distribution
from train import tensorboard_logging
from train.losses import SERIALIZATION_PACKAGE, NonFiniteLossError, RaiseOnNonFinite
from common.weights_files import read_weights_info, save_weights, sidecar_path

BACKUP_DIR_NAME = "backup"
BACKUP_FILE_NAME = "state.weights.h5"
LAST_GOOD_FILE_NAME = "last_good.weights.h5"


# --------------------------------------------------------------------------- optimizer

def make_optimizer(learning_rate: float, total_steps: int, warmup_steps: int = 0,
                   global_clipnorm: float | None = 1.0, accumulate_steps: int = 1) -> keras.optimizers.Optimizer:
    """Adam with a linear warm-up then a cosine decay to 1% over ``total_steps`` optimizer updates.

    global_clipnorm: the norm of ALL gradients together is clipped to it, so the update keeps
    its direction (Keras' ``clipnorm`` would clip each variable's gradient on its own).
    accumulate_steps N > 1: each update averages the gradients of N batches (Keras'
    ``gradient_accumulation_steps``; the clip applies to the average), so the effective batch
    is N times the batch; ``total_steps`` and ``warmup_steps`` still count updates.
    The schedule is a function of the optimizer's step counter, which is saved with the
    weights, so a resumed run continues the same curve.
    """
    if accumulate_steps < 1:
        raise ValueError(f"--accumulate-steps must be >= 1, got {accumulate_steps}")
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate * (0.0 if warmup_steps else 1.0),
        decay_steps=max(total_steps - warmup_steps, 1), alpha=0.01,
        warmup_target=learning_rate if warmup_steps else None, warmup_steps=warmup_steps)
    if accumulate_steps == 1:
        return keras.optimizers.Adam(schedule, global_clipnorm=global_clipnorm)
    return keras.optimizers.Adam(PerUpdateSchedule(schedule, accumulate_steps), global_clipnorm=global_clipnorm,
                                 gradient_accumulation_steps=accumulate_steps)


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class PerUpdateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule`` counted in optimizer updates of ``batches_per_update`` batches each.

    Under gradient accumulation Keras evaluates a schedule at its batch counter, which advances
    ``batches_per_update`` times per update (base_optimizer, Keras 3.15); the update that ends
    at batch k * N - 1 (0-based) gets the rate of step k - 1, as without accumulation.
    """

    def __init__(self, schedule, batches_per_update: int):
        self.schedule, self.batches_per_update = schedule, batches_per_update

    def __call__(self, step):
        return self.schedule(keras.ops.floor_divide(step, self.batches_per_update))

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule),
                "batches_per_update": self.batches_per_update}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["schedule"]), config["batches_per_update"])


def accumulation_steps(optimizer: keras.optimizers.Optimizer) -> int:
    """Batches per optimizer update (1 without gradient accumulation); sees through Keras'
    LossScaleOptimizer (mixed_float16)."""
    return getattr(optimizer, "inner_optimizer", optimizer).gradient_accumulation_steps or 1


# --------------------------------------------------------------------------- callbacks

class AtomicCheckpoint(keras.callbacks.Callback):
    """Keep ``last.weights.h5`` (every epoch) and ``best.weights.h5`` (best ``monitor``), atomically.

    Like ``keras.callbacks.ModelCheckpoint(save_best_only=...)`` twice, but each file is
    written to a temporary name and moved into place, holds the model only, and carries a
    sidecar json with the config name, the epoch, the logs and how it was selected
    (``selection``: what the validation data were). ``monitor`` None: no best file.
    """

    def __init__(self, checkpoint_dir: str, config_name: str, monitor: str | None = "val_loss",
                 mode: str = "min", resume: bool = False, selection: str = ""):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.checkpoint_dir, self.config_name, self.selection = checkpoint_dir, config_name, selection
        self.monitor, self.sign = monitor, 1.0 if mode == "min" else -1.0
        self.best = self._best_so_far() if resume and monitor else math.inf

    @property
    def last_path(self) -> str:
        return os.path.join(self.checkpoint_dir, "last.weights.h5")

    @property
    def best_path(self) -> str:
        return os.path.join(self.checkpoint_dir, "best.weights.h5")

    def _best_so_far(self) -> float:
        """The monitored value of an existing best checkpoint (a resumed run must beat it)."""
        info = read_weights_info(self.best_path) if os.path.isfile(self.best_path) else None
        value = (info or {}).get("logs", {}).get(self.monitor)
        return math.inf if value is None else self.sign * float(value)

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        if not all(math.isfinite(value) for value in logs.values()):
            return  # never overwrite a checkpoint with a diverged model
        info = {"config": self.config_name, "epoch": epoch + 1, "logs": logs}
        save_weights(self.model, self.last_path, {**info, "selected_by": "the last epoch trained"})
        if self.monitor is None:
            return
        value = logs.get(self.monitor)
        if value is None:
            raise KeyError(f"AtomicCheckpoint monitors '{self.monitor}' but the epoch logs hold "
                           f"only {sorted(logs)}")
        if self.sign * value < self.best:
            self.best = self.sign * value
            selected = f"{'lowest' if self.sign > 0 else 'highest'} {self.monitor} = {value:.2f}. {self.selection}"
            save_weights(self.model, self.best_path, {**info, "selected_by": selected.strip()})


def backup_path(checkpoint_dir: str) -> str:
    return os.path.join(checkpoint_dir, BACKUP_DIR_NAME, BACKUP_FILE_NAME)


class TrainingPosition(keras.callbacks.Callback):
    """Where training is: ``batches`` run by ``fit`` since the run began (before a resume too),
    ``epochs_done`` (epochs whose end, validation and files included, is complete) and the
    training logs of the epoch under way.

    A step is one optimizer update of ``batches_per_step`` batches (gradient accumulation), an
    epoch ``steps_per_epoch`` steps. The optimizer's counter cannot say where a run is: under
    accumulation it counts whole updates only, and a mixed_float16 step that Keras skips for an
    overflowing gradient is not counted. Put it first in ``fit``'s callbacks: at the end of an
    epoch that a resumed run began in its middle, it turns Keras' logs (the batches run since the
    resume) into the whole epoch's (``carried``: the logs and batches before the interruption,
    each batch counted once, as Keras' running means do), for every callback after it.
    """

    def __init__(self, batches: int, batches_per_step: int, steps_per_epoch: int, epochs_done: int = 0,
                 carried: tuple[dict, int] = ({}, 0)):
        super().__init__()
        self.batches, self.batches_per_step = batches, batches_per_step
        self.batches_per_epoch = steps_per_epoch * batches_per_step
        self.epochs_done, self.carried = epochs_done, carried
        self.running = {}  # Keras' logs after the last batch of this fit call's current epoch

    @property
    def step(self) -> int:
        """Optimizer updates completed."""
        return self.batches // self.batches_per_step

    def describe_last_batch(self) -> str:
        """e.g. "training step 6 (epoch 2, batch 2 of 4)": where the batch just run sits."""
        epoch, in_epoch = divmod(self.batches - 1, self.batches_per_epoch)
        step = -(-self.batches // self.batches_per_step)
        return f"training step {step} (epoch {epoch + 1}, batch {in_epoch + 1} of {self.batches_per_epoch})"

    def epoch_logs(self) -> dict:
        """The training logs of the epoch under way, over all of its batches run so far."""
        carried, carried_batches = self.carried
        in_epoch = self.batches - self.epochs_done * self.batches_per_epoch
        mine = in_epoch - carried_batches  # this fit call's batches of the epoch
        if not carried_batches or not mine:
            return dict(self.running or carried)
        return {key: (carried_batches * carried[key] + mine * value) / in_epoch if key in carried else value
                for key, value in self.running.items()}

    def on_epoch_begin(self, epoch, logs=None):
        self.running = {}

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        self.running = {key: float(value) for key, value in (logs or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self.carried[1]:
            logs.update(self.epoch_logs())
        self.carried = ({}, 0)


class EpochDone(keras.callbacks.Callback):
    """Put LAST in ``fit``'s callbacks: an epoch is done once every callback has ended it (checkpoints
    and logs written); then ``position`` counts it and ``backup`` (the chief's) saves the state, so a
    run interrupted before this point ends the epoch again when resumed, and never twice."""

    def __init__(self, position: TrainingPosition, backup=None):
        super().__init__()
        self.position, self.backup = position, backup

    def on_epoch_end(self, epoch, logs=None):
        self.position.epochs_done = epoch + 1
        if self.backup is not None and _finite_loss(logs):
            self.backup.save()


class StepBackup(keras.callbacks.Callback):
    """Save the whole training state every ``every_steps`` steps (and, through ``EpochDone``, at
    each epoch's end), atomically.

    The state is the weights plus the optimizer (with its gradient accumulators, if any); the
    sidecar records the step, the batches run, the epochs done and the epoch's logs so far
    (``position``), which is where a resumed run starts. A state is only written while the loss is finite, so the backup is also the last
    good state when training diverges.
    """

    def __init__(self, checkpoint_dir: str, config_name: str, every_steps: int, position: TrainingPosition):
        super().__init__()
        if every_steps < 1:
            raise ValueError(f"every_steps must be >= 1, got {every_steps}")
        self.path, self.config_name, self.every_steps, self.position = (
            backup_path(checkpoint_dir), config_name, every_steps, position)
        self.saved_step = self.saved_batches = None  # the state on disk

    def save(self) -> None:
        position = self.position
        self.saved_step, self.saved_batches = position.step, position.batches
        save_weights(self.model, self.path, {"config": self.config_name, "step": self.saved_step,
                                             "batches": self.saved_batches, "epochs_done": position.epochs_done,
                                             "epoch_logs": position.epoch_logs(),
                                             "batches_per_step": position.batches_per_step},
                     include_optimizer=True)

    def on_train_begin(self, logs=None):
        if not os.path.isfile(self.path):
            self.save()  # so there is a last good state even before the first backup
        else:
            self.saved_step, self.saved_batches = self.position.step, self.position.batches

    def on_train_batch_end(self, batch, logs=None):
        if self.position.batches % (self.every_steps * self.position.batches_per_step) == 0 and _finite_loss(logs):
            self.save()


def _finite_loss(logs) -> bool:
    loss = (logs or {}).get("loss")
    return loss is None or bool(np.isfinite(float(loss)))


class TerminateOnNonFinite(RaiseOnNonFinite):
    """Stop at the first non-finite loss term, naming the step, and keep the last good state.

    The check of every logged term is ``losses.RaiseOnNonFinite``'s; this adds the training step
    to the message and copies the latest ``StepBackup`` (written only while the loss was finite)
    to ``<checkpoint_dir>/last_good.weights.h5``. Raises ``NonFiniteLossError`` at once (no
    further callback runs, so no checkpoint is written from the diverged model).
    """

    def __init__(self, backup: StepBackup, checkpoint_dir: str):
        super().__init__()
        self.backup = backup
        self.last_good_path = os.path.join(checkpoint_dir, LAST_GOOD_FILE_NAME)

    def on_train_batch_end(self, batch, logs=None):
        try:
            super().on_train_batch_end(batch, logs)
        except NonFiniteLossError as error:
            if not os.path.isfile(self.backup.path):  # another worker than the chief: nothing to keep
                raise
            shutil.copyfile(self.backup.path, self.last_good_path)
            shutil.copyfile(sidecar_path(self.backup.path), sidecar_path(self.last_good_path))
            raise NonFiniteLossError(
                f"The loss became non-finite at {self.backup.position.describe_last_batch()}; training "
                f"stopped. The last good weights (step {self.backup.saved_step}) are in "
                f"{self.last_good_path}. {error}") from error


# --------------------------------------------------------------------------- resumable fit

def restore_backup(model: keras.Model, checkpoint_dir: str, resume: bool) -> dict:
    """Load the interrupted run's state if ``resume``; return its sidecar (``batches`` run,
    ``epochs_done``, ``epoch_logs``: the training logs of the epoch under way), or ``{"batches": 0}``
    when there is no backup.

    Without ``resume`` an existing backup is an error (it would be silently overwritten).
    """
    if not model.optimizer.built:  # the backup must hold the optimizer's variables
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)
    path = backup_path(checkpoint_dir)
    if not os.path.isfile(path):
        if resume:
            print(f"--resume: no interrupted run in {os.path.dirname(path)}; starting from scratch.")
        return {"batches": 0}
    if not resume:
        raise FileExistsError(
            f"{os.path.dirname(path)} holds the state of an interrupted run. Pass --resume to "
            "continue it, or --overwrite to start over.")
    info = read_weights_info(path)
    if info["batches_per_step"] != accumulation_steps(model.optimizer):  # the optimizer's variables differ too
        raise ValueError(
            f"{os.path.dirname(path)} holds a run with --accumulate-steps {info['batches_per_step']}: resume it "
            "with the same --accumulate-steps, or pass --overwrite to start over.")
    model.load_weights(path)
    return info


RUN_FILES = ("best.weights.h5", "last.weights.h5", LAST_GOOD_FILE_NAME)


def prepare_run_folders(checkpoint_dir: str, log_dir: str, resume: bool, overwrite: bool) -> None:
    """Before a training run writes anything: never mix it with another run's files.

    ``checkpoint_dir`` holding weights (best, last, last_good) or ``log_dir`` holding
    ``training.csv`` is another run's: a new run refuses to start, naming ``--resume``,
    ``--overwrite`` and ``--checkpoint-dir``. ``resume`` continues the run of the backup there
    (and appends to its log); without a backup there is nothing to resume, and the files there
    are another run's. ``overwrite`` deletes that run's checkpoints, backup, CSV and TensorBoard
    logs first.
    """
    backup = os.path.dirname(backup_path(checkpoint_dir))
    csv_log = os.path.join(log_dir, "training.csv")
    found = [path for path in (*(os.path.join(checkpoint_dir, name) for name in RUN_FILES), csv_log)
             if os.path.isfile(path)]
    if overwrite:
        if resume:
            raise ValueError("--resume continues the run in --checkpoint-dir and --overwrite deletes it: pass one.")
        for path in found:
            for name in (path, sidecar_path(path)):
                if os.path.isfile(name):
                    os.remove(name)
        shutil.rmtree(backup, ignore_errors=True)
        shutil.rmtree(os.path.join(log_dir, "tensorboard"), ignore_errors=True)
        if found:
            print(f"--overwrite: deleted the previous run's {', '.join(found)} (and its backup and TensorBoard logs).")
        return
    if os.path.isdir(backup):
        if not resume:
            raise FileExistsError(
                f"{backup} holds the state of an interrupted run. Pass --resume to continue it, --overwrite to "
                "delete it and start over, or another --checkpoint-dir (and --log-dir) for a new run.")
        return
    if not found:
        return
    if resume:
        raise FileExistsError(
            f"--resume: there is no interrupted run to continue in {checkpoint_dir} (no {BACKUP_DIR_NAME}/ "
            f"folder), but another run's files are there: {', '.join(found)}. Start a new run with --overwrite "
            "(deletes them) or with another --checkpoint-dir and --log-dir.")
    raise FileExistsError(
        f"A new training run would replace another run's files: {', '.join(found)}. Pass --resume to continue "
        "an interrupted run, --overwrite to delete them and start over, or another --checkpoint-dir (and "
        "--log-dir) to keep them.")


def keep_csv_rows_before(path: str, epochs_done: int) -> None:
    """Drop the rows of epochs ``>= epochs_done`` from a CSV log that a resumed run appends to: an
    epoch whose end was interrupted is ended again, and its row must be there once."""
    if not os.path.isfile(path):
        return
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs_done]
    if len(kept) != len(rows):
        with open(path, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(kept)


def _end_epoch_again(model: keras.Model, epoch: int, callbacks: list, logs: dict, validation_data,
                     validation_steps) -> None:
    """End ``epoch`` (0-based), whose training batches all ran before an interruption that came
    before its end was complete: validate, then every callback's ``on_epoch_end`` with the
    epoch's own training ``logs``, as ``model.fit`` would have."""
    print(f"Epoch {epoch + 1}'s training steps had all run: validating it and writing its checkpoints "
          "and logs now.")
    callback_list = keras.callbacks.CallbackList(callbacks, model=model)
    callback_list.on_train_begin()
    logs = dict(logs)
    if validation_data is not None:
        results = model.evaluate(validation_data, steps=validation_steps, return_dict=True, verbose=0)
        logs.update({f"val_{name}": float(value) for name, value in results.items()})
    callback_list.on_epoch_end(epoch, logs)
    callback_list.on_train_end()


def fit(model: keras.Model, train_data, *, epochs: int, steps_per_epoch: int, checkpoint_dir: str,
        config_name: str, resume: bool = False, validation_data=None, validation_steps=None,
        monitor: str | None = None, selection: str = "", backup_every: int = 100, callbacks=(),
        verbose="auto", is_chief: bool = True):
    """``model.fit`` with atomic checkpoints, backups, a non-finite guard and resume.

    train_data: a dataset, or a function ``batches -> dataset`` that gives the stream after its first
    ``batches`` batches: a resumed run (and every ``model.fit`` call here, each of which reads its
    data from the start) then sees the batches the uninterrupted run would have seen; a plain
    dataset is read from its start by every call.
    The model must be compiled. ``steps_per_epoch`` and ``backup_every`` count training steps
    (optimizer updates); under gradient accumulation (``make_optimizer(accumulate_steps=N)``)
    each step is N batches of ``train_data``, so Keras' progress bar counts N times more. With
    ``resume`` the run restarts from ``<checkpoint_dir>/backup`` at the same epoch and batch:
    an epoch whose batches all ran but whose end (validation, checkpoints, logs) was interrupted
    is ended first; the interrupted epoch is finished (its remaining batches, its logs over all of
    its batches), then the other epochs; a CSV log is cut to the epochs done, so every epoch has
    one row. The files end as an uninterrupted run's, wherever the interruption came.
    monitor: the log that picks ``best.weights.h5`` (None: only ``last.weights.h5``), and
    selection: what the validation data were, written in its sidecar. Only the chief
    (``is_chief``) writes; the other workers of a multi-worker run read the chief's backup when
    resuming (so ``checkpoint_dir`` must be on a file system they all see), and all must resume
    at the same batch. Ctrl-C or a runtime error (a lost worker, out of memory) saves the state
    first. Returns the list of ``History`` objects of the ``model.fit`` calls made.
    """
    if accumulation_steps(model.optimizer) > 1 and model.distribute_strategy is not tf.distribute.get_strategy():
        raise ValueError(  # Keras applies the update in a cond, where tf.distribute cannot all-reduce
            "--accumulate-steps needs --strategy default: Keras 3.15 cannot accumulate gradients under a "
            "tf.distribute strategy (keras-team/keras#20582). With several GPUs, the global --batch-size is "
            "split across them: raise it instead, or use --precision mixed_bfloat16 / mixed_float16.")
    state = restore_backup(model, checkpoint_dir, resume)
    batches = int(state["batches"])
    distribution.check_same_step(model.distribute_strategy, batches)
    batches_per_epoch = steps_per_epoch * accumulation_steps(model.optimizer)
    epochs_done = int(state.get("epochs_done", batches // batches_per_epoch))  # older backups: at epoch ends
    in_epoch = batches - epochs_done * batches_per_epoch  # batches of the epoch under way (all: its end is due)
    carried = state.get("epoch_logs") or {}
    position = TrainingPosition(batches, accumulation_steps(model.optimizer), steps_per_epoch, epochs_done,
                                (carried, in_epoch if carried else 0))
    start_epoch, start_batch = divmod(batches, batches_per_epoch)
    if resume and epochs_done >= epochs:
        print(f"The run in {checkpoint_dir} had finished its {epochs} epochs; nothing left to do.")
    elif resume and batches:
        print(f"Resuming at epoch {start_epoch + 1}, batch {start_batch} of {batches_per_epoch} "
              f"(training step {position.step}).")
    backup = StepBackup(checkpoint_dir, config_name, backup_every, position)
    writers = [backup, AtomicCheckpoint(checkpoint_dir, config_name, monitor, resume=resume, selection=selection)]
    every = [position, TerminateOnNonFinite(backup, checkpoint_dir), *(writers if is_chief else []), *callbacks,
             EpochDone(position, backup if is_chief else None)]
    for callback in callbacks:
        if isinstance(callback, keras.callbacks.CSVLogger) and callback.append:
            keep_csv_rows_before(callback.filename, epochs_done)
    common = dict(callbacks=every, validation_data=validation_data, validation_steps=validation_steps,
                  verbose=verbose, shuffle=False)
    histories = []

    def data_after(batches_run: int):
        return train_data(batches_run) if callable(train_data) else train_data
    try:
        if in_epoch == batches_per_epoch and epochs_done < epochs:  # its batches ran, its end did not
            _end_epoch_again(model, epochs_done, every, position.epoch_logs(), validation_data, validation_steps)
        if start_batch and start_epoch < epochs:  # finish the interrupted epoch
            histories.append(model.fit(data_after(batches), initial_epoch=start_epoch, epochs=start_epoch + 1,
                                       steps_per_epoch=batches_per_epoch - start_batch, **common))
            start_epoch += 1
        if start_epoch < epochs:
            histories.append(model.fit(data_after(start_epoch * batches_per_epoch),
                                       initial_epoch=start_epoch, epochs=epochs,
                                       steps_per_epoch=batches_per_epoch, **common))
    except (KeyboardInterrupt, tf.errors.OpError) as error:  # Ctrl-C, a lost worker, a damaged file, out of memory
        if is_chief:  # the steps done so far are not lost (each was checked finite)
            backup.save()
            what = "Interrupted" if isinstance(error, KeyboardInterrupt) else "Stopped"
            print(f"\n{what}: the training state at step {backup.saved_step} is saved in "
                  f"{os.path.dirname(backup.path)}.", flush=True)
        raise
    if is_chief:
        shutil.rmtree(os.path.dirname(backup.path), ignore_errors=True)  # finished: nothing to resume
    return histories


def standard_callbacks(log_dir: str, resume: bool, weight_3d: keras.Variable, preview_batch=None,
                       is_chief: bool = True) -> list:
    """TensorBoard logs under ``<log_dir>/tensorboard`` (``tensorboard_logging``), then the CSV log
    ``<log_dir>/training.csv`` (appended to when resuming), which so also records the learning rate
    and 3D weight that the first TensorBoard callback adds to the logs. Other workers than the
    chief write nothing."""
    board = tensorboard_logging.tensorboard_callbacks(os.path.join(log_dir, "tensorboard"), weight_3d,
                                                      preview_batch, is_chief=is_chief)
    if not is_chief:
        return board
    os.makedirs(log_dir, exist_ok=True)
    return [*board, keras.callbacks.CSVLogger(os.path.join(log_dir, "training.csv"), append=resume)]
