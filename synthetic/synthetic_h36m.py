"""Human3.6M without the download: a small synthetic data set in the exact official layout.

    python synthetic_h36m.py --out DIR [--subjects S1 S5 ...] [--trials N] [--frames N] [--size W]
                             [--seed S]

writes, under DIR::

    Data/<S>/Videos/<Action[ N]>.<camera>.mp4                         50 fps, mp4v
    Labels/<S>/MyPoseFeatures/D3_Positions/<Action[ N]>.cdf           Pose (1, N, 96), world mm
    Labels/<S>/MyPoseFeatures/D2_Positions/<Action[ N]>.<camera>.cdf  Pose (1, N, 64), pixels
    Labels/camera-parameters.json                                     layout of the shared real file

A 32-joint skeleton with human bone lengths (scaled per subject) is animated procedurally per
action (gait, waving, pointing, sitting down, turning, ...) and filmed by a rig like the real
one: 4 cameras about 5 m from the centre, 1.5 m high, f about 1145 px per 1000 px of width and
real-sized lens distortion. Each frame is rendered by projecting 3D limb outlines and joint
balls through ``geometry.project`` (official distortion), so the pixels agree with the D2
labels, which are ``project(D3)``. Every body part has its own colour (left and right differ);
the 17 standard joints carry white balls.

Like the real set, every action is recorded twice per subject by default (``trials``): each
trial is another motion of the same kind (its own random stream), by the same skeleton in
front of the same cameras, named as the real files are (``Directions 1`` and ``Directions``,
``SittingDown 2`` and ``SittingDown``, ``Photo`` and ``Photo 2``; see ``trial_names``).

With ``quirks=True`` the set has the real set's quirks (see ``plan_sequences``). Everything is
a function of the seed: labels are identical bit for bit for the same arguments, and a
subject's labels do not depend on which other subjects or actions are generated.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pathlib
import sys
import time

import cv2
import numpy as np

import h36m_utils
from common import geometry
from common import video_io
from h36m_utils import CAMERA_IDS
from common.skeleton import J17, PARENTS_32

FPS = 50
DEFAULT_SUBJECTS = ("S1", "S5", "S6", "S7", "S11")  # four training subjects, one held out
DEFAULT_FRAMES = 120
DEFAULT_SIZE = 320
DEFAULT_TRIALS = 2  # the real set has two trials of every action per subject
# One action of each kind of motion: pointing, waving, hands at the face, sitting down,
# leaning on a leash, walking.
DEFAULT_ACTIONS = ("Directions", "Greeting", "Photo", "SittingDown", "WalkDog", "Walking")
_S1_NAMES = {action: alias for alias, action in h36m_utils.ACTION_ALIASES.items()}
_MIN_FRAMES = 16  # room for the quirks (labels shorter by up to 8 frames)


@dataclasses.dataclass(frozen=True)
class SyntheticDataset:
    """Where a generated set lies: pass ``data_dir``/``labels_dir`` to ``find_sequences``."""

    root: pathlib.Path
    data_dir: pathlib.Path
    labels_dir: pathlib.Path
    cameras_path: pathlib.Path
    subjects: tuple


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """Independent stream per (seed, keys): a subject's data never depends on the others."""
    return np.random.default_rng([seed, *keys])


def _subject_number(subject: str) -> int:
    return h36m_utils.SUBJECTS.index(subject) + 1


# --------------------------------------------------------------------------- skeleton

# Rest pose of a 1.75 m person: each joint's offset (mm) from its parent (PARENTS_32) in the
# body frame (x forward, y to the body's left, z up). The body's right side is the mirror
# image of its left. Joints that coincide in the real data coincide here (spine base with
# pelvis, clavicles with thorax).
_LEFT_AND_CENTRE_OFFSETS = {
    0: (0, 0, 0), 6: (0, 130, 0), 7: (0, 0, -445), 8: (0, 0, -440), 9: (135, 0, -60),
    10: (45, 0, 0), 11: (0, 0, 0), 12: (0, 0, 235), 13: (0, 0, 250), 14: (45, 0, 110),
    15: (-15, 0, 110), 16: (0, 0, 250), 17: (-10, 145, -40), 18: (0, 0, -275),
    19: (0, 0, -250), 20: (30, 0, -45), 21: (15, 0, -25), 22: (0, 0, -85), 23: (0, 0, -45),
}
# (left, right) joint pairs of the 32.
_MIRROR_32 = ((6, 1), (7, 2), (8, 3), (9, 4), (10, 5), (16, 24), (17, 25), (18, 26),
              (19, 27), (20, 28), (21, 29), (22, 30), (23, 31))
_LEFT, _RIGHT = +1, -1  # sign of y (and of roll / yaw angles) on each side


def rest_offsets() -> np.ndarray:
    """(32, 3) rest-pose offsets of each joint from its parent, mm, body frame."""
    offsets = np.zeros((32, 3))
    for joint, offset in _LEFT_AND_CENTRE_OFFSETS.items():
        offsets[joint] = offset
    for left, right in _MIRROR_32:
        offsets[right] = offsets[left] * (1, -1, 1)
    return offsets


def subject_offsets(rng: np.random.Generator) -> np.ndarray:
    """(32, 3) a subject's bone offsets: overall scale 0.92-1.06, each bone +-4%, symmetric."""
    factors = np.clip(rng.normal(1.0, 0.02, 32), 0.96, 1.04)
    for left, right in _MIRROR_32:
        factors[right] = factors[left]
    return rest_offsets() * rng.uniform(0.92, 1.06) * factors[:, None]


