"""lens_ops: the tensor lens model is the NumPy one (``geometry.distort_normalized``)."""
import keras
import numpy as np
import tensorflow as tf

from common import geometry
from common import lens_ops


def test_tensor_lens_model_equals_the_numpy_one_for_both_distortion_models():
    """Random points up to 40 degrees off-axis and random lenses of both models: keras.ops tensors
    (the DLT layer's) and TensorFlow tensors (the input pipeline's) give NumPy's distorted points."""
    rng = np.random.default_rng()
    xy = rng.uniform(-0.85, 0.85, (500, 2))
    for model, factor in geometry.TANGENTIAL_FACTOR.items():
        k, p = rng.normal(0, [0.2, 0.1, 0.05]), rng.normal(0, 2e-3, 2)
        expected = geometry.distort_normalized(xy, k, p, factor)
        assert np.abs(expected - xy).max() > 1e-2  # the lens does move the points
        dist = np.broadcast_to(np.concatenate([k, p, [factor]]), (len(xy), 6))
        for convert in (keras.ops.convert_to_tensor, tf.constant):
            x_d, y_d = lens_ops.distort(convert(xy[:, 0]), convert(xy[:, 1]), convert(dist))
            np.testing.assert_allclose(np.stack([np.asarray(x_d), np.asarray(y_d)], -1), expected,
                                       rtol=1e-12, atol=1e-14, err_msg=f"{model} through {convert.__name__}")
