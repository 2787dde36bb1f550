"""Camera geometry, written once: the camera, the lens models, projection and crops' pixel maps.

* World coordinates are millimetres. A camera maps a world point with ``X_cam = R @ X + t``
  (``R`` world->camera, ``t`` in mm).
* Image coordinates are pixels with pixel CENTRES at integer coordinates (OpenCV's
  convention, and the one Human3.6M's D2 labels follow): the top-left pixel covers
  ``[-0.5, 0.5]^2``.
* Lens distortion: Human3.6M's cameras use the OFFICIAL Human3.6M formula, other rigs
  OpenCV's (``Camera.distortion_model``); the two differ only in the tangential terms, by a
  factor of 2 (``distort_normalized``). The distortion travels as one array ordered
  ``[k1, k2, k3, p1, p2, tangential_factor]`` (``Camera.dist``, the loader's ``dist`` tensor,
  ``dlt_layer.undistort``), the factor 1 for Human3.6M and 2 for OpenCV.
* A crop with scale ``s`` and top-left offset ``(ox, oy)`` maps a pixel ``u`` to
  ``s * (u - ox)``; it changes ``K`` only: ``K_crop = crop_matrix(s, ox, oy) @ K``.
"""
from __future__ import annotations

import dataclasses

import numpy as np


# The two lens models differ only in the tangential terms: OpenCV's are twice Human3.6M's,
# except the p r^2 terms (``distort_normalized``).
TANGENTIAL_FACTOR = {"h36m": 1.0, "opencv": 2.0}
DIST_SIZE = 6  # [k1, k2, k3, p1, p2, tangential_factor]

