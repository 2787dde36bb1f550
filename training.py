"""Everything around ``keras.Model.fit``: strategy, schedule, weights files, callbacks, resume.

* Strategy: ``default`` (one device), ``mirrored`` (all GPUs of one machine),
  ``multiworker`` (several machines, configured by ``TF_CONFIG``). ``--batch-size`` is the
  GLOBAL batch; each replica gets ``batch / replicas`` and every input pipeline reads its
  own share of the sequences (``distributed_dataset``).
* Weights: ``*.weights.h5`` written atomically (temporary file + ``os.replace``), with a
  sidecar ``<file>.json`` naming the model config, so that loading weights into another
  config fails with a message naming both.
* Resume: ``StepBackup`` keeps the full training state (weights + optimizer, whose step
  counter says where training is) in ``<checkpoint_dir>/backup``; ``fit`` restarts from it
  at the same epoch and step. Keras 3's own ``BackupAndRestore`` restores only the epoch
  (mid-epoch progress is lost) and overwrites its file in place, so it is not used.
* A non-finite loss stops training at once, naming the step, and leaves the last good
  state in ``<checkpoint_dir>/last_good.weights.h5``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil

import keras
import numpy as np
import tensorflow as tf
from keras.src.saving import saving_lib  # save_weights_only(objects_to_skip=...): weights without the optimizer

import tensorboard_logging
from losses import NonFiniteLossError, RaiseOnNonFinite

STRATEGIES = ("default", "mirrored", "multiworker")
BACKUP_DIR_NAME = "backup"
BACKUP_FILE_NAME = "state.weights.h5"
LAST_GOOD_FILE_NAME = "last_good.weights.h5"


# --------------------------------------------------------------------------- strategy

def make_strategy(name: str, cpu_replicas: int = 0) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (one of ``STRATEGIES``).

    ``mirrored`` uses every GPU of this machine; with ``cpu_replicas`` N > 0 (a machine without
    GPUs) it splits the CPU into N logical devices, one replica each, to try multi-replica
    training anywhere. ``multiworker`` needs ``TF_CONFIG`` (the cluster and this process's task),
    set the same in every process except for ``task.index``.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(split_cpu(cpu_replicas) if cpu_replicas else None)
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "--strategy multiworker needs the TF_CONFIG environment variable in every worker "
                "process, e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", "
                "\"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}' (index 1 "
                "in the second). See README, 'Training on several machines'.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


def split_cpu(replicas: int) -> list[str]:
    """Split the CPU into ``replicas`` logical devices; returns their names.

    Must run before TensorFlow initialises its devices (before any tensor is made).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as error:  # already initialised: only an unchanged split is usable
        if len(tf.config.list_logical_devices("CPU")) != replicas:
            raise ValueError(f"Cannot split the CPU into {replicas} devices after TensorFlow has started "
                             f"({error}); split it first.") from error
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The batch each replica sees; the global batch must split evenly across replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size < replicas or global_batch_size % replicas:
        raise ValueError(f"--batch-size {global_batch_size} is the global batch and must be a "
                         f"multiple of the {replicas} replicas of the strategy; use e.g. "
                         f"{max(1, global_batch_size // replicas) * replicas}.")
    return global_batch_size // replicas


