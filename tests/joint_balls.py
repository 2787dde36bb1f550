"""The white joint balls of the synthetic person, found in decoded video frames and compared with
the 2D labels (for the tests of synthetic_h36m and synthetic_rig)."""
import dataclasses

import cv2
import numpy as np
from common import geometry
from synthetic import render


def ball_radius_px(joints_3d: np.ndarray, camera: geometry.Camera) -> np.ndarray:
    """(..., 17, 3) world mm -> (..., 17) the radius in pixels the renderer gives each joint's ball."""
    depth = geometry.world_to_camera(joints_3d, camera)[..., 2]
    return np.maximum(render.MIN_JOINT_BALL_PX, camera.K[0, 0] * render.JOINT_BALL_MM / depth)


@dataclasses.dataclass
class BallCheck:
    """Balls found over many frames: each white region's centroid against the nearest label.

    Only whole, isolated balls are measured (a ball partly hidden behind a limb, or touching
    another ball, has a biased centroid): area within 30% of the disc's, no other label near.
    """

    errors: list = dataclasses.field(default_factory=list)   # px, one per whole ball
    joints: set = dataclasses.field(default_factory=set)     # joints seen as whole balls
    stray: list = dataclasses.field(default_factory=list)    # (where, centroid) of far blobs
    views: int = 0

    def add_frame(self, frame: np.ndarray, labels: np.ndarray, radius: np.ndarray, where) -> None:
        """frame (H, W, 3) BGR; labels (17, 2) px; radius (17,) px; where: named in failures."""
        self.views += 1
        white = (frame.min(axis=-1) > 200).astype(np.uint8)
        count, _, stats, centroids = cv2.connectedComponentsWithStats(white)
        for blob in range(1, count):
            distance = np.linalg.norm(labels - centroids[blob], axis=-1)
            joint = distance.argmin()
            r = radius[joint]
            if distance[joint] > 2 * r + 2:
                self.stray.append((where, centroids[blob]))
            area = stats[blob, cv2.CC_STAT_AREA] / (np.pi * r * r)
            if 0.7 < area < 1.3 and np.sort(distance)[1] > 2 * r + 1:
                self.errors.append(distance[joint])
                self.joints.add(int(joint))

    def assert_on_labels(self, whole_fraction: float = 0.25) -> None:
        """No stray white, every joint seen whole, enough whole balls, all centred on their labels."""
        assert not self.stray, f"white blobs away from every joint: {self.stray[:5]}"
        unseen = set(range(17)) - self.joints
        assert not unseen, f"joints never seen as a whole ball: {unseen}"
        assert len(self.errors) > whole_fraction * 17 * self.views, \
            f"only {len(self.errors)} whole balls in {self.views} views"
        assert max(self.errors) < 2.0, f"ball centre off its label by {max(self.errors):.2f} px"
        assert np.median(self.errors) < 0.5
