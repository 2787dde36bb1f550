"""Props of the synthetic scene: boxes standing on the floor (chairs, tables, cabinets) that hide
parts of the person in some views, as Human3.6M's chairs do in Sitting and SittingDown.

Each sequence gets its own props, placed between the person and a camera chosen at random, never
on the person's path, so every prop hides something in one view and little in the others.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from common import geometry

_DISTANCE_MM = (900.0, 1700.0)     # from the person's mean floor point toward the chosen camera
_HALF_SIZE_MM = (200.0, 450.0)     # half the width and the depth of a box
_HEIGHT_MM = (450.0, 1150.0)
_CLEARANCE_MM = 250.0              # between a box's corner and the pelvis, in every frame
_COLOURS_RGB = ((105, 80, 60), (90, 90, 95), (130, 110, 85), (70, 75, 90), (120, 60, 50))


@dataclasses.dataclass(frozen=True)
class Prop:
    """A box on the floor: ``centre`` (x, y) world mm, ``half_size`` (along, across) mm, ``height``
    mm, ``yaw`` radians about z, ``colour_rgb``."""

    centre: tuple
    half_size: tuple
    height: float
    yaw: float
    colour_rgb: tuple

    def corners(self) -> np.ndarray:
        """(8, 3) world mm."""
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        signs = np.array([(x, y) for x in (-1, 1) for y in (-1, 1)], np.float64) * self.half_size
        floor = np.asarray(self.centre) + signs @ np.array([[c, s], [-s, c]])
        return np.concatenate([np.c_[floor, np.zeros(4)], np.c_[floor, np.full(4, self.height)]])

    def outline(self, camera: geometry.Camera) -> np.ndarray:
        """(P, 2) distorted px: the convex outline of the box in ``camera``'s image."""
        points = geometry.project(self.corners(), camera).astype(np.float32)
        return cv2.convexHull(points)[:, 0].astype(np.float64)

    def depth(self, camera: geometry.Camera) -> float:
        """The box centre's depth in ``camera`` (mm): its place in the painting order."""
        centre = np.array([*self.centre, self.height / 2])
        return float(geometry.world_to_camera(centre, camera)[2])


def place_props(poses: np.ndarray, cameras, count: int, rng: np.random.Generator) -> tuple:
    """``count`` props for a sequence of ``poses`` (T, 32, 3) world mm filmed by ``cameras``.

    Each stands between the person's mean floor point and one camera (chosen at random), at least
    ``_CLEARANCE_MM`` from the pelvis in every frame; a prop that finds no such place within 20
    tries (a person walking everywhere) is left out, so a sequence may get fewer.
    """
    cameras, pelvis = list(cameras), poses[:, 0, :2]
    middle, props = pelvis.mean(axis=0), []
    for _ in range(count):
        camera = cameras[int(rng.integers(len(cameras)))]
        toward = camera.center[:2] - middle
        toward /= np.linalg.norm(toward)
        half = tuple(rng.uniform(*_HALF_SIZE_MM, 2))
        height, yaw = rng.uniform(*_HEIGHT_MM), rng.uniform(0, np.pi)
        colour = _COLOURS_RGB[int(rng.integers(len(_COLOURS_RGB)))]
        for distance in np.linspace(*_DISTANCE_MM, 20):
            centre = middle + distance * toward + rng.normal(0, 150, 2)
            if np.min(np.linalg.norm(pelvis - centre, axis=1)) > np.hypot(*half) + _CLEARANCE_MM:
                props.append(Prop(tuple(centre), half, float(height), float(yaw), colour))
                break
    return tuple(props)