def _rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """(...,) angles (radians) -> (..., 3, 3) ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    cz, sz, cy, sy, cx, sx = (np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch),
                              np.cos(roll), np.sin(roll))
    return np.stack([
        np.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], -1),
        np.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], -1),
        np.stack([-sy, cy * sx, cy * cx], -1)], -2)


def forward_kinematics(offsets: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Joint positions relative to the pelvis: offsets (32, 3), angles (T, 32, 3) -> (T, 32, 3).

    ``angles[:, j]`` = (yaw, pitch, roll) of joint j's frame relative to its parent's; it turns
    the bones below j. The pelvis's yaw is the body's heading in the world.
    """
    local = _rotation(angles[..., 0], angles[..., 1], angles[..., 2])
    frames, positions = [None] * 32, np.zeros(angles.shape[:1] + (32, 3))
    for joint, parent in enumerate(PARENTS_32):
        if parent < 0:
            frames[joint] = local[:, joint]
            continue
        positions[:, joint] = positions[:, parent] + frames[parent] @ offsets[joint]
        frames[joint] = frames[parent] @ local[:, joint]
    return positions


# --------------------------------------------------------------------------- motion

_HIP, _KNEE, _ANKLE = {_LEFT: 6, _RIGHT: 1}, {_LEFT: 7, _RIGHT: 2}, {_LEFT: 8, _RIGHT: 3}
_SHOULDER, _ELBOW = {_LEFT: 17, _RIGHT: 25}, {_LEFT: 18, _RIGHT: 26}
_SPINE_BASE, _SPINE, _THORAX = 11, 12, 13
_YAW, _PITCH, _ROLL = 0, 1, 2


@dataclasses.dataclass
class _Clip:
    """The time line of one sequence and the joint angles being built for it."""

    t: np.ndarray        # (T,) seconds
    angles: np.ndarray   # (T, 32, 3) radians
    rng: np.random.Generator

    def noise(self, amplitude_deg: float, low_hz: float = 0.1, high_hz: float = 0.6) -> np.ndarray:
        """(T,) smooth random signal in radians: three sines of random frequency and phase."""
        hz = self.rng.uniform(low_hz, high_hz, 3)
        phases = self.rng.uniform(0, 2 * np.pi, 3)
        waves = np.sin(2 * np.pi * hz * self.t[:, None] + phases)
        return np.radians(amplitude_deg) * waves.mean(-1)

    def cycle(self, low_s: float, high_s: float) -> np.ndarray:
        """(T,) smooth back-and-forth 0 -> 1 -> 0 with a random period (seconds) and phase."""
        period = self.rng.uniform(low_s, high_s)
        return 0.5 - 0.5 * np.cos(2 * np.pi * self.t / period + self.rng.uniform(0, 2 * np.pi))

    def set_arm(self, side: int, flex, abduct, elbow, elbow_lift=0.0, twist=0.0) -> None:
        """Add arm angles (degrees; scalars or (T,)): flex raises the arm forward, abduct
        sideways; the elbow bends the forearm forward (elbow) or up when abducted (elbow_lift)."""
        shoulder = self.angles[:, _SHOULDER[side]]
        shoulder[:, _YAW] += side * np.radians(twist)
        shoulder[:, _PITCH] -= np.radians(flex)
        shoulder[:, _ROLL] += side * np.radians(abduct)
        self.angles[:, _ELBOW[side], _PITCH] -= np.radians(elbow)
        self.angles[:, _ELBOW[side], _ROLL] += side * np.radians(elbow_lift)

    def set_leg(self, side: int, flex, knee, ankle=0.0) -> None:
        """Add leg angles (degrees): flex swings the thigh forward, knee bends the shin back."""
        self.angles[:, _HIP[side], _PITCH] -= np.radians(flex)
        self.angles[:, _KNEE[side], _PITCH] += np.radians(knee)
        self.angles[:, _ANKLE[side], _PITCH] -= np.radians(ankle)


def _smoothstep(x: np.ndarray, start: float, end: float) -> np.ndarray:
    s = np.clip((x - start) / (end - start), 0.0, 1.0)
    return s * s * (3 - 2 * s)


# Locomotion: sets the heading (pelvis yaw) and gait; returns the (T, 2) floor position.

def _walk_path(clip: _Clip, speed: float) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2) positions on a circle around the capture area's centre, (T,) distance walked."""
    rng = clip.rng
    radius, start, turn = rng.uniform(900, 1400), rng.uniform(0, 2 * np.pi), rng.choice([-1, 1])
    distance = speed * clip.t * rng.uniform(0.9, 1.1)
    angle = start + turn * distance / radius
    clip.angles[:, 0, _YAW] = angle + turn * np.pi / 2
    return radius * np.stack([np.cos(angle), np.sin(angle)], -1), distance


def _gait(clip: _Clip, distance: np.ndarray, stride_mm: float, amplitude: float) -> None:
    """Legs and arms swinging in opposition, one cycle per stride (two steps)."""
    phi = 2 * np.pi * distance / stride_mm + clip.rng.uniform(0, 2 * np.pi)
    for side, shift in ((_RIGHT, 0.0), (_LEFT, np.pi)):
        swing = np.sin(phi + shift)
        clip.set_leg(side, flex=5 + amplitude * 22 * swing,
                     knee=5 + amplitude * 45 * np.maximum(0, np.cos(phi + shift)) ** 2,
                     ankle=amplitude * 8 * np.sin(phi + shift - 0.5))
        clip.set_arm(side, flex=-amplitude * 22 * swing, abduct=8, elbow=15 + 10 * amplitude)
    clip.angles[:, 0, _YAW] += np.radians(5 * amplitude) * np.sin(phi)
    clip.angles[:, _SPINE, _YAW] -= np.radians(7 * amplitude) * np.sin(phi)


def _walk(clip: _Clip) -> np.ndarray:
    position, distance = _walk_path(clip, speed=clip.rng.uniform(1100, 1400))
    _gait(clip, distance, stride_mm=1400, amplitude=1.0)
    return position


def _stroll(clip: _Clip) -> np.ndarray:
    position, distance = _walk_path(clip, speed=clip.rng.uniform(350, 600))
    _gait(clip, distance, stride_mm=900, amplitude=0.45)
    return position


