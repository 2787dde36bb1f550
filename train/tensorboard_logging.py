"""TensorBoard logs of a training run: every loss term, the schedules, and a picture per epoch.

``tensorboard_callbacks(log_dir, weight_3d, preview_batch)`` returns the callbacks to pass to
``model.fit`` (through ``training.fit``). Under ``log_dir`` TensorBoard then shows, per epoch:

* run ``train``: ``epoch_loss``, ``epoch_kp2d_loss``, ``epoch_kp3d_loss`` (and any other training
  metric), ``epoch_learning_rate`` and ``epoch_loss_3d_weight``;
* run ``validation``: the same terms and metrics measured on the validation data (the ``val_*``
  logs, e.g. ``epoch_kp3d_loss`` in mm); Keras also writes ``evaluation_<term>_vs_iterations``
  there, by optimizer step;
* run ``preview``: the image ``kp2d_predicted_vs_true``, predicted vs true 2D joints over the
  crops of a small fixed validation batch (``visualize.plot_keypoints_2d``).

The step of every entry is the epoch index (0-based, continued by a resumed run).
"""
from __future__ import annotations

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from common import visualize

PREVIEW_RUN = "preview"
PREVIEW_TAG = "kp2d_predicted_vs_true"


class AddSchedulesToLogs(keras.callbacks.Callback):
    """Put ``learning_rate`` and ``loss_3d_weight`` into each epoch's logs.

    Keras hands one logs dict to every callback in turn, so callbacks placed after this one
    (``CSVLogger``, ``TensorBoard``, ``History``) record both values with the loss terms.
    learning_rate: the optimizer's rate at its current step (its schedule evaluated at
    ``optimizer.iterations``: the rate of the next step); loss_3d_weight: the value of the
    variable weighting the 3D term (``losses.Loss3DWeight(...).variable``).
    """

    def __init__(self, weight_3d: keras.Variable):
        super().__init__()
        self.weight_3d = weight_3d

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:  # nothing is shared with later callbacks, so nothing to add
            return
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["loss_3d_weight"] = float(keras.ops.convert_to_numpy(self.weight_3d))


def render_keypoints_2d(images: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``visualize.plot_keypoints_2d`` as an RGB array (H, W, 3) uint8.

    images: (F, V, S, S, 3) uint8 crops; predicted, true: (F, V, 17, 2) crop pixels.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = visualize.plot_keypoints_2d(images, predicted, true, os.path.join(folder, "kp2d.png"))
        return tf.io.decode_png(tf.io.read_file(path), channels=3).numpy()


class KeypointPreview(keras.callbacks.Callback):
    """Write predicted vs true 2D joints on a fixed batch as a TensorBoard image, every epoch.

    log_dir: the folder of the writer (a TensorBoard run of its own); preview_batch:
    ``(inputs, targets)`` of numpy arrays as the data loader yields them, a few frames F:
    inputs {"images": (F, V, S, S, 3) uint8, "P", "K", "dist"}, targets {"kp2d": (F, V, 17, 2), ...}.
    The model must return a dict holding "kp2d" (F, V, 17, 2).
    """

    def __init__(self, log_dir: str, preview_batch, tag: str = PREVIEW_TAG):
        super().__init__()
        inputs, targets = preview_batch
        for name, group, key in (("inputs", inputs, "images"), ("targets", targets, "kp2d")):
            if key not in group:
                raise KeyError(f"The preview batch's {name} have no '{key}' (they hold {sorted(group)}); "
                               "pass (inputs, targets) as the data loader yields them.")
        self.inputs = {name: np.asarray(value) for name, value in inputs.items()}
        self.true_kp2d = np.asarray(targets["kp2d"])
        self.log_dir, self.tag = log_dir, tag
        self._writer = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_end(self, epoch, logs=None):
        # A plain call, not predict_on_batch: under a multi-worker strategy predict gathers the
        # outputs of every worker (a collective step), which would hang when only the chief draws.
        outputs = self.model(self.inputs, training=False)
        if not isinstance(outputs, dict) or "kp2d" not in outputs:
            raise KeyError("KeypointPreview needs a model whose outputs are a dict holding 'kp2d'.")
        image = render_keypoints_2d(self.inputs["images"], keras.ops.convert_to_numpy(outputs["kp2d"]),
                                    self.true_kp2d)
        with self._writer.as_default():
            tf.summary.image(self.tag, image[None], step=epoch,
                             description="2D joints on validation crops: predicted (solid) vs true (dashed)")
        self._writer.flush()  # on disk now, even if a later step fails

    def on_train_end(self, logs=None):
        self._writer.close()
        self._writer = None


def take_preview_batch(dataset: tf.data.Dataset, frames: int = 3):
    """The first ``frames`` samples of a batched ``(inputs, targets)`` dataset, as numpy arrays.

    For ``KeypointPreview``: use the validation data (fixed order), so every epoch draws the
    same crops. Returns (inputs, targets) with a leading axis of ``frames`` (fewer if the
    dataset is shorter).
    """
    first = next(iter(dataset.unbatch().batch(frames)), None)
    if first is None:
        raise ValueError("The dataset is empty: no preview batch to draw.")
    return tf.nest.map_structure(lambda tensor: tensor.numpy(), first)


def tensorboard_callbacks(log_dir: str, weight_3d: keras.Variable, preview_batch=None, *,
                          is_chief: bool = True) -> list:
    """The callbacks that write TensorBoard logs under ``log_dir`` (see the module doc).

    Put them BEFORE ``keras.callbacks.CSVLogger`` in the list given to ``fit``: the first one
    adds ``learning_rate`` and ``loss_3d_weight`` to the logs that the CSV log then records.
    weight_3d: the 3D-loss weight variable; preview_batch: ``(inputs, targets)`` of a few
    validation frames (``take_preview_batch``), or None for no image; is_chief: False on the
    non-chief workers of a multi-worker run, which then write nothing (the logs still get the
    two values, so every worker's logs have the same keys).
    """
    callbacks = [AddSchedulesToLogs(weight_3d)]
    if not is_chief:
        return callbacks
    callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"))
    if preview_batch is not None:
        callbacks.append(KeypointPreview(os.path.join(log_dir, PREVIEW_RUN), preview_batch))
    return callbacks
