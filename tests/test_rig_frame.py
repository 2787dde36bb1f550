"""The rig frame: computed from the cameras alone, so it moves with a turned and moved world."""
import itertools

import numpy as np
import pytest

import h36m_utils
from common import geometry
from common import rig_frame
from synthetic import rigs


def synthetic_rig(seed=0, size=320):
    return list(rigs.make_cameras("S1", rigs.make_intrinsics(size, seed), seed).values())


def turn_world(cameras, angle_deg, shift_mm):
    """The same cameras described in a world frame turned about z and moved: X_new = T X_old + s."""
    angle = np.radians(angle_deg)
    turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    shift = np.asarray(shift_mm, np.float64)
    moved = [geometry.Camera(R=c.R @ turn.T, t=c.t - c.R @ turn.T @ shift, K=c.K, k=c.k, p=c.p,
                               width=c.width, height=c.height, id=c.id) for c in cameras]
    return moved, lambda points: points @ turn.T + shift


def test_frame_is_orthonormal_right_handed_and_points_up():
    frame = rig_frame.rig_frame(synthetic_rig())
    np.testing.assert_allclose(frame.rotation @ frame.rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(frame.rotation) == pytest.approx(1.0)
    # The synthetic rig's cameras are level (roll within 1 degree) in a z-up world.
    assert frame.rotation[2] @ [0, 0, 1] > 0.999


def test_origin_is_where_the_optical_axes_meet():
    cameras = synthetic_rig()
    origin = rig_frame.nearest_point_to_axes(cameras)
    for camera in cameras:  # every axis passes within 0.3 m of it (targets spread +-150 mm)
        offset = origin - camera.center
        assert np.linalg.norm(offset - (offset @ camera.R[2]) * camera.R[2]) < 300


def test_same_rig_in_a_turned_and_moved_world_gives_the_same_rig_cameras():
    cameras = synthetic_rig()
    moved, to_new = turn_world(cameras, 40.0, [1400.0, -300.0, 50.0])
    local, frame = rig_frame.cameras_in_rig_frame(cameras)
    local_moved, frame_moved = rig_frame.cameras_in_rig_frame(moved)
    for a, b in zip(local, local_moved):
        np.testing.assert_allclose(a.R, b.R, atol=1e-12)
        np.testing.assert_allclose(a.t, b.t, atol=1e-8)
    points = np.random.default_rng(0).normal(0, 800, (20, 3))
    np.testing.assert_allclose(frame.to_rig(points), frame_moved.to_rig(to_new(points)), atol=1e-8)
    np.testing.assert_allclose(frame_moved.to_world(frame.to_rig(points)), to_new(points), atol=1e-8)


def test_projections_do_not_change_in_the_rig_frame():
    """Guards the frame change itself: an identity in place of ``camera_to_rig``, or a transposed
    rotation in ``to_rig``, moves the projections."""
    cameras = synthetic_rig()
    local, frame = rig_frame.cameras_in_rig_frame(cameras)
    points = np.random.default_rng(1).normal(0, 800, (20, 3)) + [0, 0, 900]
    for world_camera, rig_camera in zip(cameras, local):
        np.testing.assert_allclose(geometry.project(frame.to_rig(points), rig_camera),
                                   geometry.project(points, world_camera), atol=1e-8)
    homogeneous = np.concatenate([points, np.ones((20, 1))], axis=1)
    np.testing.assert_allclose(homogeneous @ frame.matrix().T, np.concatenate([frame.to_rig(points), np.ones((20, 1))], 1),
                               atol=1e-8)


def test_real_human36m_rig_frame_is_near_the_floor_centre(h36m_sample_dir):
    cameras = h36m_utils.load_cameras(str(h36m_sample_dir / "camera-parameters.json"))
    for subject in ("S1", "S9", "S11"):
        frame = rig_frame.rig_frame(cameras[subject][c] for c in h36m_utils.CAMERA_IDS)
        assert frame.rotation[2] @ [0, 0, 1] > 0.99  # Human3.6M's world is z-up, cameras level
        assert np.linalg.norm(frame.origin[:2]) < 1000 and 0 < frame.origin[2] < 2000


def test_too_few_or_disagreeing_cameras_are_errors():
    cameras = synthetic_rig()
    with pytest.raises(ValueError, match="at least 2 cameras"):
        rig_frame.rig_frame(cameras[:1])
    upside_down = geometry.Camera(R=np.diag([-1.0, -1.0, 1.0]) @ cameras[0].R, t=cameras[0].t, K=cameras[0].K,
                                    k=cameras[0].k, p=cameras[0].p, width=320, height=320, id="x")
    with pytest.raises(ValueError, match="cancel out"):
        rig_frame.rig_frame([cameras[0], upside_down])


def test_every_human36m_subject_gets_the_same_yaw(h36m_sample_dir):
    """Guards the yaw of a ring of cameras: Human3.6M's viewing directions cancel out (their mean is
    1% of their length), so a yaw from their mean alone turned from subject to subject (S1 19
    degrees, S5 161 degrees); the ring's long axis, pointed the way its farthest camera looks,
    is one yaw for the 11 subjects' calibrations, and for their cameras in any of the 24 orders
    (a sign taken from the first camera instead of the farthest fails here)."""
    cameras = h36m_utils.load_cameras(str(h36m_sample_dir / "camera-parameters.json"))
    axes = {subject: rig_frame.rig_frame(cameras[subject][c] for c in h36m_utils.CAMERA_IDS).rotation[0]
            for subject in h36m_utils.SUBJECTS}
    for subject, axis in axes.items():
        assert np.degrees(np.arccos(np.clip(axis @ axes["S1"], -1, 1))) < 5, subject
        for order in itertools.permutations(h36m_utils.CAMERA_IDS):
            np.testing.assert_allclose(rig_frame.rig_frame(cameras[subject][c] for c in order).rotation[0], axis,
                                       atol=1e-12, err_msg=f"{subject} {order}")


def test_cameras_on_one_side_of_the_scene_take_their_mean_viewing_direction():
    """Guards the clear-mean rule (and that it is the mean, not a camera's direction): two level
    cameras looking along +x and +y give the x axis halfway between them, in either order."""
    def level_camera(forward, centre):
        forward = np.asarray(forward, float)
        down = np.array([0.0, 0.0, -1.0])
        R = np.stack([np.cross(down, forward), down, forward])  # rows: image x, image y (down), optical axis
        return geometry.Camera(R=R, t=-R @ np.asarray(centre, float), K=np.diag([500.0, 500.0, 1.0]),
                               k=np.zeros(3), p=np.zeros(2), width=640, height=480, id="c")
    pair = [level_camera([1, 0, 0], [-3000, 0, 1500]), level_camera([0, 1, 0], [0, -3000, 1500])]
    for cameras in (pair, pair[::-1]):
        frame = rig_frame.rig_frame(cameras)
        np.testing.assert_allclose(frame.rotation[0], [np.sqrt(0.5), np.sqrt(0.5), 0], atol=1e-12)
        np.testing.assert_allclose(frame.rotation[2], [0, 0, 1], atol=1e-12)
