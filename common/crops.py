"""Where the crops come from: root-centred boxes, the generous cache box around them, cutting.

Protocol hygiene: a crop box is a square of FIXED world size (``CropConfig.box_mm``, about
2 m) around the 3D pelvis, projected into each view. It never looks at the frame's 2D labels
or at any other joint, so the test input says nothing about where the joints are.

Pixel convention (``h36m_utils``): pixel centres at integer coordinates; a box with centre
``c`` and side ``d`` covers ``[c - d/2, c + d/2]``, and ``box_crop_matrix`` puts those edges on
the crop's outer pixel edges ``-0.5`` and ``S - 0.5``.

The crop cache stores, per view, a crop ``pad`` pixels wider on every side than the final
crop, at the same scale (``CropConfig.cache_size = S + 2 pad``): the unjittered crop is then
the exact centre window of the cached one, and the training crops of ``crop_augmentation``
(root moved in 3D, box scaled, crop turned) are resampled from inside it.
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
from common import geometry


@dataclasses.dataclass(frozen=True)
class CropConfig:
    """How crops are cut.

    image_size: side S of the square crop the network sees, in pixels.
    box_mm: side of the world square around the root (pelvis) that a crop shows.
    margin: the cached crop shows ``margin`` x the box more on every side, at the same scale,
    so that a training crop whose 3D root, box size or roll is jittered
    (``crop_augmentation``) is still cut from real pixels; 0.25 covers a root moved by
    about 3 standard deviations of the root finder's error, a box 15% larger and a roll of
    30 degrees.
    """

    image_size: int
    box_mm: float = 2000.0
    margin: float = 0.25

    def __post_init__(self):
        if int(self.image_size) != self.image_size or self.image_size < 1:
            raise ValueError(f"image_size must be a positive integer, got {self.image_size!r}")
        if self.box_mm <= 0 or not 0 <= self.margin <= 1:
            raise ValueError(f"Need box_mm > 0 and 0 <= margin <= 1; got box_mm={self.box_mm}, margin={self.margin}")

    @property
    def pad(self) -> int:
        """Extra cached pixels on each side of the S x S crop."""
        return math.ceil(self.image_size * self.margin - 1e-9)

    @property
    def cache_size(self) -> int:
        """Side of a cached crop in pixels, ``S + 2 pad``."""
        return self.image_size + 2 * self.pad


def root_box(pelvis: np.ndarray, camera: geometry.Camera, box_mm: float) -> tuple[np.ndarray, float]:
    """The square box of a ``box_mm`` world square around the pelvis, as seen by ``camera``.

    pelvis: (3,) world mm. Returns (centre (2,) frame pixels, the distorted projection of the
    pelvis; side in pixels, ``box_mm`` at the pelvis' depth with the mean focal length).
    """
    depth = float(geometry.world_to_camera(pelvis, camera)[2])
    if not depth > 0:
        raise ValueError(f"The pelvis {pelvis} lies behind camera {camera.id} (depth {depth:.0f} mm); the "
                         "3D labels or the camera file are wrong.")
    focal = (camera.K[0, 0] + camera.K[1, 1]) / 2.0
    return geometry.project(pelvis, camera), box_mm * focal / depth


def box_crop_matrix(center: np.ndarray, side: float, image_size: int) -> np.ndarray:
    """(3, 3) ``geometry.crop_matrix`` mapping the box onto an S x S crop, pixel centres at integers.

    The box's edges ``center -/+ side / 2`` land on the crop's outer pixel edges -0.5 and S - 0.5.
    """
    scale = image_size / side
    offset = np.asarray(center, np.float64) - side / 2.0 + 0.5 / scale
    return geometry.crop_matrix(scale, offset[0], offset[1])


def cache_crop_matrix(center: np.ndarray, side: float, config: CropConfig) -> np.ndarray:
    """(3, 3) crop matrix of the cached crop of a box: the same scale, ``config.pad`` pixels wider."""
    return box_crop_matrix(center, side * config.cache_size / config.image_size, config.cache_size)


def crop_frame(frame: np.ndarray, crop: np.ndarray, image_size: int, out: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) frame -> (S, S, C) crop (channels kept in their order); outside the frame is black.

    ``out``: a C-contiguous (S, S, C) uint8 array to write into (saves an allocation per frame).
    """
    return cv2.warpAffine(frame, crop[:2], (image_size, image_size), dst=out, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
