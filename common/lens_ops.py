"""The forward lens model for tensors, written once: ``geometry.distort_normalized``'s formula.

Written with arithmetic and indexing alone, so the same function runs on ``keras.ops`` tensors
of any backend (``dlt_layer.undistort``, inside the model) and on TensorFlow tensors inside
``tf.data`` (``crop_augmentation.project``), where ``keras.ops`` cannot run when the backend
is JAX. ``tests/test_lens_ops.py`` holds it equal to the NumPy ``geometry.distort_normalized``.
"""
from __future__ import annotations


def lens_terms(x, y, r2, dist):
    """The distortion as ``x_d = x * scale + offset_x``, ``y_d = y * scale + offset_y``.

    x, y: (...) normalised image coordinates; r2: (...) their squared radius ``x^2 + y^2`` (a
    caller may clip it); dist: (..., 6) ``[k1, k2, k3, p1, p2, tangential_factor]``
    (``geometry.Camera.dist``), or (..., 5) without the factor (Human3.6M's, 1). Returns
    (scale, offset_x, offset_y), each (...).
    """
    k1, k2, k3, p1, p2 = (dist[..., i] for i in range(5))
    factor = dist[..., 5] if dist.shape[-1] > 5 else 1.0
    scale = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3)) + factor * (p1 * y + p2 * x)
    return scale, p2 * r2, p1 * r2


def distort(x, y, dist):
    """Normalised image coordinates x, y (...) -> distorted (x_d, y_d), each (...); dist as ``lens_terms``."""
    scale, offset_x, offset_y = lens_terms(x, y, x * x + y * y, dist)
    return x * scale + offset_x, y * scale + offset_y
