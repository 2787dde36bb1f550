"""Where a training crop's box and frame come from: the geometry augmentations, in TensorFlow ops.

A crop is a box of ``box_mm`` around a 3D root, seen by each camera (``crops.root_box``). At
test time the root comes from the videos (``root_finder``, refined by the model), so it is off
the labelled pelvis by some tens of millimetres; training crops are therefore cut around the
labelled pelvis moved by a random 3D offset (``root_jitter_mm``, the root finder's error), so
the crop's centre, its scale and what it shows all vary as they will at test time. For rigs
unlike Human3.6M's the same machinery also draws (each exact for the labels):

* ``box_scale_jitter``: the box side times U(1 - a, 1 + a), as other camera distances do;
* ``roll_deg``: each crop turned in the image plane by U(-r, r) degrees about its centre, a
  camera roll folded into the crop matrix (so K, P and the 2D targets follow; the crop's K is
  then no longer upper triangular, which ``dlt_layer.undistort`` handles);
* ``world_yaw`` / ``world_shift_mm``: the canonical frame turned about the vertical by
  U(0, 360) degrees and moved horizontally by U(-s, s) per axis (P and the 3D targets follow);
* ``view_subsets``: a random 2..V of the views are visible (``view_mask``), in a random order.

Every draw comes from a stateless generator keyed per sample, so a sample gets the same crop
whatever the number of workers. Frames: ``rig`` (4, 4) maps world mm to the rig frame
(``rig_frame``), the canonical frame the model works in.
"""
from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

from common import lens_ops

TRUNCATE_SIGMAS = 2.5  # root offsets beyond this many standard deviations are redrawn at the bound


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """The random geometry of a training crop (see the module doc); all zeros: the plain root box."""

    root_jitter_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    box_scale_jitter: float = 0.0
    roll_deg: float = 0.0
    world_yaw: bool = False
    world_shift_mm: float = 0.0
    view_subsets: bool = False

    def __post_init__(self):
        if len(self.root_jitter_mm) != 3 or min(self.root_jitter_mm) < 0:
            raise ValueError(f"root_jitter_mm must be 3 standard deviations >= 0 (x, y, up), got {self.root_jitter_mm}")
        if not 0 <= self.box_scale_jitter < 1 or self.roll_deg < 0 or self.world_shift_mm < 0:
            raise ValueError(f"Need 0 <= box_scale_jitter < 1, roll_deg >= 0, world_shift_mm >= 0; got {self}")

    def describe(self) -> str:
        parts = [f"3D root jitter sd {', '.join(f'{v:g}' for v in self.root_jitter_mm)} mm (x, y, up)"]
        parts += [f"box scale x U(1 -/+ {self.box_scale_jitter:g})"] if self.box_scale_jitter else []
        parts += [f"roll U(-/+ {self.roll_deg:g} deg)"] if self.roll_deg else []
        parts += ["world turned about the vertical"] if self.world_yaw else []
        parts += [f"world moved U(-/+ {self.world_shift_mm:g} mm)"] if self.world_shift_mm else []
        parts += ["random 2..V views in random order"] if self.view_subsets else []
        return "; ".join(parts)


NO_AUGMENTATION = Augmentation()


# --------------------------------------------------------------------------- drawing