def _stand(clip: _Clip) -> np.ndarray:
    rng = clip.rng
    clip.angles[:, 0, _YAW] = rng.uniform(0, 2 * np.pi) + clip.noise(25)
    clip.angles[:, 0, _ROLL] += clip.noise(3)
    for side in (_LEFT, _RIGHT):
        clip.set_leg(side, flex=3, knee=4)
        clip.set_arm(side, flex=5, abduct=8, elbow=12)
    return np.tile(rng.uniform(-700, 700, 2), (len(clip.t), 1))


def _turn(clip: _Clip) -> np.ndarray:
    """Turning on the spot with small steps."""
    position = _stand(clip)
    rate = np.radians(clip.rng.uniform(40, 80)) * clip.rng.choice([-1, 1])
    clip.angles[:, 0, _YAW] += rate * clip.t
    _gait(clip, 400 * clip.t, stride_mm=500, amplitude=0.25)
    return position


# Posture of the legs and trunk, on top of the locomotion.

def _upright(clip: _Clip) -> None:
    clip.angles[:, _SPINE_BASE, _PITCH] += np.radians(3) + clip.noise(3)
    clip.angles[:, _SPINE, _ROLL] += clip.noise(3)


def _sit(clip: _Clip, amount: np.ndarray) -> None:
    """Sit on an (invisible) chair; amount (T,) 0 standing -> 1 seated; lean in between."""
    for side in (_LEFT, _RIGHT):
        clip.set_leg(side, flex=90 * amount, knee=95 * amount, ankle=-5 * amount)
    clip.angles[:, _SPINE_BASE, _PITCH] += np.radians(35 * np.sin(np.pi * amount) - 8 * amount)


def _seated(clip: _Clip) -> None:
    _sit(clip, np.ones_like(clip.t))


def _sitting_down(clip: _Clip) -> None:
    """Sit down (about a second), stay a while, get up again: paced in seconds, not by the
    clip's length, so short clips show part of it at a human speed."""
    down, duration = clip.rng.uniform(-0.3, 0.1), clip.rng.uniform(1.0, 1.4)
    up = down + duration + clip.rng.uniform(0.8, 1.5)  # after a while seated
    _sit(clip, _smoothstep(clip.t, down, down + duration) - _smoothstep(clip.t, up, up + duration))


# Arms and head: the gesture that makes the action.

def _relaxed(clip: _Clip) -> None:
    for side in (_LEFT, _RIGHT):
        clip.set_arm(side, flex=np.degrees(clip.noise(8)), abduct=4,
                     elbow=np.degrees(clip.noise(10)))


def _point(clip: _Clip) -> None:
    """Directions: pointing with one arm then the other."""
    right = clip.cycle(2.5, 4.0)
    for side, weight in ((_RIGHT, right), (_LEFT, 1 - right)):
        clip.set_arm(side, flex=80 * weight, abduct=35 * weight, elbow=10 + 20 * (1 - weight))
    clip.angles[:, _SPINE, _YAW] += np.radians(20) * (right - 0.5)


def _wave(clip: _Clip) -> None:
    """Greeting: one arm raised (over about a second), the forearm waving; a small bow."""
    side = clip.rng.choice([_LEFT, _RIGHT])
    start = clip.rng.uniform(-0.8, 0.2)
    raise_ = _smoothstep(clip.t, start, start + clip.rng.uniform(0.9, 1.2))
    wave = np.sin(2 * np.pi * clip.rng.uniform(1.2, 2.0) * clip.t)
    clip.set_arm(side, flex=25 * raise_, abduct=85 * raise_, elbow=0,
                 elbow_lift=(70 + 20 * wave) * raise_)
    clip.set_arm(-side, flex=5, abduct=6, elbow=15)
    clip.angles[:, _SPINE_BASE, _PITCH] += np.radians(15) * clip.cycle(3.0, 5.0)


def _hands_to_face(clip: _Clip, sides=(_LEFT, _RIGHT), period_s=(3.0, 5.0)) -> None:
    """Photo (both hands), Phoning / Eating / Smoking (one): hands to the face and back."""
    up = _smoothstep(clip.cycle(*period_s), 0.1, 0.9)
    for side in sides:
        clip.set_arm(side, flex=15 + 55 * up, abduct=12 + 15 * up, elbow=20 + 110 * up)
    for side in {_LEFT, _RIGHT} - set(sides):
        clip.set_arm(side, flex=8, abduct=8, elbow=25)
    clip.angles[:, _THORAX, _PITCH] += np.radians(10) * up


def _phone(clip: _Clip) -> None:
    _hands_to_face(clip, sides=(_RIGHT,), period_s=(6.0, 9.0))


def _eat(clip: _Clip) -> None:
    _hands_to_face(clip, sides=(clip.rng.choice([_LEFT, _RIGHT]),), period_s=(2.5, 4.0))


def _leash(clip: _Clip) -> None:
    """WalkDog: one arm held forward and low, tugged; leaning forward."""
    side = clip.rng.choice([_LEFT, _RIGHT])
    clip.set_arm(side, flex=35 + np.degrees(clip.noise(12, 0.4, 1.2)), abduct=8, elbow=10)
    clip.angles[:, _SPINE_BASE, _PITCH] += np.radians(10)


def _discuss(clip: _Clip) -> None:
    """Discussion / Sitting: both arms gesturing freely."""
    for side in (_LEFT, _RIGHT):
        clip.set_arm(side, flex=30 + np.degrees(clip.noise(30, 0.2, 0.7)),
                     abduct=20 + np.degrees(clip.noise(15)),
                     elbow=60 + np.degrees(clip.noise(40, 0.2, 0.7)))


def _pose(clip: _Clip) -> None:
    """Posing: blend between arms up and hands on the hips."""
    up = clip.cycle(4.0, 6.0)
    for side in (_LEFT, _RIGHT):
        clip.set_arm(side, flex=150 * up, abduct=40 * (1 - up) + 20 * up,
                     elbow=100 * (1 - up), twist=-60 * (1 - up))