@dataclasses.dataclass(frozen=True)
class Camera:
    """One calibrated camera of one subject's capture.

    R: (3, 3) world->camera rotation; t: (3,) mm; K: (3, 3) intrinsics in pixels;
    k: (3,) radial k1, k2, k3; p: (2,) tangential p1, p2; width, height in pixels; id: camera id;
    distortion_model: "h36m" (the official Human3.6M formula) or "opencv" (OpenCV's).
    """

    R: np.ndarray
    t: np.ndarray
    K: np.ndarray
    k: np.ndarray
    p: np.ndarray
    width: int
    height: int
    id: str
    distortion_model: str = "h36m"

    def __post_init__(self):
        if self.distortion_model not in TANGENTIAL_FACTOR:
            raise ValueError(f"Camera {self.id}: unknown distortion_model {self.distortion_model!r}; "
                             f"choose one of {sorted(TANGENTIAL_FACTOR)}.")

    @property
    def tangential_factor(self) -> float:
        """1 for the Human3.6M distortion, 2 for OpenCV's (see ``distort_normalized``)."""
        return TANGENTIAL_FACTOR[self.distortion_model]

    @property
    def dist(self) -> np.ndarray:
        """(6,) distortion as one vector, ordered [k1, k2, k3, p1, p2, tangential_factor]."""
        return np.concatenate([self.k, self.p, [self.tangential_factor]])

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world mm."""
        return -self.R.T @ self.t



def world_to_camera(points_world: np.ndarray, camera: Camera) -> np.ndarray:
    """(..., 3) world mm -> (..., 3) camera frame mm, ``X_cam = R X + t``."""
    return points_world @ camera.R.T + camera.t


def distort_normalized(xy: np.ndarray, k: np.ndarray, p: np.ndarray, tangential_factor: float = 1.0) -> np.ndarray:
    """Lens distortion of normalised image points (..., 2) -> (..., 2).

    ``r2 = x^2 + y^2; radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3; tan = a (p1 y + p2 x);
    x_d = x (radial + tan) + p2 r2; y_d = y (radial + tan) + p1 r2``, with ``a`` the
    ``tangential_factor``: 1 is the official Human3.6M formula; 2 is OpenCV's
    (``x_d = x radial + 2 p1 x y + p2 (r2 + 2 x^2)``, ``y_d = y radial + p1 (r2 + 2 y^2) + 2 p2 x y``).
    """
    scale, offset = lens_terms(xy, k, p, tangential_factor)
    return xy * scale[..., None] + offset


def lens_terms(xy: np.ndarray, k: np.ndarray, p: np.ndarray, tangential_factor: float) -> tuple[np.ndarray, np.ndarray]:
    """The distortion of (..., 2) normalised points as ``xy_d = xy * scale + offset``: scale (...),
    offset (..., 2) (``distort_normalized``; ``lens_ops.lens_terms`` is the same for tensors)."""
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    scale = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3 + tangential_factor * (p[0] * y + p[1] * x)
    return scale, np.stack([p[1] * r2, p[0] * r2], axis=-1)


def _apply_K(xy: np.ndarray, K: np.ndarray) -> np.ndarray:
    return xy @ K[:2, :2].T + K[:2, 2]


def _remove_K(uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    return (uv - K[:2, 2]) @ np.linalg.inv(K[:2, :2]).T


def project(points_world: np.ndarray, camera: Camera, distort: bool = True) -> np.ndarray:
    """(..., 3) world mm -> (..., 2) pixels (centres at integers), with the official distortion.

    With ``distort=False`` the plain pinhole projection ``K [R | t]`` is returned.
    """
    cam = world_to_camera(points_world, camera)
    xy = cam[..., :2] / cam[..., 2:3]
    if distort:
        xy = distort_normalized(xy, camera.k, camera.p, camera.tangential_factor)
    return _apply_K(xy, camera.K)


def undistort_points(uv: np.ndarray, camera: Camera, iterations: int = 20) -> np.ndarray:
    """(..., 2) distorted pixels -> (..., 2) pinhole pixels, by fixed-point inversion."""
    target = _remove_K(np.asarray(uv, np.float64), camera.K)
    xy = target
    for _ in range(iterations):
        scale, offset = lens_terms(xy, camera.k, camera.p, camera.tangential_factor)
        xy = (target - offset) / scale[..., None]
    return _apply_K(xy, camera.K)


def crop_matrix(scale: float, offset_x: float, offset_y: float) -> np.ndarray:
    """(3, 3) pixel map of a crop: ``u' = scale * (u - offset_x)``, same for v.

    Its top two rows are the ``cv2.warpAffine`` matrix that cuts the crop out of the frame.
    """
    return np.array([[scale, 0.0, -scale * offset_x],
                     [0.0, scale, -scale * offset_y],
                     [0.0, 0.0, 1.0]])


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Pixels through affine pixel maps (crops, maybe turned).

    One (3, 3) ``matrix``: points (..., 2) -> (..., 2). A stack (..., 3, 3): points (..., N, 2)
    with the same leading axes, each set through its own matrix -> (..., N, 2).
    """
    points, matrix = np.asarray(points, np.float64), np.asarray(matrix, np.float64)
    if matrix.ndim == 2:
        return points @ matrix[:2, :2].T + matrix[:2, 2]
    return np.einsum("...ij,...nj->...ni", matrix[..., :2, :2], points) + matrix[..., None, :2, 2]


def look_at(centre: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0), roll: float = 0.0) -> np.ndarray:
    """(3, 3) world->camera rotation of a camera at ``centre`` (3,) looking at ``target`` (3,), with
    ``up`` (any length, not along the view) pointing up in the picture.

    Camera axes: x right, y down, z forward; ``roll`` (radians) then turns the picture about z.
    """
    forward = np.asarray(target, np.float64) - centre
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(up, np.float64))
    right /= np.linalg.norm(right)
    c, s = np.cos(roll), np.sin(roll)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.stack([right, np.cross(forward, right), forward])


def projection_matrix(camera: Camera, crop: np.ndarray | None = None) -> np.ndarray:
    """(3, 4) pinhole projection ``crop @ K @ [R | t]`` (crop: (3, 3) from ``crop_matrix``)."""
    K = camera.K if crop is None else crop @ camera.K
    return K @ np.concatenate([camera.R, camera.t[:, None]], axis=1)
