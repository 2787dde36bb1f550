"""Losses, metrics and the 3D-weight schedule for training the canonical-fusion model.

Everything that decides what the model is trained on lives here; ``train/run.py`` writes
the choice out in ``run_train``'s ``model.compile(loss=..., loss_weights=...)`` call, the one place to edit:

* ``Loss2D``: the 2D term on crop coordinates divided by the crop size S (so a value does
  not depend on S), MSE or L1.
* ``Loss3D``: the 3D term in world mm, L1 or Huber.
* ``Loss3DWeight``: the 3D term's weight, a non-trainable variable passed to ``compile`` as
  its loss weight, and a callback (pass it to ``fit``) that raises it from 0 after a warm-up
  (the paper trains through the DLT; a random network's triangulations would only add noise at
  the start). It weighs whatever loss sits under ``"kp3d"``, a user's own function included.
* ``mpjpe`` (mm) and ``pixel_error`` (px): metrics for ``compile(metrics=...)``, logged as
  ``kp3d_mpjpe`` and ``kp2d_pixel_error`` (``val_...`` on validation data).
* Non-finite values are never masked: a NaN/Inf 3D error makes the loss NaN/Inf, and
  ``RaiseOnNonFinite`` turns that into an error at the end of the step that produced it.
  Why a callback: an in-graph assertion has no backend-neutral ``keras.ops`` form, while
  the per-batch logs are plain numbers under every backend. The step that went non-finite
  has been applied, so restart from the last checkpoint.

The compiled step reads the 3D weight variable, which follows changes made between steps
under the TensorFlow (graph) and PyTorch (eager) backends; under JAX the jitted step captures
it as a constant, so there pass ``run_eagerly=True`` to compile or use a fixed weight.
"""
from __future__ import annotations

import math

import keras
from keras import ops

import options

SERIALIZATION_PACKAGE = "canonical_fusion"


_register = keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)


@_register
class Loss2D(keras.losses.Loss):
    """2D keypoint loss on normalised crop coordinates: ``kp2d / image_size``.

    y_true, y_pred: (B, V, J, 2) crop pixels -> (B,) mean over views, joints and x/y.
    kind: "mse" (squared error) or "l1" (absolute error).
    """

    KINDS = options.OPTIONS["loss_2d"].choices  # typed once, with --loss-2d

    def __init__(self, image_size: int, kind: str = "mse", name: str = "loss_2d", **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in self.KINDS:
            raise ValueError(f"Unknown 2D loss {kind!r}; choose one of {self.KINDS}.")
        self.image_size = image_size
        self.kind = kind

    def call(self, y_true, y_pred):
        error = (y_pred - ops.cast(y_true, y_pred.dtype)) / self.image_size
        per_value = ops.square(error) if self.kind == "mse" else ops.abs(error)
        return ops.mean(ops.reshape(per_value, (ops.shape(per_value)[0], -1)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size, "kind": self.kind}


@_register
class Loss3D(keras.losses.Loss):
    """3D joint loss in world mm.

    y_true, y_pred: (B, J, 3) mm -> (B,) mean over joints and coordinates.
    kind: "l1" (absolute error per coordinate) or "huber" (quadratic below ``huber_delta_mm``,
    linear above: robust to the wild triangulations of an untrained network).
    Nothing is masked: a non-finite prediction gives a non-finite loss (see module doc).
    """

    KINDS = options.OPTIONS["loss_3d"].choices  # typed once, with --loss-3d

    def __init__(self, kind: str = "l1", huber_delta_mm: float = 50.0, name: str = "loss_3d", **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in self.KINDS:
            raise ValueError(f"Unknown 3D loss {kind!r}; choose one of {self.KINDS}.")
        self.kind = kind
        self.huber_delta_mm = huber_delta_mm

    def call(self, y_true, y_pred):
        error = ops.abs(y_pred - ops.cast(y_true, y_pred.dtype))
        if self.kind == "huber":
            delta = self.huber_delta_mm
            quadratic = ops.minimum(error, delta)
            error = 0.5 * ops.square(quadratic) / delta + (error - quadratic)
        return ops.mean(ops.reshape(error, (ops.shape(error)[0], -1)), axis=-1)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "huber_delta_mm": self.huber_delta_mm}


def ramp_weight(step: int, final_weight: float, warmup_steps: int, ramp_steps: int) -> float:
    """3D-term weight at a training step: 0 for ``warmup_steps``, then linear to ``final_weight``
    over ``ramp_steps``, then constant."""
    if step < warmup_steps:
        return 0.0
    if ramp_steps <= 0:
        return final_weight
    return final_weight * min(1.0, (step - warmup_steps + 1) / ramp_steps)


class Loss3DWeight(keras.callbacks.Callback):
    """The 3D term's weight: ``variable`` goes into ``compile(loss_weights={"kp3d": ...})`` and
    this callback into ``fit(callbacks=...)``, which sets it before every training batch.

    The weight is 0 for ``warmup_steps`` steps, then rises linearly to ``final_weight`` over
    ``ramp_steps`` (``ramp_weight``). The step is the optimizer's iteration count, so a resumed
    run continues the schedule.
    """

    def __init__(self, final_weight: float, warmup_steps: int = 0, ramp_steps: int = 0):
        super().__init__()
        if final_weight < 0 or warmup_steps < 0 or ramp_steps < 0:
            raise ValueError(f"Need final_weight, warmup_steps, ramp_steps >= 0; got {final_weight}, "
                             f"{warmup_steps}, {ramp_steps}")
        self.final_weight, self.warmup_steps, self.ramp_steps = final_weight, warmup_steps, ramp_steps
        self.variable = keras.Variable(ramp_weight(0, final_weight, warmup_steps, ramp_steps), dtype="float32",
                                       trainable=False, name="loss_3d_weight")

    def on_train_batch_begin(self, batch, logs=None):
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        self.variable.assign(ramp_weight(step, self.final_weight, self.warmup_steps, self.ramp_steps))


def mpjpe(y_true, y_pred):
    """Mean per-joint position error: (B, J, 3) world mm -> (B,) mm."""
    return ops.mean(ops.norm(y_pred - ops.cast(y_true, y_pred.dtype), axis=-1), axis=-1)


def pixel_error(y_true, y_pred):
    """Mean 2D joint error: (B, V, J, 2) crop pixels -> (B,) px over views and joints."""
    distance = ops.norm(y_pred - ops.cast(y_true, y_pred.dtype), axis=-1)
    return ops.mean(ops.reshape(distance, (ops.shape(distance)[0], -1)), axis=-1)


class NonFiniteLossError(FloatingPointError):
    """A loss or metric became NaN or Inf during training or evaluation."""


class RaiseOnNonFinite(keras.callbacks.Callback):
    """Raises ``NonFiniteLossError`` at the end of the first batch whose logs are not finite.

    Unlike ``keras.callbacks.TerminateOnNaN`` it fails loudly, naming the term (e.g.
    ``kp3d_loss``) and the batch, instead of ending ``fit`` as if it had finished.
    """

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"training batch {batch}")

    def on_test_batch_end(self, batch, logs=None):
        self._check(logs, f"evaluation batch {batch}")

    @staticmethod
    def _check(logs, where: str):
        bad = {name: float(value) for name, value in (logs or {}).items()
               if not math.isfinite(float(value))}
        if bad:
            raise NonFiniteLossError(
                f"Non-finite values {bad} at {where}. Nothing was skipped: a NaN/Inf in the 3D "
                "term usually means degenerate cameras (check P, K, dist of the batch) or a "
                "diverging step (lower the learning rate or the 3D weight); resume from the "
                "last checkpoint.")
