"""The synthetic person: a 32-joint skeleton with human bone lengths (scaled per subject),
animated procedurally per action (gait, waving, pointing, sitting down, turning, ...), and kept
inside every camera's view.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from common import geometry
from common.skeleton import PARENTS_32

FPS = 50

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


def rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
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
    local = rotation(angles[..., 0], angles[..., 1], angles[..., 2])
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
ACTION_MOTIONS = {
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
    locomotion, posture, gesture = ACTION_MOTIONS[action]
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
