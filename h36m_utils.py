"""Facts of the Human3.6M data set, as pure functions on numpy arrays.

Conventions used everywhere in this repo (written once, here):

* World coordinates are millimetres. A camera maps a world point with ``X_cam = R @ X + t``
  (``R`` world->camera, ``t`` in mm).
* Image coordinates are pixels with pixel CENTRES at integer coordinates (OpenCV's
  convention, and the one the data set's D2 labels follow): the top-left pixel covers
  ``[-0.5, 0.5]^2``.
* Lens distortion uses the OFFICIAL Human3.6M formula (not OpenCV's tangential model); the
  distortion vector is ordered ``[k1, k2, k3, p1, p2]`` wherever it travels as one array
  (``Camera.dist``, the loader's ``dist`` tensor, ``dlt_layer.undistort``).
* A crop with scale ``s`` and top-left offset ``(ox, oy)`` maps a pixel ``u`` to
  ``s * (u - ox)``; it changes ``K`` only: ``K_crop = crop_matrix(s, ox, oy) @ K``.
* Joints: the standard 17 of the 32 (``J17``), pelvis first. Cameras in the fixed order
  ``CAMERA_IDS``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import xml.etree.ElementTree as ElementTree

import numpy as np

# --------------------------------------------------------------------------- constants

CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
SUBJECTS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11")
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")

# The 32 joints of the CDF files. "site" joints are end effectors; several joints coincide
# in the recorded data (e.g. 0 and 11), which is why only 17 are used.
JOINT_NAMES_32 = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "right_toe", "right_toe_site",
    "left_hip", "left_knee", "left_ankle", "left_toe", "left_toe_site",
    "spine_base", "spine", "thorax", "neck", "head",
    "left_clavicle", "left_shoulder", "left_elbow", "left_wrist", "left_thumb",
    "left_thumb_site", "left_hand", "left_hand_site",
    "right_clavicle", "right_shoulder", "right_elbow", "right_wrist", "right_thumb",
    "right_thumb_site", "right_hand", "right_hand_site",
)
PARENTS_32 = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14,
              12, 16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30)

J17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
JOINT_NAMES_17 = tuple(JOINT_NAMES_32[i] for i in J17)
# Parent of each of the 17 joints, as an index into the 17 (pelvis is the root).
PARENTS_17 = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
EDGES_17 = tuple((parent, child) for child, parent in enumerate(PARENTS_17) if parent >= 0)
# (left, right) index pairs in the 17-joint order, for flips and per-side colours.
LEFT_RIGHT_17 = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))
LEFT_JOINTS_17 = tuple(left for left, _ in LEFT_RIGHT_17)
RIGHT_JOINTS_17 = tuple(right for _, right in LEFT_RIGHT_17)
PELVIS = 0


# --------------------------------------------------------------------------- cameras

@dataclasses.dataclass(frozen=True)
class Camera:
    """One calibrated camera of one subject's capture.

    R: (3, 3) world->camera rotation; t: (3,) mm; K: (3, 3) intrinsics in pixels;
    k: (3,) radial k1, k2, k3; p: (2,) tangential p1, p2; width, height in pixels; id: camera id.
    """

    R: np.ndarray
    t: np.ndarray
    K: np.ndarray
    k: np.ndarray
    p: np.ndarray
    width: int
    height: int
    id: str

    @property
    def dist(self) -> np.ndarray:
        """(5,) distortion as one vector, ordered [k1, k2, k3, p1, p2]."""
        return np.concatenate([self.k, self.p])

    @property
    def center(self) -> np.ndarray:
        """(3,) camera centre in world mm."""
        return -self.R.T @ self.t


def image_size(subject: str, camera_id: str) -> tuple[int, int]:
    """(width, height) of a subject's video from this camera.

    1000 wide; 1002 high for cameras 54138969 and 60457274, and for all four cameras of
    S4, S7 and S10; 1000 high otherwise.
    """
    tall = camera_id in ("54138969", "60457274") or subject in ("S4", "S7", "S10")
    return 1000, 1002 if tall else 1000


def load_cameras(path: str) -> dict[str, dict[str, Camera]]:
    """Read a camera file: ``cameras[subject][camera_id] -> Camera``.

    Accepts the JSON layout of karfly/human36m-camera-parameters and the official
    ``metadata.xml`` of the Human3.6M code release. A JSON camera may carry an optional
    ``intrinsics[cam].image_size = [width, height]`` (the synthetic set writes it); without it
    the official video sizes of ``image_size`` are used.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Camera file not found: {path}. Put camera-parameters.json (or the official "
            "metadata.xml) there, or pass its path with --cameras.")
    try:
        if path.lower().endswith(".xml"):
            return _cameras_from_metadata_xml(path)
        with open(path, encoding="utf-8") as handle:
            return _cameras_from_json(json.load(handle))
    except (KeyError, ValueError, TypeError, IndexError, ElementTree.ParseError) as error:
        raise ValueError(
            f"Camera file {path} is not in a known layout ({type(error).__name__}: {error}). "
            "Expected the camera-parameters.json layout (intrinsics/extrinsics) or the "
            "official metadata.xml.") from error


