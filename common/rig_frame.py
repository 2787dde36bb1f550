"""The rig's own frame: a world frame computed from the cameras alone.

The model's canonical space is the frame its cameras are given in, so a calibration's world
frame (whatever a board or a program chose) would change what the model sees. Every rig is
therefore re-expressed, before anything else, in a frame that depends on the cameras only:

* up (z): the mean of the cameras' image-up directions (a camera's image y axis points down);
* origin: the point nearest every optical axis (least squares), where the cameras look;
* yaw (x): from the cameras' horizontal viewing directions, whatever their order
  (``yaw_direction``): their mean where it is clear (cameras on one side of the scene); for a
  ring of cameras around it (Human3.6M's), whose directions cancel out, the ring's long axis,
  pointed the way its farthest camera looks; y = z x x (right-handed);
* millimetres, as the calibration.

No part of the frame depends on the order of the cameras, so an order-free (``mean``) model gives
the same 3D joints for the cameras listed in any order.

A world point maps to ``X_rig = rotation @ (X_world - origin)``; turning or moving the
calibration's world frame leaves the rig frame where it was relative to the cameras, so the
same rig gives the same inputs, and the 3D output is mapped back with ``to_world``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from common import geometry

# Regularisation toward the cameras' centroid (relative to one axis' weight): only matters
# when the optical axes are (nearly) parallel and the least-squares point is ill-posed.
AXES_REGULARISATION = 1e-3
# The mean horizontal viewing direction sets the yaw when its length is at least this share of
# the summed lengths it averages (2 cameras 90 degrees apart: 0.71; Human3.6M's ring: 0.004 to 0.016).
CLEAR_MEAN_DIRECTION = 0.25


@dataclasses.dataclass(frozen=True)
class RigFrame:
    """A rigid frame: ``X_rig = rotation @ (X_world - origin)``; rotation (3, 3), origin (3,) mm."""

    rotation: np.ndarray
    origin: np.ndarray

    def to_rig(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world mm -> (..., 3) rig mm."""
        return (np.asarray(points, np.float64) - self.origin) @ self.rotation.T

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) rig mm -> (..., 3) world mm."""
        return np.asarray(points, np.float64) @ self.rotation + self.origin

    def camera_to_rig(self, camera: geometry.Camera) -> geometry.Camera:
        """The same camera with its extrinsics in the rig frame: ``R' = R rotation^T``, ``t' = R origin + t``."""
        return dataclasses.replace(camera, R=camera.R @ self.rotation.T, t=camera.R @ self.origin + camera.t)

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous world -> rig transform."""
        matrix = np.eye(4)
        matrix[:3, :3], matrix[:3, 3] = self.rotation, -self.rotation @ self.origin
        return matrix


def up_direction(cameras) -> np.ndarray:
    """(3,) unit world vector: the mean image-up direction (minus each camera's y axis)."""
    mean = -np.mean([camera.R[1] for camera in cameras], axis=0)
    norm = np.linalg.norm(mean)
    if norm < 1e-6:
        raise ValueError("The cameras' image-up directions cancel out (cameras upside down against each "
                         "other?); the rig frame needs cameras that agree on which way is up.")
    return mean / norm


def nearest_point_to_axes(cameras) -> np.ndarray:
    """(3,) world mm: the point with the least summed squared distance to every optical axis."""
    centres = np.array([camera.center for camera in cameras])
    system, target = np.zeros((3, 3)), np.zeros(3)
    for centre, axis in zip(centres, (camera.R[2] for camera in cameras)):
        across = np.eye(3) - np.outer(axis, axis)  # removes the component along the axis
        system += across
        target += across @ centre
    weight = AXES_REGULARISATION * len(cameras)
    return np.linalg.solve(system + weight * np.eye(3), target + weight * centres.mean(axis=0))


def _order_free_sum(vectors: np.ndarray) -> np.ndarray:
    """Sum of (N, ...) arrays in a fixed order (sorted by value), so that the rounding, and every
    decision taken on a near-zero sum, is the same for the cameras in any order."""
    flat = vectors.reshape(len(vectors), -1)
    return vectors[np.lexsort(flat.T[::-1])].sum(axis=0)


def yaw_direction(cameras, up: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """(3,) unit horizontal world vector, the rig frame's x axis; the same for the cameras in any order.

    The cameras' viewing directions made horizontal (h_i, their lengths kept: a camera looking
    nearly straight down counts little) give the mean direction sum(h_i) when it is clear
    (``CLEAR_MEAN_DIRECTION``). A ring of cameras around the scene cancels it out; there the axis
    along which the directions spread most (the top eigenvector of sum(h_i h_i^T)) is taken,
    pointed the way the camera farthest from ``origin`` looks (Human3.6M: 55011271, 0.5 m
    farther than the next on every subject). A rig symmetric in every way has
    no preferred yaw; the rule then picks one of its equivalent ones, still independently of the order.
    """
    across = np.eye(3) - np.outer(up, up)
    horizontal = np.array([across @ camera.R[2] for camera in cameras])
    mean, total = _order_free_sum(horizontal), np.linalg.norm(horizontal, axis=1).sum()
    if total < 1e-6:
        raise ValueError("Every camera looks straight up or down: the rig frame needs cameras that see "
                         "the scene from the side to tell its horizontal directions apart.")
    if np.linalg.norm(mean) >= CLEAR_MEAN_DIRECTION * total:
        return mean / np.linalg.norm(mean)
    spread = _order_free_sum(np.einsum("ni,nj->nij", horizontal, horizontal))
    axis = across @ np.linalg.eigh(spread)[1][:, -1]  # eigh sorts the eigenvalues in ascending order
    # The camera farthest from the origin (ties: the first in value order, not in the given order).
    distances = np.array([np.linalg.norm(across @ (camera.center - origin)) for camera in cameras])
    order = np.lexsort(horizontal.T[::-1])
    farthest = order[np.argmax(distances[order])]
    if axis @ horizontal[farthest] < 0:
        axis = -axis
    return axis / np.linalg.norm(axis)


def rig_frame(cameras) -> RigFrame:
    """The rig frame of ``cameras`` (a sequence of ``geometry.Camera``, in any order)."""
    cameras = list(cameras)
    if len(cameras) < 2:
        raise ValueError(f"A rig frame needs at least 2 cameras, got {len(cameras)}.")
    up = up_direction(cameras)
    origin = nearest_point_to_axes(cameras)
    x_axis = yaw_direction(cameras, up, origin)
    rotation = np.stack([x_axis, np.cross(up, x_axis), up])
    return RigFrame(rotation=rotation, origin=origin)


def cameras_in_rig_frame(cameras) -> tuple[list, RigFrame]:
    """(the cameras with extrinsics in their rig frame, that frame)."""
    frame = rig_frame(cameras)
    return [frame.camera_to_rig(camera) for camera in cameras], frame