def _carry(clip: _Clip) -> None:
    """Purchases: forearms forward as if carrying bags, reaching out now and then."""
    reach = clip.cycle(3.0, 5.0)
    for side in (_LEFT, _RIGHT):
        clip.set_arm(side, flex=15 + 50 * reach, abduct=10, elbow=90 * (1 - reach) + 15)


# Each action: (locomotion, posture, gesture).
_ACTION_MOTIONS = {
    "Directions": (_stroll, _upright, _point), "Discussion": (_turn, _upright, _discuss),
    "Eating": (_stand, _seated, _eat), "Greeting": (_stroll, _upright, _wave),
    "Phoning": (_stroll, _upright, _phone), "Photo": (_turn, _upright, _hands_to_face),
    "Posing": (_stand, _upright, _pose), "Purchases": (_stroll, _upright, _carry),
    "Sitting": (_stand, _seated, _discuss), "SittingDown": (_stand, _sitting_down, _relaxed),
    "Smoking": (_stand, _upright, _eat), "Waiting": (_turn, _upright, _relaxed),
    "WalkDog": (_walk, _upright, _leash), "Walking": (_walk, _upright, _relaxed),
    "WalkTogether": (_stroll, _upright, _relaxed),
}
_FOOT_JOINTS = (3, 4, 5, 8, 9, 10)
_FOOT_HEIGHT_MM = 25.0  # lowest foot joint above the floor (joints sit inside the foot)
_FOOT_SOFTNESS_MM = 8.0  # soft minimum over the foot joints: no jerk when the weight moves