def draw(key: tf.Tensor, augmentation: Augmentation, num_views: int) -> dict:
    """The random quantities of one sample, from a stateless ``key`` (shape (2,) int64).

    root_offset (3,) rig-frame mm; box_scale (V,); roll (V,) radians; yaw () radians;
    shift (3,) mm; order (V,) int32 permutation; visible () int32 views kept (2..V).
    """
    keys = tf.unstack(tf.random.experimental.stateless_split(key, 7))
    sigma = tf.constant(augmentation.root_jitter_mm, tf.float64)
    normal = tf.random.stateless_normal((3,), keys[0], dtype=tf.float64)
    scale = augmentation.box_scale_jitter
    roll = math.radians(augmentation.roll_deg)
    shift = augmentation.world_shift_mm
    views = tf.range(num_views, dtype=tf.int32)
    return {
        "root_offset": tf.clip_by_value(normal, -TRUNCATE_SIGMAS, TRUNCATE_SIGMAS) * sigma,
        "box_scale": tf.random.stateless_uniform((num_views,), keys[1], 1 - scale, 1 + scale, tf.float64),
        "roll": tf.random.stateless_uniform((num_views,), keys[2], -roll, roll, tf.float64),
        "yaw": (tf.random.stateless_uniform((), keys[3], 0.0, 2 * math.pi, tf.float64)
                if augmentation.world_yaw else tf.constant(0.0, tf.float64)),
        "shift": tf.concat([tf.random.stateless_uniform((2,), keys[4], -shift, shift, tf.float64),
                            tf.zeros((1,), tf.float64)], 0),
        "order": (tf.random.experimental.stateless_shuffle(views, keys[5]) if augmentation.view_subsets else views),
        "visible": (tf.random.stateless_uniform((), keys[6], 2, num_views + 1, tf.int32)
                    if augmentation.view_subsets else tf.constant(num_views, tf.int32)),
    }


# --------------------------------------------------------------------------- geometry (float64)

