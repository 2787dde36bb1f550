"""The synthetic camera rig, like Human3.6M's: 4 cameras about 5 m from the centre, 1.5 m high,
f about 1145 px per 1000 px of width and real-sized lens distortion, moved slightly per subject.
"""
from __future__ import annotations

import numpy as np

from common import geometry
from h36m_utils import CAMERA_IDS
from synthetic import seeds


# Like the real rig (Human3.6M S1): azimuth (deg) and distance (mm) of each camera from the
# capture area's centre, in CAMERA_IDS order.
_RIG_AZIMUTH_DEG = (70.0, -71.0, 110.0, -116.0)
_RIG_DISTANCE_MM = (5300.0, 5370.0, 5500.0, 4150.0)
_TALL_CAMERAS = ("54138969", "60457274")  # 2 rows taller, like the real videos (1000 x 1002)


def make_intrinsics(size: int, seed: int) -> dict:
    """camera id -> (K (3, 3), dist [k1, k2, k3, p1, p2], (width, height)); shared by subjects."""
    rng = seeds.stream(seed, 0)  # subjects use keys 1..11
    intrinsics = {}
    for camera_id in CAMERA_IDS:
        width, height = size, size + (2 if camera_id in _TALL_CAMERAS else 0)
        focal = 1.145 * size * rng.uniform(0.998, 1.006)
        cx = (width - 1) / 2 + size * rng.uniform(0.005, 0.02)
        cy = (height - 1) / 2 + size * rng.uniform(0.0, 0.015)
        K = np.array([[focal, 0, cx], [0, focal * rng.uniform(0.998, 1.0), cy], [0, 0, 1]])
        dist = np.array([rng.uniform(-0.21, -0.19), rng.uniform(0.21, 0.26), rng.uniform(-0.003, 0),
                         rng.uniform(-0.0017, 0.0015), rng.uniform(-0.009, 0.007)])
        intrinsics[camera_id] = (K, dist, (width, height))
    return intrinsics


def make_cameras(subject: str, intrinsics: dict, seed: int) -> dict:
    """camera id -> Camera for one subject: the rig, moved slightly per subject."""
    rng = seeds.stream(seed, seeds.subject_number(subject), 0)
    cameras = {}
    for camera_id, azimuth, distance in zip(CAMERA_IDS, _RIG_AZIMUTH_DEG, _RIG_DISTANCE_MM):
        angle = np.radians(azimuth + rng.uniform(-3, 3))
        distance += rng.uniform(-150, 150)
        centre = np.array([distance * np.cos(angle), distance * np.sin(angle),
                           rng.uniform(1480, 1620)])
        target = np.array([*rng.uniform(-150, 150, 2), rng.uniform(400, 600)])
        R = geometry.look_at(centre, target, roll=np.radians(rng.uniform(-1, 1)))
        K, dist, (width, height) = intrinsics[camera_id]
        cameras[camera_id] = geometry.Camera(R=R, t=-R @ centre, K=K, k=dist[:3], p=dist[3:],
                                               width=width, height=height, id=camera_id)
    return cameras
