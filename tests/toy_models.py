"""Small stand-ins for the tests of training, weights files and distribution: a dense model
that trains in milliseconds, and a data set that repeats one batch."""
import keras
import numpy as np
import tensorflow as tf

from train import training

STEPS_PER_EPOCH, EPOCHS = 4, 3


def toy_model(units: int = 3, seed: int = 0, compile: bool = True) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(units)(keras.layers.Dense(8, activation="tanh")(inputs)))
    if compile:
        model.compile(optimizer=training.make_optimizer(1e-2, STEPS_PER_EPOCH * EPOCHS, warmup_steps=2),
                      loss="mse")
    return model


def constant_data(nan_at_batch: int | None = None, batch: int = 4) -> tf.data.Dataset:
    """The same batch forever (so a resumed run sees the same data as an uninterrupted one);
    optionally a NaN batch at one position."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(batch, 5)).astype("float32"), rng.normal(size=(batch, 3)).astype("float32")
    batches = np.stack([x] * 20)
    if nan_at_batch is not None:
        batches[nan_at_batch] = np.nan
    return tf.data.Dataset.from_tensor_slices((batches, np.stack([y] * 20))).repeat()


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]