def yaw_and_shift(yaw: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    """(4, 4) rigid map of the rig frame: turn by ``yaw`` about z, then move by ``shift`` (3,) mm."""
    cos, sin, zero, one = tf.cos(yaw), tf.sin(yaw), tf.zeros_like(yaw), tf.ones_like(yaw)
    rotation = tf.stack([tf.stack([cos, -sin, zero]), tf.stack([sin, cos, zero]), tf.stack([zero, zero, one])])
    top = tf.concat([rotation, shift[:, None]], axis=1)
    return tf.concat([top, tf.constant([[0, 0, 0, 1]], tf.float64)], axis=0)


def transform_points(matrix: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
    """(4, 4) rigid map applied to (..., 3) points."""
    return tf.linalg.matvec(matrix[:3, :3], points) + matrix[:3, 3]


def project(points: tf.Tensor, Rt: tf.Tensor, K: tf.Tensor, dist: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A (3,) world point seen by V cameras: (V, 2) distorted pixels and (V,) depths (mm).

    Rt (V, 3, 4), K (V, 3, 3), dist (V, 6) as ``geometry.Camera.dist`` (the lens model of
    ``lens_ops.distort``).
    """
    camera = tf.linalg.matvec(Rt[:, :, :3], points) + Rt[:, :, 3]
    depth = camera[:, 2]
    x_d, y_d = lens_ops.distort(camera[:, 0] / depth, camera[:, 1] / depth, dist)
    u = K[:, 0, 0] * x_d + K[:, 0, 1] * y_d + K[:, 0, 2]
    v = K[:, 1, 0] * x_d + K[:, 1, 1] * y_d + K[:, 1, 2]
    return tf.stack([u, v], axis=-1), depth


def box_matrices(root: tf.Tensor, Rt: tf.Tensor, K: tf.Tensor, dist: tf.Tensor, box_mm: tf.Tensor,
                 image_size: int, roll: tf.Tensor) -> tf.Tensor:
    """(V, 3, 3) frame pixels -> crop pixels of the box of side ``box_mm`` (V,) around the (3,) world root.

    Like ``crops.box_crop_matrix(*crops.root_box(...))``, turned by ``roll`` (V,) radians about
    the crop centre: ``u' = s Rot(roll) (u - c) + (S - 1) / 2`` with ``s = S / side``.
    """
    centre, depth = project(root, Rt, K, dist)
    focal = (K[:, 0, 0] + K[:, 1, 1]) / 2
    scale = image_size * depth / (box_mm * focal)
    cos, sin = tf.cos(roll) * scale, tf.sin(roll) * scale
    middle = tf.constant((image_size - 1) / 2, tf.float64)
    linear = tf.stack([tf.stack([cos, -sin], -1), tf.stack([sin, cos], -1)], axis=-2)  # (V, 2, 2)
    offset = middle - tf.linalg.matvec(linear, centre)
    top = tf.concat([linear, offset[:, :, None]], axis=-1)
    bottom = tf.broadcast_to(tf.constant([[[0, 0, 1]]], tf.float64), (tf.shape(top)[0], 1, 3))
    return tf.concat([top, bottom], axis=1)


def apply_affine(matrix: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
    """(V, 3, 3) affine pixel maps applied to (V, J, 2) points."""
    return tf.einsum("vij,vnj->vni", matrix[:, :2, :2], points) + matrix[:, None, :2, 2]


def warp_crops(images: tf.Tensor, window: tf.Tensor, image_size: int) -> tf.Tensor:
    """(V, C, C, 3) uint8 cached crops -> (V, S, S, 3) uint8 through the (V, 3, 3) affine maps ``window``
    (cached -> crop pixels): crop pixel p shows cached pixel ``window^-1 p`` (bilinear, pixel
    centres at integers, black outside the cached crop, rounded to the nearest grey level).

    When every view's map is a whole-pixel shift inside the cached crop (no augmentation), the
    warp would copy pixels bit for bit; a slice gives the same bytes at a fraction of the cost.
    """
    inverse = tf.cast(tf.linalg.inv(window)[:, :2], tf.float32)  # (V, 2, 3) crop -> cached pixels
    shift = inverse[:, ::-1, 2]  # (V, 2) source row, column of crop pixel (0, 0)
    cached = tf.cast(tf.shape(images)[1], tf.float32)
    copy = tf.reduce_all(tf.concat([
        tf.equal(tf.reshape(inverse[:, :, :2], (-1, 4)), [1.0, 0.0, 0.0, 1.0]),
        tf.equal(shift, tf.floor(shift)), shift >= 0, shift + image_size <= cached], axis=1))

    def window_copy():
        corner = tf.cast(shift, tf.int32)
        return tf.stack([tf.slice(images[view], [corner[view, 0], corner[view, 1], 0], [image_size, image_size, 3])
                         for view in range(images.shape[0])])

    warped = tf.cond(copy, window_copy, lambda: _bilinear_warp(images, inverse, image_size))
    return tf.ensure_shape(warped, (images.shape[0], image_size, image_size, 3))


@tf.function(jit_compile=True)
def _bilinear_warp(images: tf.Tensor, inverse: tf.Tensor, image_size: int) -> tf.Tensor:
    """``warp_crops``' resampling: (V, C, C, 3) uint8 by (V, 2, 3) float32 inverse maps -> (V, S, S, 3).

    Compiled by XLA into one loop of gathers and arithmetic, about 0.5 ms a view on one core:
    TensorFlow's ImageProjectiveTransformV3 took 2.4 to 3.3 ms, and a Python callback (OpenCV's
    warpAffine) aborts or hangs a process that exits while tf.data is still reading.
    """
    views, cached = images.shape[0], images.shape[1]
    pixels = tf.range(image_size, dtype=tf.float32)
    column, row = pixels[None, None, :], pixels[None, :, None]
    x = inverse[:, 0, 0, None, None] * column + inverse[:, 0, 1, None, None] * row + inverse[:, 0, 2, None, None]
    y = inverse[:, 1, 0, None, None] * column + inverse[:, 1, 1, None, None] * row + inverse[:, 1, 2, None, None]
    left, top = tf.floor(x), tf.floor(y)  # (V, S, S) the top-left neighbour
    across_x, across_y = x - left, y - top
    pixels_of = tf.reshape(images, (views * cached * cached, 3))
    first_of_view = tf.range(views)[:, None, None] * cached * cached
    value = 0.0
    for down, weight_y in ((0.0, 1 - across_y), (1.0, across_y)):
        for right, weight_x in ((0.0, 1 - across_x), (1.0, across_x)):
            u, v = left + right, top + down
            real = (u >= 0) & (u <= cached - 1) & (v >= 0) & (v <= cached - 1)  # else black
            index = (first_of_view + tf.cast(tf.clip_by_value(v, 0, cached - 1), tf.int32) * cached
                     + tf.cast(tf.clip_by_value(u, 0, cached - 1), tf.int32))
            value += tf.cast(tf.gather(pixels_of, index), tf.float32) * tf.where(real, weight_x * weight_y, 0.0)[..., None]
    return tf.cast(tf.floor(value + 0.5), tf.uint8)
