"""The rig's own frame: a world frame computed from the cameras alone.

The model's canonical space is the frame its cameras are given in, so a calibration's world
frame (whatever a board or a program chose) would change what the model sees. Every rig is
therefore re-expressed, before anything else, in a frame that depends on the cameras only:

* up (z): the mean of the cameras' image-up directions (a camera's image y axis points down);
* origin: the point nearest every optical axis (least squares), where the cameras look;
* yaw (x): the first camera's optical axis, made horizontal; y = z x x (right-handed);
* millimetres, as the calibration.

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


def rig_frame(cameras) -> RigFrame:
    """The rig frame of ``cameras`` (a sequence of ``geometry.Camera``, the first sets the yaw)."""
    cameras = list(cameras)
    if len(cameras) < 2:
        raise ValueError(f"A rig frame needs at least 2 cameras, got {len(cameras)}.")
    up = up_direction(cameras)
    forward = cameras[0].R[2] - (cameras[0].R[2] @ up) * up
    if np.linalg.norm(forward) < 1e-6:  # the first camera looks straight up or down: use its image x axis
        forward = cameras[0].R[0] - (cameras[0].R[0] @ up) * up
    x_axis = forward / np.linalg.norm(forward)
    rotation = np.stack([x_axis, np.cross(up, x_axis), up])
    return RigFrame(rotation=rotation, origin=nearest_point_to_axes(cameras))


def cameras_in_rig_frame(cameras) -> tuple[list, RigFrame]:
    """(the cameras with extrinsics in their rig frame, that frame)."""
    frame = rig_frame(cameras)
    return [frame.camera_to_rig(camera) for camera in cameras], frame