def animate(action: str, offsets: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(frames, 32, 3) world mm: the skeleton ``offsets`` performing ``action``.

    Joint angles are smooth functions of time. The feet rest on the floor (z = 0): a smooth
    minimum of the foot joints' heights is kept at ``_FOOT_HEIGHT_MM``. The body moves over
    the floor around the capture area's centre.
    """
    t = np.arange(frames) / FPS
    clip = _Clip(t=t, angles=np.zeros((frames, 32, 3)), rng=rng)
    locomotion, posture, gesture = _ACTION_MOTIONS[action]
    floor_position = locomotion(clip)
    posture(clip)
    gesture(clip)
    clip.angles[:, _THORAX, _YAW] += clip.noise(30, 0.1, 0.4)   # looking around
    clip.angles[:, _THORAX, _PITCH] += clip.noise(8)
    body = forward_kinematics(offsets, clip.angles)
    feet = body[:, _FOOT_JOINTS, 2]
    lowest = feet.min(axis=1)  # subtracted inside the soft minimum for numerical safety
    soft_lowest = lowest - _FOOT_SOFTNESS_MM * np.log(
        np.exp(-(feet - lowest[:, None]) / _FOOT_SOFTNESS_MM).sum(axis=1))
    height = _FOOT_HEIGHT_MM - soft_lowest
    return body + np.concatenate([floor_position, height[:, None]], -1)[:, None, :]


def keep_in_view(poses: np.ndarray, cameras, margin: float = 0.04, centre=(0.0, 0.0)) -> np.ndarray:
    """(T, 32, 3) poses, moved toward ``centre`` until every joint is inside every view.

    centre: (2,) or (3,) world mm, the floor point the path shrinks toward (only x, y are
    used); the origin by default, the centre of ``animate``'s paths. Each view keeps ``margin``
    x its width free at the borders. Raises RuntimeError when even the centred pose does not
    fit (a camera rig that does not look at the capture area).
    """
    offset_from_centre = poses[:, :1, :2] - np.asarray(centre, np.float64)[:2]
    for shrink in 0.85 ** np.arange(30):
        moved = poses.copy()
        moved[..., :2] -= (1 - shrink) * offset_from_centre
        if all(_inside(geometry.project(moved, camera), camera, margin) for camera in cameras):
            return moved
    raise RuntimeError("The synthetic person does not fit in every camera view; the camera rig "
                       "must look at the centre of the capture area.")


def _inside(uv: np.ndarray, camera: geometry.Camera, margin: float) -> bool:
    border = margin * camera.width
    last = np.array([camera.width, camera.height]) - 1
    return bool(np.all((uv >= border) & (uv <= last - border)))


# --------------------------------------------------------------------------- camera rig

# Like the real rig (Human3.6M S1): azimuth (deg) and distance (mm) of each camera from the
# capture area's centre, in CAMERA_IDS order.
_RIG_AZIMUTH_DEG = (70.0, -71.0, 110.0, -116.0)
_RIG_DISTANCE_MM = (5300.0, 5370.0, 5500.0, 4150.0)
_TALL_CAMERAS = ("54138969", "60457274")  # 2 rows taller, like the real videos (1000 x 1002)


def look_at(centre: np.ndarray, target: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """(3, 3) world->camera rotation of a camera at ``centre`` looking at ``target`` (z up).

    Camera axes: x right, y down, z forward; ``roll`` (radians) turns the image about z.
    """
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return _rotation(np.float64(roll), 0.0, 0.0) @ np.stack([right, down, forward])


def make_intrinsics(size: int, seed: int) -> dict:
    """camera id -> (K (3, 3), dist [k1, k2, k3, p1, p2], (width, height)); shared by subjects."""
    rng = _rng(seed, 0)  # subjects use keys 1..11
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
    rng = _rng(seed, _subject_number(subject), 0)
    cameras = {}
    for camera_id, azimuth, distance in zip(CAMERA_IDS, _RIG_AZIMUTH_DEG, _RIG_DISTANCE_MM):
        angle = np.radians(azimuth + rng.uniform(-3, 3))
        distance += rng.uniform(-150, 150)
        centre = np.array([distance * np.cos(angle), distance * np.sin(angle),
                           rng.uniform(1480, 1620)])
        target = np.array([*rng.uniform(-150, 150, 2), rng.uniform(400, 600)])
        R = look_at(centre, target, roll=np.radians(rng.uniform(-1, 1)))
        K, dist, (width, height) = intrinsics[camera_id]
        cameras[camera_id] = geometry.Camera(R=R, t=-R @ centre, K=K, k=dist[:3], p=dist[3:],
                                               width=width, height=height, id=camera_id)
    return cameras


# --------------------------------------------------------------------------- rendering

@dataclasses.dataclass(frozen=True)
class BodyPart:
    """A limb drawn as a capsule between two joints (of the 32)."""

    name: str
    joint_a: int
    joint_b: int
    radius_mm: float
    colour_rgb: tuple


# Saturated colours (one channel well below 200) so that the white joint balls stand out;
# the left side in warm colours, the right side in cool ones.
BODY_PARTS = (
    BodyPart("hips", 1, 6, 85, (70, 70, 85)),
    BodyPart("abdomen", 0, 12, 110, (150, 150, 50)),
    BodyPart("chest", 12, 13, 120, (150, 150, 50)),
    BodyPart("shoulders", 17, 25, 60, (150, 150, 50)),
    BodyPart("neck", 13, 14, 45, (185, 135, 100)),
    BodyPart("head", 14, 15, 90, (205, 150, 115)),
    BodyPart("left_upper_arm", 17, 18, 48, (220, 50, 50)),
    BodyPart("left_forearm", 18, 19, 40, (240, 140, 30)),
    BodyPart("left_hand", 19, 22, 32, (230, 200, 40)),
    BodyPart("right_upper_arm", 25, 26, 48, (40, 80, 220)),
    BodyPart("right_forearm", 26, 27, 40, (30, 180, 220)),
    BodyPart("right_hand", 27, 30, 32, (120, 70, 200)),
    BodyPart("left_thigh", 6, 7, 70, (200, 40, 140)),
    BodyPart("left_shin", 7, 8, 52, (240, 120, 170)),
    BodyPart("left_foot", 8, 9, 40, (120, 50, 30)),
    BodyPart("right_thigh", 1, 2, 70, (30, 140, 60)),
    BodyPart("right_shin", 2, 3, 52, (120, 210, 70)),
    BodyPart("right_foot", 3, 4, 40, (20, 90, 90)),
)
JOINT_BALL_MM = 40.0           # radius of the white ball on each of the 17 joints
MIN_JOINT_BALL_PX = 2.5        # never smaller than this in the image
JOINT_BALL_RGB = (255, 255, 255)
# Shading: (radius fraction, shift toward the light as a radius fraction, brightness).
_SHADING_BANDS = ((1.0, 0.0, 0.6), (0.75, 0.2, 0.85), (0.4, 0.4, 1.1))
_AXIS_SAMPLES, _CAP_SAMPLES = 6, 7
_SHIFT_BITS = 4  # sub-pixel precision of OpenCV drawing: coordinates x 16


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def capsule_outlines(a: np.ndarray, b: np.ndarray, radius: np.ndarray, shift: np.ndarray,
                     camera: geometry.Camera) -> np.ndarray:
    """Silhouettes of capsules seen from ``camera``, as 3D points on their rims.

    a, b: (..., 3) world mm end points; radius, shift: (...,) mm, broadcast with a and b; the
    capsule's axis is moved by ``shift`` toward the light (up-left in the image) for shading.
    Returns (..., 2 * (axis samples + cap samples), 3) world mm, in drawing order: projected
    with ``geometry.project`` they outline the capsule in the distorted image.
    """
    a, b = np.broadcast_arrays(a, b)
    radius, shift = (np.asarray(x, np.float64)[..., None, None] for x in (radius, shift))
    axis = a[..., None, :] + np.linspace(0, 1, _AXIS_SAMPLES)[:, None] * (b - a)[..., None, :]
    view = _unit(axis - camera.center)
    side = np.cross((b - a)[..., None, :], view)
    # A capsule seen end-on (or a sphere) has no preferred side: use the image's x direction.
    end_on = np.linalg.norm(side, axis=-1, keepdims=True) < 1e-6
    side = _unit(np.where(end_on, np.cross(camera.R[1], view), side))
    along = np.cross(view, side)  # in the image plane, from a toward b
    # The shading shift goes toward the light (up-left in the image): one sign per capsule.
    light = -(camera.R[0] + camera.R[1])
    towards_light = np.sum(side[..., _AXIS_SAMPLES // 2, :] * light, -1)
    axis = axis + np.where(towards_light < 0, -1.0, 1.0)[..., None, None] * shift * side
    cap = np.linspace(0, np.pi, _CAP_SAMPLES + 2)[1:-1, None]
    # Half circles around the ends, from one side to the other, facing away from the capsule.
    cap_b = axis[..., -1:, :] + radius * (np.cos(cap) * side[..., -1:, :]
                                          + np.sin(cap) * along[..., -1:, :])
    cap_a = axis[..., :1, :] - radius * (np.cos(cap) * side[..., :1, :]
                                         + np.sin(cap) * along[..., :1, :])
    return np.concatenate([axis + radius * side, cap_b,
                           (axis - radius * side)[..., ::-1, :], cap_a], -2)


def _surface_mm() -> np.ndarray:
    """(17,) how far in front of each standard joint its body surface lies (largest limb radius)."""
    surface = np.zeros(32)
    for part in BODY_PARTS:
        for joint in (part.joint_a, part.joint_b):
            surface[joint] = max(surface[joint], part.radius_mm)
    return surface[list(J17)]


@dataclasses.dataclass(frozen=True)
class _DrawList:
    """Everything to draw for one camera, all frames: polygons and discs with their depths."""

    polygons: np.ndarray   # (T, parts, bands, points, 2) int32, pixel coordinates << shift
    discs: np.ndarray      # (T, 17, 3) int32: centre x, y, radius, << shift
    depths: np.ndarray     # (T, parts + 17) mm, larger is farther
    colours: list          # (parts x bands) BGR tuples, then the ball colour


def body_draw_list(poses: np.ndarray, camera: geometry.Camera) -> _DrawList:
    """The shapes showing ``poses`` (T, 32, 3) world mm in ``camera``'s image."""
    joint_a = poses[:, [p.joint_a for p in BODY_PARTS]]
    joint_b = poses[:, [p.joint_b for p in BODY_PARTS]]
    radius = np.array([p.radius_mm for p in BODY_PARTS])
    bands = np.array(_SHADING_BANDS)
    outlines = capsule_outlines(joint_a[:, :, None], joint_b[:, :, None],  # (T, parts, bands, ..)
                                radius[:, None] * bands[:, 0], radius[:, None] * bands[:, 1],
                                camera)
    polygons = np.round(geometry.project(outlines, camera) * 2 ** _SHIFT_BITS).astype(np.int32)

    joints = poses[:, list(J17)]
    depth = geometry.world_to_camera(joints, camera)[..., 2]
    ball_px = np.maximum(MIN_JOINT_BALL_PX, camera.K[0, 0] * JOINT_BALL_MM / depth)
    centres = geometry.project(joints, camera)
    discs = np.concatenate([centres, ball_px[..., None]], -1)
    discs = np.round(discs * 2 ** _SHIFT_BITS).astype(np.int32)

    part_depth = geometry.world_to_camera((joint_a + joint_b) / 2, camera)[..., 2]
    # A ball sits on the body surface, in front of the limbs that meet at its joint.
    ball_depth = depth - _surface_mm() - JOINT_BALL_MM
    colours = [tuple(int(min(255, c * brightness)) for c in part.colour_rgb[::-1])
               for part in BODY_PARTS for _, _, brightness in _SHADING_BANDS]
    return _DrawList(polygons, discs, np.concatenate([part_depth, ball_depth], -1),
                     colours + [JOINT_BALL_RGB[::-1]])


def draw_frame(background: np.ndarray, shapes: _DrawList, frame: int) -> np.ndarray:
    """(H, W, 3) BGR: the body of ``frame`` painted over ``background``, far to near."""
    image = background.copy()
    num_parts, num_bands = shapes.polygons.shape[1:3]
    for item in np.argsort(-shapes.depths[frame], kind="stable"):
        if item < num_parts:
            for band in range(num_bands):
                cv2.fillPoly(image, [shapes.polygons[frame, item, band]],
                             shapes.colours[item * num_bands + band], cv2.LINE_AA, _SHIFT_BITS)
        else:
            x, y, r = shapes.discs[frame, item - num_parts]
            cv2.circle(image, (int(x), int(y)), int(r), shapes.colours[-1], -1, cv2.LINE_AA,
                       _SHIFT_BITS)
    return image


_ROOM_HALF_MM = np.array([4500.0, 6500.0])  # walls at x = +-4.5 m, y = +-6.5 m
_CEILING_MM = 3500.0
_WALL_RGB = np.array([(125, 135, 150), (140, 130, 115), (120, 140, 125), (135, 125, 140)],
                     np.float64)


def render_background(camera: geometry.Camera, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) uint8 BGR: the room (tiled floor with a grid, panelled walls, ceiling).

    Ray traced per pixel through the undistorted pixel position, so the lens distortion
    bends the room's lines exactly as it bends the body.
    """
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    pinhole = geometry.undistort_points(np.stack([u, v], -1), camera)
    normalized = (pinhole - camera.K[:2, 2]) / np.diag(camera.K)[:2]
    rays = np.concatenate([normalized, np.ones_like(u)[..., None]], -1)
    rays = rays @ camera.R  # camera -> world directions (R^T applied to each row)
    origin = camera.center
    # Distance along each ray to the floor, the ceiling and the four walls; the nearest wins.
    with np.errstate(divide="ignore", invalid="ignore"):
        hits = [np.where(rays[..., 2] < 0, -origin[2] / rays[..., 2], np.inf),
                np.where(rays[..., 2] > 0, (_CEILING_MM - origin[2]) / rays[..., 2], np.inf)]
        for axis in (0, 1):
            for sign in (1, -1):
                wall = sign * _ROOM_HALF_MM[axis]
                hits.append(np.where(rays[..., axis] * sign > 0,
                                     (wall - origin[axis]) / rays[..., axis], np.inf))
    hits = np.stack(hits)
    surface, distance = hits.argmin(0), hits.min(0)
    point = origin + distance[..., None] * rays

    colour = np.empty(u.shape + (3,))
    x, y, z = point[..., 0], point[..., 1], point[..., 2]
    checker = (np.floor(x / 1000) + np.floor(y / 1000)) % 2
    floor = np.where(checker[..., None] > 0, (110, 100, 88), (92, 85, 78))
    grid = (np.abs((x + 250) % 500 - 250) < 12) | (np.abs((y + 250) % 500 - 250) < 12)
    colour[:] = np.where(grid[..., None], (150, 145, 135), floor)
    for wall in range(4):
        across = y if wall < 2 else x
        panel = 1 + 0.08 * ((np.floor(across / 1000) % 2) - 0.5)
        seam = np.abs((across + 500) % 1000 - 500) < 15
        shade = np.where(seam | (z < 150), 0.7, panel) * np.where(np.abs(z - 1100) < 30, 0.85, 1)
        colour[surface == wall + 2] = (_WALL_RGB[wall] * shade[..., None])[surface == wall + 2]
    colour[surface == 1] = (160, 160, 155)
    colour *= np.clip(1.15 - distance / 25000, 0.7, 1.0)[..., None]   # a little fog
    colour += rng.normal(0, 3, colour.shape)
    image = np.clip(colour, 0, 175).astype(np.uint8)[..., ::-1]
    return cv2.GaussianBlur(image, (3, 3), 0.6)


# --------------------------------------------------------------------------- files

def write_video(path: pathlib.Path, background: np.ndarray, shapes: _DrawList, frames: int) -> None:
    """Render ``frames`` frames to an mp4v video at FPS; raises OSError if it cannot be written."""
    height, width = background.shape[:2]
    writer = video_io.open_video_writer(path, FPS, (width, height))
    try:
        for frame in range(frames):
            writer.write(draw_frame(background, shapes, frame))
    finally:
        writer.release()


def write_pose_cdf(path: pathlib.Path, poses: np.ndarray) -> None:
    """Write (N, 32, D) poses as the CDF variable ``Pose`` of shape (1, N, 32 D), float64."""
    from cdflib import cdfwrite

    data = np.ascontiguousarray(poses.reshape(1, len(poses), -1), np.float64)
    cdf = cdfwrite.CDF(str(path), delete=True)
    try:
        cdf.write_var({"Variable": "Pose", "Data_Type": cdfwrite.CDF.CDF_DOUBLE, "Num_Elements": 1,
                       "Rec_Vary": True, "Dim_Sizes": list(data.shape[1:])}, var_data=data)
    finally:
        cdf.close()


# --------------------------------------------------------------------------- the set

@dataclasses.dataclass(frozen=True)
class SequencePlan:
    """One sequence to write: ``video_frames[camera]`` is None for a missing video and
    ``label_frames`` is 0 for a sequence without labels (``_ALL``)."""

    subject: str
    action: str
    name: str
    video_frames: dict
    label_frames: int
    motion_key: tuple  # which random stream animates it (``_motion_key``)


def _first_trial_number(subject: str, action: str) -> int | None:
    """The number in the name of a subject's first trial of an action (None: unnumbered)."""
    if action == "SittingDown":
        return 2        # numbering starts at 2, as in the real S1
    if action == "Directions":
        return 1        # "Directions 1" then "Directions", as for most real subjects
    return 1 if (_subject_number(subject) + h36m_utils.ACTIONS.index(action)) % 2 else None


def trial_names(subject: str, action: str, trials: int, quirks: bool) -> list:
    """The file stems of a subject's ``trials`` trials of an action, in trial order.

    Without quirks: ``<Action> 1``, ``<Action> 2``, ... With quirks, the real set's naming
    habits: S1's action names; ``<Action> 1`` then ``<Action>``, or ``<Action>`` then
    ``<Action> 2``, or ``SittingDown 2`` then ``SittingDown`` (no ``SittingDown 1``, as in the
    real S1); further trials count on. The first trial's name does not depend on ``trials``.
    """
    if not quirks:
        return [f"{action} {trial}" for trial in range(1, trials + 1)]
    base = _S1_NAMES.get(action, action) if subject == "S1" else action
    first = _first_trial_number(subject, action)
    # After the first number and the unnumbered name, count on (from 2 when the first is None).
    numbers = itertools.chain([first, None] if first else [None], itertools.count((first or 1) + 1))
    return [f"{base} {number}" if number else base for number in itertools.islice(numbers, trials)]


def _motion_key(action: str, trial: int) -> tuple:
    """The random stream of an action's trial (0-based): the first trial's stream is the same
    whatever ``trials`` is; the others add the trial index (never a trailing 0: numpy seeds
    ``[k]`` and ``[k, 0]`` alike)."""
    index = h36m_utils.ACTIONS.index(action)
    return (index, trial) if trial else (index,)


def plan_sequences(subjects, actions, frames: int, quirks: bool, seed: int,
                   trials: int = DEFAULT_TRIALS) -> list:
    """The sequences of the set: ``trials`` trials of every action per subject, each another
    motion of the same kind (``_motion_key``); with ``quirks`` those of the real data set:

    * the first subject's last action, last trial: one camera video 2 to 7 frames longer;
    * the first subject's first action, first trial: labels 3 to 8 frames shorter than videos;
    * S11 (else the last subject), first action, last trial: camera 54138969's video missing
      (the real set lacks it for S11 ``Directions``, the trial after ``Directions 1``);
    * the first subject: a short ``<first action>_ALL`` recording (videos only);
    * S1 says TakingPhoto / WalkingDog; trial numbers are irregular (``trial_names``).
    """
    rng = _rng(seed, 100)
    longer_by, shorter_by = int(rng.integers(2, 8)), int(rng.integers(3, 9))
    missing_subject = "S11" if "S11" in subjects else subjects[-1]
    # (subject, action index, trial index) of each quirk's sequence
    longer = (subjects[0], len(actions) - 1, trials - 1) if quirks else None
    shorter = (subjects[0], 0, 0) if quirks else None
    missing = (missing_subject, 0, trials - 1) if quirks else None
    plans = []
    for subject in subjects:
        for index, action in enumerate(actions):
            for trial, name in enumerate(trial_names(subject, action, trials, quirks)):
                where, videos = (subject, index, trial), dict.fromkeys(CAMERA_IDS, frames)
                if where == longer:
                    videos[CAMERA_IDS[2]] += longer_by
                if where == missing:
                    videos[CAMERA_IDS[0]] = None
                labels = frames - shorter_by if where == shorter else frames
                plans.append(SequencePlan(subject, action, name, videos, labels,
                                          _motion_key(action, trial)))
        if quirks and subject == subjects[0]:
            plans.append(SequencePlan(subject, actions[0], f"{actions[0]}_ALL",
                                      dict.fromkeys(CAMERA_IDS, max(8, frames // 4)), 0, (99,)))
    return plans


def _check_arguments(subjects, actions, trials: int, frames: int, size: int) -> None:
    unknown = [s for s in subjects if s not in h36m_utils.SUBJECTS]
    if unknown or not subjects:
        raise ValueError(f"Unknown subjects {unknown or '(none given)'}; choose from "
                         f"{', '.join(h36m_utils.SUBJECTS)}.")
    unknown = [a for a in actions if a not in _ACTION_MOTIONS]
    if unknown or not actions:
        raise ValueError(f"Unknown actions {unknown or '(none given)'}; choose from "
                         f"{', '.join(h36m_utils.ACTIONS)} (canonical names).")
    if trials < 1:
        raise ValueError(f"trials={trials}: every action needs at least 1 trial.")
    if frames < _MIN_FRAMES:
        raise ValueError(f"frames={frames} is too short: use at least {_MIN_FRAMES} (the quirks "
                         "shorten some labels by up to 8 frames).")
    if size < 64 or size % 2:
        raise ValueError(f"size={size}: the image width must be even and at least 64 pixels.")


def write_sequence(plan: SequencePlan, root: pathlib.Path, cameras: dict, backgrounds: dict,
                   offsets: np.ndarray, seed: int) -> None:
    """Animate, label and film one sequence (its videos and CDF files under ``root``)."""
    rng = _rng(seed, _subject_number(plan.subject), 1, *plan.motion_key)
    length = max(n for n in plan.video_frames.values() if n is not None)
    poses = keep_in_view(animate(plan.action, offsets, length, rng), cameras.values())
    labels = root / "Labels" / plan.subject / "MyPoseFeatures"
    if plan.label_frames:
        write_pose_cdf(labels / "D3_Positions" / f"{plan.name}.cdf", poses[:plan.label_frames])
    for camera_id, camera in cameras.items():
        if plan.label_frames:
            write_pose_cdf(labels / "D2_Positions" / f"{plan.name}.{camera_id}.cdf",
                           geometry.project(poses[:plan.label_frames], camera))
        if plan.video_frames[camera_id] is not None:
            write_video(root / "Data" / plan.subject / "Videos" / f"{plan.name}.{camera_id}.mp4",
                        backgrounds[camera_id], body_draw_list(poses, camera),
                        plan.video_frames[camera_id])


def generate_dataset(out_dir, subjects=DEFAULT_SUBJECTS, frames: int = DEFAULT_FRAMES,
                     size: int = DEFAULT_SIZE, seed: int = 0, actions=None, quirks: bool = True,
                     progress: bool = True, trials: int = DEFAULT_TRIALS) -> SyntheticDataset:
    """Write a synthetic Human3.6M set under ``out_dir`` and say where its parts are.

    subjects: subject names (``S1`` ... ``S11``); actions: canonical action names (default
    ``DEFAULT_ACTIONS``); trials: trials of every action per subject, each another motion of
    the same kind (the real set has 2); frames: label frames per sequence (50 fps); size:
    image width in pixels (cameras 54138969 and 60457274 are 2 rows taller, like the real
    1000 x 1002 videos); quirks: include the real set's quirks (``plan_sequences``); progress:
    print a line per sequence. Existing files of the same names are overwritten.
    """
    subjects, actions = tuple(subjects), tuple(DEFAULT_ACTIONS if actions is None else actions)
    _check_arguments(subjects, actions, trials, frames, size)
    root = pathlib.Path(out_dir)
    for subject in subjects:
        (root / "Data" / subject / "Videos").mkdir(parents=True, exist_ok=True)
        for kind in ("D3_Positions", "D2_Positions"):
            (root / "Labels" / subject / "MyPoseFeatures" / kind).mkdir(parents=True, exist_ok=True)
    intrinsics = make_intrinsics(size, seed)
    cameras = {subject: make_cameras(subject, intrinsics, seed) for subject in subjects}
    cameras_path = root / "Labels" / "camera-parameters.json"
    cameras_path.write_text(json.dumps(h36m_utils.cameras_json(cameras), indent=1))

    plans = plan_sequences(subjects, actions, frames, quirks, seed, trials)
    for subject in subjects:
        offsets = subject_offsets(_rng(seed, _subject_number(subject), 2))
        backgrounds = {
            camera_id: render_background(camera, _rng(seed, _subject_number(subject), 3, i))
            for i, (camera_id, camera) in enumerate(cameras[subject].items())}
        for plan in (plan for plan in plans if plan.subject == subject):
            started = time.perf_counter()
            write_sequence(plan, root, cameras[subject], backgrounds, offsets, seed)
            if progress:
                lengths = sorted({n for n in plan.video_frames.values() if n is not None})
                missing = [c for c, n in plan.video_frames.items() if n is None]
                note = f" (no video from {missing[0]})" if missing else ""
                print(f"{subject:>3} {plan.name:<18} videos {'/'.join(map(str, lengths))} frames"
                      f"{note}, labels {plan.label_frames}  "
                      f"[{time.perf_counter() - started:.1f} s]", flush=True)
    return SyntheticDataset(root=root, data_dir=root / "Data", labels_dir=root / "Labels",
                            cameras_path=cameras_path, subjects=subjects)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a synthetic data set in the exact Human3.6M layout (mp4 videos, CDF "
                    "labels, camera-parameters.json).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write Data/ and Labels/ into")
    parser.add_argument("--subjects", nargs="+", default=list(DEFAULT_SUBJECTS), help="subjects")
    parser.add_argument("--actions", nargs="+", default=list(DEFAULT_ACTIONS),
                        help=f"canonical actions, from: {' '.join(h36m_utils.ACTIONS)}")
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                        help="trials of every action per subject, each a different motion; the "
                             "real set has 2")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help="labelled frames per sequence (50 fps)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="image width in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--no-quirks", action="store_true", help="leave out the real set's quirks")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        dataset = generate_dataset(args.out, args.subjects, args.frames, args.size, args.seed,
                                   args.actions, quirks=not args.no_quirks, trials=args.trials)
    except ValueError as error:
        parser.error(str(error))
    videos = sorted(dataset.data_dir.rglob("*.mp4"))
    print(f"Wrote {len(videos)} videos and {len(list(dataset.labels_dir.rglob('*.cdf')))} label "
          f"files for {', '.join(dataset.subjects)} under {dataset.root} in "
          f"{time.perf_counter() - started:.1f} s.\nCameras: {dataset.cameras_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