def _cameras_from_json(content: dict) -> dict[str, dict[str, Camera]]:
    cameras = {}
    for subject, per_camera in content["extrinsics"].items():
        cameras[subject] = {}
        for camera_id, extrinsic in per_camera.items():
            intrinsic = content["intrinsics"][camera_id]
            k1, k2, p1, p2, k3 = (float(v) for v in intrinsic["distortion"])
            width, height = intrinsic.get("image_size") or image_size(subject, camera_id)
            cameras[subject][camera_id] = Camera(
                R=np.asarray(extrinsic["R"], np.float64).reshape(3, 3),
                t=np.asarray(extrinsic["t"], np.float64).reshape(3),
                K=np.asarray(intrinsic["calibration_matrix"], np.float64).reshape(3, 3),
                k=np.array([k1, k2, k3]), p=np.array([p1, p2]),
                width=int(width), height=int(height), id=camera_id)
    return cameras


def rotation_from_angles(a: float, b: float, c: float) -> np.ndarray:
    """(3, 3) world->camera ``R = Rx(a) @ Ry(b) @ Rz(c)`` from the official release's angles.

    Textbook right-handed elementary rotations; checked against the published JSON (S1,
    camera 54138969) to 1e-13.
    """
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rx @ ry @ rz


def _cameras_from_metadata_xml(path: str) -> dict[str, dict[str, Camera]]:
    w0_text = ElementTree.parse(path).getroot().findtext(".//w0")
    if w0_text is None:
        raise ValueError("no <w0> element")
    w0 = np.array([float(v) for v in w0_text.strip().strip("[]").split()])
    if w0.size != 300:
        raise ValueError(f"<w0> holds {w0.size} numbers, expected 300")
    cameras = {}
    for subject_index, subject in enumerate(SUBJECTS):
        cameras[subject] = {}
        for camera_index, camera_id in enumerate(CAMERA_IDS):
            start = 6 * (camera_index * 11 + subject_index)
            angles, centre = w0[start:start + 3], w0[start + 3:start + 6]
            fx, fy, cx, cy, k1, k2, k3, p1, p2 = w0[264 + 9 * camera_index:264 + 9 * camera_index + 9]
            R = rotation_from_angles(*angles)
            width, height = image_size(subject, camera_id)
            cameras[subject][camera_id] = Camera(
                R=R, t=-R @ centre, K=np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]),
                k=np.array([k1, k2, k3]), p=np.array([p1, p2]),
                width=width, height=height, id=camera_id)
    return cameras


# --------------------------------------------------------------------------- projection

def world_to_camera(points_world: np.ndarray, camera: Camera) -> np.ndarray:
    """(..., 3) world mm -> (..., 3) camera frame mm, ``X_cam = R X + t``."""
    return points_world @ camera.R.T + camera.t


def distort_normalized(xy: np.ndarray, k: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Official Human3.6M lens distortion of normalised image points (..., 2) -> (..., 2).

    ``r2 = x^2 + y^2; radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3; tan = p1 y + p2 x;
    x_d = x (radial + tan) + p2 r2; y_d = y (radial + tan) + p1 r2``.
    """
    x, y = xy[..., 0], xy[..., 1]
    r2 = x * x + y * y
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tangential = p[0] * y + p[1] * x
    return np.stack([x * (radial + tangential) + p[1] * r2,
                     y * (radial + tangential) + p[0] * r2], axis=-1)


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
        xy = distort_normalized(xy, camera.k, camera.p)
    return _apply_K(xy, camera.K)


def undistort_points(uv: np.ndarray, camera: Camera, iterations: int = 20) -> np.ndarray:
    """(..., 2) distorted pixels -> (..., 2) pinhole pixels, by fixed-point inversion."""
    target = _remove_K(np.asarray(uv, np.float64), camera.K)
    xy = target
    for _ in range(iterations):
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        k, p = camera.k, camera.p
        scale = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3 + p[0] * y + p[1] * x
        offset = np.stack([p[1] * r2, p[0] * r2], axis=-1)
        xy = (target - offset) / scale[..., None]
    return _apply_K(xy, camera.K)


def crop_matrix(scale: float, offset_x: float, offset_y: float) -> np.ndarray:
    """(3, 3) pixel map of a crop: ``u' = scale * (u - offset_x)``, same for v.

    Its top two rows are the ``cv2.warpAffine`` matrix that cuts the crop out of the frame.
    """
    return np.array([[scale, 0.0, -scale * offset_x],
                     [0.0, scale, -scale * offset_y],
                     [0.0, 0.0, 1.0]])


def projection_matrix(camera: Camera, crop: np.ndarray | None = None) -> np.ndarray:
    """(3, 4) pinhole projection ``crop @ K @ [R | t]`` (crop: (3, 3) from ``crop_matrix``)."""
    K = camera.K if crop is None else crop @ camera.K
    return K @ np.concatenate([camera.R, camera.t[:, None]], axis=1)