def synchronize_batch_norm(model: keras.Model, strategy: tf.distribute.Strategy) -> int:
    """Make every BatchNormalization in ``model`` (backbone included) use global-batch statistics.

    With several replicas each would otherwise normalise over its own slice of the global batch,
    so training would differ from one device. Only for TensorFlow strategies with more than one
    replica: a single device needs nothing, and a saved model stays loadable by other backends.
    Returns how many layers were switched.
    """
    if strategy.num_replicas_in_sync <= 1:
        return 0
    batch_norms = [layer for layer in _all_layers(model)
                   if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in batch_norms:
        layer.synchronized = True  # read at call time by Keras' BatchNormalization
    return len(batch_norms)


def _all_layers(layer):
    """``layer`` and every layer nested in it (sub-models such as the ResNet backbone)."""
    yield layer
    for child in getattr(layer, "layers", []):
        yield from _all_layers(child)


def distributed_dataset(strategy: tf.distribute.Strategy, make_dataset, global_batch_size: int):
    """The training data, split across the strategy's replicas.

    make_dataset(batch_size, input_context) -> tf.data.Dataset yields batches of
    ``batch_size``; under a distributing strategy it is called once per input pipeline (one
    per worker) with the per-replica batch and an ``InputContext`` to shard the sequences by.
    """
    per_replica = per_replica_batch_size(global_batch_size, strategy)
    if strategy.num_replicas_in_sync == 1 and not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return make_dataset(global_batch_size, None)
    return strategy.distribute_datasets_from_function(
        lambda context: make_dataset(per_replica, context))


def is_chief_process(strategy: tf.distribute.Strategy) -> bool:
    """True where checkpoints and logs are written: single-machine runs and the multi-worker chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or not resolver.task_type or is_chief(resolver)


def is_chief(resolver) -> bool:
    """The chief task, or worker 0 when the cluster names no chief (TF_CONFIG's convention)."""
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


# --------------------------------------------------------------------------- optimizer

def make_optimizer(learning_rate: float, total_steps: int, warmup_steps: int = 0,
                   clipnorm: float | None = 1.0) -> keras.optimizers.Optimizer:
    """Adam with a linear warm-up then a cosine decay to 1% over ``total_steps``.

    The schedule is a function of the optimizer's step counter, which is saved with the
    weights, so a resumed run continues the same curve.
    """
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate * (0.0 if warmup_steps else 1.0),
        decay_steps=max(total_steps - warmup_steps, 1), alpha=0.01,
        warmup_target=learning_rate if warmup_steps else None, warmup_steps=warmup_steps)
    return keras.optimizers.Adam(schedule, clipnorm=clipnorm)


# --------------------------------------------------------------------------- weights files

def sidecar_path(weights_path: str) -> str:
    """The json beside a weights file (``best.weights.h5`` -> ``best.weights.h5.json``)."""
    return f"{weights_path}.json"


def _replace_atomically(write, path: str, suffix: str) -> None:
    """Call write(temporary_path), then move the result onto ``path`` in one step."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}{suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_weights(model: keras.Model, path: str, info: dict, include_optimizer: bool = False) -> None:
    """Write ``model``'s weights to ``path`` and ``info`` to its sidecar, each atomically.

    Published weights (best, last) hold the model only; the resume backup passes
    ``include_optimizer=True`` (Adam's two moments triple the file). Both files are written to
    temporary names first and moved into place, so a crash never leaves a half-written file under
    the final name. ``info`` must hold ``config`` (the config name).
    """
    if not path.endswith(".weights.h5"):
        raise ValueError(f"Weights file names must end in .weights.h5, got {path}")
    if "config" not in info:
        raise ValueError("save_weights needs info['config'], the model config's name")
    skip = None if include_optimizer or model.optimizer is None else [model.optimizer]
    _replace_atomically(lambda tmp: saving_lib.save_weights_only(model, tmp, objects_to_skip=skip),
                        path, ".weights.h5")

    def write_json(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2)
    _replace_atomically(write_json, sidecar_path(path), ".json")


def read_weights_info(path: str) -> dict | None:
    """The sidecar json of a weights file, or None when there is none."""
    side = sidecar_path(path)
    if not os.path.isfile(side):
        return None
    with open(side, encoding="utf-8") as handle:
        return json.load(handle)


def resolve_weights(path_or_url: str, sha256: str | None = None, cache_dir: str | None = None) -> str:
    """A local path for ``--weights``: a URL is downloaded once (with its sidecar, if served)
    by ``keras.utils.get_file`` and cached; a local path must exist. With ``sha256`` the file's
    hash must match (a mismatch is an error naming both hashes)."""
    if "://" not in path_or_url:
        if not os.path.isfile(path_or_url):
            raise FileNotFoundError(
                f"--weights {path_or_url}: no such file. Pass a .weights.h5 written by "
                "train_and_test.py (e.g. checkpoints/best.weights.h5) or a URL.")
        local = path_or_url
    else:
        local = _download(path_or_url, cache_dir)
    if sha256:
        check_sha256(local, sha256, path_or_url)
    return local


def _download(url: str, cache_dir: str | None) -> str:
    name = os.path.basename(url.split("?")[0]) or "weights.weights.h5"
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)  # get_file falls back to /tmp for a missing folder
    local = keras.utils.get_file(name, origin=url, cache_dir=cache_dir, cache_subdir="weights")
    try:
        keras.utils.get_file(name + ".json", origin=url + ".json", cache_dir=cache_dir, cache_subdir="weights")
    except Exception as error:  # the sidecar is optional for downloads; say what happens
        print(f"Note: no config sidecar at {url}.json ({error}); the weights are "
              "checked against the model's structure only.")
    return local


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: str, expected: str, source: str) -> None:
    """Raise ValueError naming both hashes when ``path``'s sha256 is not ``expected``."""
    actual = file_sha256(path)
    if actual != expected.strip().lower():
        raise ValueError(f"--weights {source}: sha256 is {actual} but --weights-sha256 expects "
                         f"{expected.strip().lower()}. The file ({path}) is damaged, incomplete or another "
                         "file; delete it and download it again, or check the hash you were given.")


def describe_weights(info: dict | None) -> str:
    """One phrase saying which weights a file holds, from its sidecar."""
    if not info:
        return "no sidecar: origin unknown"
    epoch = f"epoch {info['epoch']}" if "epoch" in info else "epoch unknown"
    return f"{epoch}, {info.get('selected_by', 'selection not recorded')}"


def check_weights_config(path: str, config_name: str) -> dict | None:
    """Raise ValueError naming both configs when the sidecar of ``path`` names another config.

    Cheap (reads the json only): call it before building a big model. Returns the sidecar
    info (None when the file has none).
    """
    info = read_weights_info(path)
    if info is not None and info.get("config") != config_name:
        raise ValueError(
            f"--weights {path} were trained with config '{info.get('config')}', but the model "
            f"is built with config '{config_name}'. Pass --config {info.get('config')} or "
            "weights trained with this config.")
    return info


def load_weights(model: keras.Model, path: str, config_name: str) -> dict | None:
    """Load weights saved by ``save_weights`` into ``model`` built from config ``config_name``.

    Call it before ``model.compile``: the file's optimizer state (and step counter) is then
    ignored, so a run started from these weights begins its own schedule at step 0.

    Raises ValueError naming both configs when the sidecar says the weights belong to another
    config, or naming the file and the config when the structure does not fit. Returns the
    sidecar info (None when the file has none).
    """
    info = check_weights_config(path, config_name)
    try:
        model.load_weights(path)
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(
            f"--weights {path} do not fit the '{config_name}' model "
            f"({'no sidecar json names their config' if info is None else 'same config name, different structure'}): "
            f"{str(error).splitlines()[0]}. Use weights written by train_and_test.py with "
            "this --config.") from error
    return info


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


class StepBackup(keras.callbacks.Callback):
    """Save the whole training state every ``every_steps`` steps and at each epoch end, atomically.

    The state is the weights plus the optimizer (its step counter tells ``fit`` where to
    resume). A state is only written while the loss is finite, so the backup is also the
    last good state when training diverges.
    """

    def __init__(self, checkpoint_dir: str, config_name: str, every_steps: int):
        super().__init__()
        if every_steps < 1:
            raise ValueError(f"every_steps must be >= 1, got {every_steps}")
        self.path, self.config_name, self.every_steps = (
            backup_path(checkpoint_dir), config_name, every_steps)
        self.saved_step = None  # optimizer step of the state on disk

    def save(self) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        save_weights(self.model, self.path, {"config": self.config_name, "step": step}, include_optimizer=True)
        self.saved_step = step

    def on_train_begin(self, logs=None):
        if not os.path.isfile(self.path):
            self.save()  # so there is a last good state even before the first backup
        else:
            self.saved_step = int(self.model.optimizer.iterations.numpy())

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every_steps == 0 and _finite_loss(logs):
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        if _finite_loss(logs) and self.saved_step != int(self.model.optimizer.iterations.numpy()):
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

    def __init__(self, backup: StepBackup, checkpoint_dir: str, steps_per_epoch: int):
        super().__init__()
        self.backup, self.steps_per_epoch = backup, steps_per_epoch
        self.last_good_path = os.path.join(checkpoint_dir, LAST_GOOD_FILE_NAME)

    def on_train_batch_end(self, batch, logs=None):
        try:
            super().on_train_batch_end(batch, logs)
        except NonFiniteLossError as error:
            step = int(self.model.optimizer.iterations.numpy())
            epoch, in_epoch = divmod(step - 1, self.steps_per_epoch)
            if not os.path.isfile(self.backup.path):  # another worker than the chief: nothing to keep
                raise
            shutil.copyfile(self.backup.path, self.last_good_path)
            shutil.copyfile(sidecar_path(self.backup.path), sidecar_path(self.last_good_path))
            raise NonFiniteLossError(
                f"The loss became non-finite at training step {step} (epoch {epoch + 1}, batch "
                f"{in_epoch + 1} of {self.steps_per_epoch}); training stopped. The last good weights "
                f"(step {self.backup.saved_step}) are in {self.last_good_path}. {error}") from error


# --------------------------------------------------------------------------- resumable fit

def restore_backup(model: keras.Model, checkpoint_dir: str, resume: bool) -> int:
    """Load the interrupted run's state if ``resume``; return the optimizer step to start from.

    Without ``resume`` an existing backup is an error (it would be silently overwritten).
    """
    if not model.optimizer.built:  # the backup must hold the optimizer's variables
        with model.distribute_strategy.scope():
            model.optimizer.build(model.trainable_variables)
    path = backup_path(checkpoint_dir)
    if not os.path.isfile(path):
        if resume:
            print(f"--resume: no interrupted run in {os.path.dirname(path)}; starting from scratch.")
        return 0
    if not resume:
        raise FileExistsError(
            f"{os.path.dirname(path)} holds the state of an interrupted run. Pass --resume to "
            "continue it, or delete that folder to start over.")
    model.load_weights(path)
    return int(model.optimizer.iterations.numpy())


def fit(model: keras.Model, train_data, *, epochs: int, steps_per_epoch: int, checkpoint_dir: str,
        config_name: str, resume: bool = False, validation_data=None, validation_steps=None,
        monitor: str | None = None, selection: str = "", backup_every: int = 100, callbacks=(),
        verbose="auto", is_chief: bool = True):
    """``model.fit`` with atomic checkpoints, backups, a non-finite guard and resume.

    The model must be compiled (its optimizer's step counter is the training step). With
    ``resume`` the run restarts from ``<checkpoint_dir>/backup`` at the same epoch and step:
    the interrupted epoch is finished first (its remaining steps), then the other epochs.
    monitor: the log that picks ``best.weights.h5`` (None: only ``last.weights.h5``), and
    selection: what the validation data were, written in its sidecar. Only the chief
    (``is_chief``) writes; the other workers of a multi-worker run read the chief's backup when
    resuming (so ``checkpoint_dir`` must be on a file system they all see). Ctrl-C saves the
    state first. Returns the list of ``History`` objects of the ``model.fit`` calls made.
    """
    step = restore_backup(model, checkpoint_dir, resume)
    start_epoch, start_batch = divmod(step, steps_per_epoch)
    if resume and step:
        print(f"Resuming at epoch {start_epoch + 1}, step {start_batch} of {steps_per_epoch} "
              f"(training step {step}).")
    backup = StepBackup(checkpoint_dir, config_name, backup_every)
    guard = TerminateOnNonFinite(backup, checkpoint_dir, steps_per_epoch)
    writers = [backup, AtomicCheckpoint(checkpoint_dir, config_name, monitor, resume=resume, selection=selection)]
    common = dict(callbacks=[guard, *(writers if is_chief else []), *callbacks], validation_data=validation_data,
                  validation_steps=validation_steps, verbose=verbose, shuffle=False)
    histories = []
    try:
        if start_batch and start_epoch < epochs:  # finish the interrupted epoch
            histories.append(model.fit(train_data, initial_epoch=start_epoch, epochs=start_epoch + 1,
                                       steps_per_epoch=steps_per_epoch - start_batch, **common))
            start_epoch += 1
        if start_epoch < epochs:
            histories.append(model.fit(train_data, initial_epoch=start_epoch, epochs=epochs,
                                       steps_per_epoch=steps_per_epoch, **common))
    except KeyboardInterrupt:
        if is_chief:  # the steps done so far are not lost
            backup.save()
            print(f"\nInterrupted: the training state at step {backup.saved_step} is saved in "
                  f"{os.path.dirname(backup.path)}.")
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
