"""Losses, their weights and the 3D-weight schedule for training the canonical-fusion model.

Everything that decides what the model is trained on lives here, easy to tweak:

* ``Loss2D``: the 2D term on crop coordinates divided by the crop size S (so a value does
  not depend on S), MSE or L1.
* ``Loss3D``: the 3D term in world mm, L1 or Huber. Its weight in the total is a
  non-trainable variable (passed to ``compile`` as a loss weight) that
  ``Loss3DWeightRamp`` raises from 0 after a warm-up (the paper trains through the DLT;
  a random network's triangulations would only add noise at the start).
* Non-finite values are never masked: a NaN/Inf 3D error makes the loss NaN/Inf, and
  ``RaiseOnNonFinite`` turns that into an error at the end of the step that produced it.
  Why a callback: an in-graph assertion has no backend-neutral ``keras.ops`` form, while
  the per-batch logs are plain numbers under every backend. The step that went non-finite
  has been applied, so restart from the last checkpoint.
* ``make_losses(mode, image_size)`` returns everything ``model.compile`` and ``model.fit``
  need for ``mode`` "2d", "3d" or "2d+3d".

The compiled step reads the 3D weight variable, which follows changes made
between steps under the TensorFlow (graph) and PyTorch (eager) backends; under JAX the
jitted step captures it as a constant, so there pass ``run_eagerly=True`` to compile or
use a fixed weight.
"""
from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops

SERIALIZATION_PACKAGE = "canonical_fusion"
LOSS_MODES = ("2d", "3d", "2d+3d")


_register = keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)


@_register
class Loss2D(keras.losses.Loss):
    """2D keypoint loss on normalised crop coordinates: ``kp2d / image_size``.

    y_true, y_pred: (B, V, J, 2) crop pixels -> (B,) mean over views, joints and x/y.
    kind: "mse" (squared error) or "l1" (absolute error).
    """

    KINDS = ("mse", "l1")

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

    KINDS = ("l1", "huber")

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


class Loss3DWeightRamp(keras.callbacks.Callback):
    """Sets the 3D weight variable before every training batch from ``ramp_weight``.

    The step is the optimizer's iteration count, so a resumed run continues the schedule.
    """

    def __init__(self, weight: keras.Variable, final_weight: float, warmup_steps: int, ramp_steps: int):
        super().__init__()
        self.weight = weight
        self.final_weight = final_weight
        self.warmup_steps = warmup_steps
        self.ramp_steps = ramp_steps

    def on_train_batch_begin(self, batch, logs=None):
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        self.weight.assign(ramp_weight(step, self.final_weight, self.warmup_steps, self.ramp_steps))


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


@dataclasses.dataclass
class LossSetup:
    """What ``model.compile(**setup.compile_kwargs())`` and ``model.fit(callbacks=setup.callbacks)`` need.

    loss: {"kp2d": Loss2D, "kp3d": Loss3D}; loss_weights: {"kp2d": float, "kp3d": weight_3d};
    weight_3d: the non-trainable variable weighting the 3D term, set by the ramp callback.
    """

    loss: dict
    loss_weights: dict
    callbacks: list
    weight_3d: keras.Variable

    def compile_kwargs(self) -> dict:
        return {"loss": self.loss, "loss_weights": self.loss_weights}


def make_losses(mode: str, image_size: int, *, loss_2d: str = "mse", loss_3d: str = "l1",
                huber_delta_mm: float = 50.0, weight_3d: float = 1e-4, warmup_steps: int = 0,
                ramp_steps: int = 0) -> LossSetup:
    """Losses, their weights and callbacks for ``mode``: "2d", "3d" or "2d+3d".

    Both terms are always computed, so the logs always show both (Keras logs the unweighted
    ``kp2d_loss`` and ``kp3d_loss``; ``loss`` is the weighted total), and the targets are
    always the loader's {"kp2d", "kp3d"}. The mode sets the weights: "2d": 1 and 0; "3d":
    0 and 1; "2d+3d": 1 and ``weight_3d``, reached by a linear ramp that starts after
    ``warmup_steps`` and lasts ``ramp_steps`` (both 0: no ramp).
    loss_2d: "mse" | "l1" on kp2d / image_size; loss_3d: "l1" | "huber" on kp3d in mm.
    The default weight_3d 1e-4 makes a 20 mm L1 error weigh like a 2D MSE of 0.002
    (about 6 px RMS at S = 128).
    """
    if mode not in LOSS_MODES:
        raise ValueError(f"Unknown loss mode {mode!r}; choose one of {LOSS_MODES}.")
    ramped = mode == "2d+3d" and (warmup_steps > 0 or ramp_steps > 0)
    final_3d = {"2d": 0.0, "3d": 1.0, "2d+3d": weight_3d}[mode]
    weight = keras.Variable(0.0 if ramped else final_3d, dtype="float32", trainable=False,
                            name="loss_3d_weight")
    callbacks = [RaiseOnNonFinite()]
    if ramped:
        callbacks.insert(0, Loss3DWeightRamp(weight, final_3d, warmup_steps, ramp_steps))
    return LossSetup(
        loss={"kp2d": Loss2D(image_size, loss_2d), "kp3d": Loss3D(loss_3d, huber_delta_mm)},
        loss_weights={"kp2d": 0.0 if mode == "3d" else 1.0, "kp3d": weight},
        callbacks=callbacks, weight_3d=weight)
