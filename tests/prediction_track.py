"""A known track of predictions for the exports' and the renderings' tests: a person walking 50 mm
a frame, in 3D (world mm, Z up) and in two views (frame pixels)."""
import numpy as np

FRAMES = np.arange(8) * 5  # every 5th frame of a 50 fps video
FPS = 50.0
CAMERAS = ("cam_a", "cam_b")
# A person standing, Z up, world mm (J17: pelvis, right leg, left leg, spine..head, left arm, right arm).
STANDING = np.array([
    [0, 0, 950], [-120, 0, 950], [-120, 0, 500], [-120, 0, 80], [120, 0, 950], [120, 0, 500],
    [120, 0, 80], [0, 0, 1200], [0, 0, 1450], [0, 0, 1550], [0, 0, 1700], [180, 0, 1450],
    [350, 0, 1250], [450, 0, 1050], [-180, 0, 1450], [-350, 0, 1250], [-450, 0, 1050]], np.float64)


def track_3d() -> np.ndarray:
    """(8, 17, 3) world mm: the person walks 50 mm a frame along x, with a little jitter."""
    jitter = np.random.default_rng(0).normal(0, 3, (len(FRAMES), 17, 3))
    return STANDING + np.arange(len(FRAMES))[:, None, None] * [50.0, 0, 0] + jitter


def track_2d() -> np.ndarray:
    """(8, 2, 17, 2) frame pixels: the front (x, z) of the pose, placed differently in each view."""
    uv = track_3d()[..., [0, 2]] * [1, -1]
    view_a = uv * 0.11 + [140, 215]
    view_b = uv * 0.16 + [110, 300]
    return np.stack([view_a, view_b], axis=1)

