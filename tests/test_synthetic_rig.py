"""The synthetic person filmed by any rig: videos, 2D/3D ground truth, the balls where the labels
say, another world frame, a rig unlike Human3.6M's, the real pose2sim rig through the CLI."""
import dataclasses
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest

from rig import calibration
import h36m_utils
from common import geometry
from synthetic import motion
from synthetic import synthetic_rig
from joint_balls import BallCheck, ball_radius_px

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
FRAMES = 20


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rig = synthetic_rig.make_rig(4, seed=11, width=320, height=240)
    return synthetic_rig.render_rig(rig, tmp_path_factory.mktemp("rig"), frames=FRAMES, seed=2)


def decoded_frames(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def assert_inside(joints_2d, cameras):
    """joints_2d (T, V, 17, 2) inside every view's image."""
    for view, camera in enumerate(cameras):
        uv = joints_2d[:, view]
        assert (uv >= 0).all() and (uv <= [camera.width - 1, camera.height - 1]).all(), camera.id


def test_every_camera_gets_a_video_of_its_size_and_the_ground_truth_is_saved(recording):
    assert [video.name for video in recording.videos] == ["cam_a.mp4", "cam_b.mp4", "cam_c.mp4", "cam_d.mp4"]
    for camera, video in zip(recording.cameras, recording.videos):
        frames = decoded_frames(video)
        assert len(frames) == FRAMES
        assert frames[0].shape == (camera.height, camera.width, 3)
    assert recording.joints_3d.shape == (FRAMES, 17, 3) and recording.joints_2d.shape == (FRAMES, 4, 17, 2)
    saved = np.load(recording.ground_truth)
    np.testing.assert_array_equal(saved["joints_3d"], recording.joints_3d)
    np.testing.assert_array_equal(saved["joints_2d"], recording.joints_2d)
    assert float(saved["fps"]) == recording.fps == motion.FPS
    assert saved["camera_ids"].tolist() == ["cam_a", "cam_b", "cam_c", "cam_d"]
    assert saved["videos"].tolist() == [video.name for video in recording.videos]


def test_rendered_joints_are_where_the_2d_ground_truth_says(recording):
    balls = BallCheck()
    for view, (camera, video) in enumerate(zip(recording.cameras, recording.videos)):
        radius = ball_radius_px(recording.joints_3d, camera)
        for index, frame in enumerate(decoded_frames(video)):
            np.testing.assert_allclose(recording.joints_2d[index, view],
                                       geometry.project(recording.joints_3d[index], camera), atol=1e-9)
            balls.add_frame(frame, recording.joints_2d[index, view], radius[index], (camera.id, index))
    balls.assert_on_labels()


def test_the_person_walks_on_the_floor_below_where_the_cameras_look_inside_every_view(recording):
    assert_inside(recording.joints_2d, recording.cameras)
    ankles = recording.joints_3d[:, [3, 6], 2]
    assert 0 < ankles.min() and ankles.min(axis=1).max() < 200  # a foot on the floor (z = 0)
    pelvis_on_floor = recording.joints_3d[:, 0, :2] - synthetic_rig.floor_centre(recording.cameras)[:2]
    assert np.linalg.norm(pelvis_on_floor, axis=-1).max() < 1500
    assert np.linalg.norm(recording.joints_3d[-1, 0] - recording.joints_3d[0, 0]) > 200  # walking


def test_keep_in_view_moves_toward_the_given_centre():
    """The same scene moved along the floor: the person is kept in view the same way."""
    rig = synthetic_rig.make_rig(3, seed=4, width=200, height=150)
    walk = motion.animate("Walking", motion.rest_offsets(), 30, np.random.default_rng(0))
    poses = walk + [3000.0, 0.0, 0.0]  # too far out for some views
    shift = np.array([4000.0, -2500.0, 0.0])
    moved_rig, _ = synthetic_rig.transform_world(rig, np.zeros(3), np.eye(3), shift)
    kept = motion.keep_in_view(poses, rig)
    assert np.abs(kept - poses).max() > 10  # the walk had to shrink toward the centre
    moved_kept = motion.keep_in_view(poses + shift, moved_rig, centre=shift)
    np.testing.assert_allclose(moved_kept, kept + shift, atol=1e-9)


def test_another_world_frame_keeps_every_projection(recording):
    rotation = cv2.Rodrigues(np.array([0.3, -1.2, 2.0]))[0]  # not about z: the world is tilted too
    shift = np.array([1500.0, -800.0, 12000.0])
    cameras, joints = synthetic_rig.transform_world(recording.cameras, recording.joints_3d, rotation, shift)
    np.testing.assert_allclose(joints, recording.joints_3d @ rotation.T + shift, atol=1e-9)
    for view, (old, new) in enumerate(zip(recording.cameras, cameras)):
        np.testing.assert_allclose(new.center, rotation @ old.center + shift, atol=1e-9)
        np.testing.assert_allclose(geometry.project(joints, new), recording.joints_2d[:, view], atol=1e-9)


def test_make_rig_is_unlike_human36m_and_every_view_sees_the_capture_area():
    column = np.array([[0.0, 0.0, z] for z in np.linspace(0, 1800, 10)])  # a person at the centre
    for seed, count, (width, height) in ((0, 3, (480, 360)), (1, 6, (360, 480)), (2, 5, (320, 240))):
        rig = synthetic_rig.make_rig(count, seed=seed, width=width, height=height)
        assert [camera.id for camera in rig] == [f"cam_{letter}" for letter in "abcdef"[:count]]
        for camera in rig:
            assert (camera.width, camera.height, camera.distortion_model) == (width, height, "opencv")
            assert 3000 <= np.linalg.norm(camera.center[:2]) <= 6000 and 1200 <= camera.center[2] <= 2500
            assert -0.5 < camera.R[2, 2] < 0  # the optical axis looks slightly down
            assert abs(camera.R[0, 2]) < np.sin(np.radians(5))  # small roll
            uv = geometry.project(column, camera)
            assert (uv > 0).all() and (uv < [width - 1, height - 1]).all(), (seed, camera.id)
    named = synthetic_rig.make_rig(2, seed=0, names=["left", "right"])
    assert [camera.id for camera in named] == ["left", "right"]
    assert not np.allclose(synthetic_rig.make_rig(3, seed=0)[0].R, synthetic_rig.make_rig(3, seed=1)[0].R)
    with pytest.raises(ValueError, match="3 cameras need 3 different names"):
        synthetic_rig.make_rig(3, names=["a", "a", "b"])


def test_render_rig_refuses_what_it_cannot_film(tmp_path):
    rig = synthetic_rig.make_rig(2, seed=0, width=64, height=48)
    with pytest.raises(ValueError, match="at least 2 cameras"):
        synthetic_rig.render_rig(rig[:1], tmp_path)
    unsized = [rig[0], dataclasses.replace(rig[1], width=0, height=0)]
    with pytest.raises(ValueError, match="cam_b have no image size"):
        synthetic_rig.render_rig(unsized, tmp_path)
    with pytest.raises(ValueError, match="Unknown action 'Dancing'"):
        synthetic_rig.render_rig(rig, tmp_path, action="Dancing")


def test_real_rigs_that_cut_the_person_off_where_they_look_film_them_nearby(calibration_samples_dir):
    """Four of the EasyMocap sample's cameras cut a sitting person's feet off below where their axes
    meet: the person is placed on the nearest floor point every view holds, inside every view."""
    rig = calibration.load_calibration(str(calibration_samples_dir / "easymocap"))
    rig = calibration.with_image_sizes(rig, {name: (1920, 1080) for name in rig.names})
    cameras = [c for c in synthetic_rig.scale_images(rig.cameras, 0.25) if c.id in ("11", "15", "25", "31")]
    centre = synthetic_rig.floor_centre(cameras)
    person = h36m_utils.SUBJECTS.index("S11") + 1  # the motion person_in_view animates
    sitting = motion.animate("SittingDown", motion.subject_offsets(np.random.default_rng([0, person, 2])),
                             60, np.random.default_rng([0, person, 1]))
    with pytest.raises(RuntimeError):  # where the cameras look, one view cannot hold the motion
        motion.keep_in_view(sitting + centre, cameras, centre=centre)
    poses = synthetic_rig.person_in_view(cameras, 60, "SittingDown", 0, "S11")
    for camera in cameras:
        uv = geometry.project(poses, camera)
        assert (uv >= 0).all() and (uv < [camera.width, camera.height]).all(), camera.id
    assert 0 < np.linalg.norm(poses[:, 0, :2].mean(axis=0) - centre[:2]) <= 1500.0


def test_command_line_renders_the_real_pose2sim_rig_at_a_small_scale(calibration_samples_dir, tmp_path):
    toml = calibration_samples_dir / "pose2sim" / "Calib.toml"
    command = [sys.executable, "-m", "synthetic.synthetic_rig", "--calibration", str(toml), "--out",
               str(tmp_path), "--frames", "10", "--scale", "0.125", "--action", "Greeting"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert "Wrote 4 videos of 10 frames" in result.stdout
    rendered = calibration.load_calibration(tmp_path / synthetic_rig.CALIBRATION_FILE)
    original = calibration.load_calibration(toml).cameras
    expected = synthetic_rig.scale_images(original, 0.125)
    for camera, scaled, full in zip(rendered.cameras, expected, original):
        assert (camera.id, camera.width, camera.height) == (full.id, 136, 240)
        np.testing.assert_allclose(camera.K, scaled.K, atol=1e-12)
        frames = decoded_frames(tmp_path / f"{camera.id}.mp4")
        assert len(frames) == 10 and frames[0].shape == (240, 136, 3)
    truth = np.load(tmp_path / synthetic_rig.GROUND_TRUTH_FILE)
    assert truth["joints_2d"].shape == (10, 4, 17, 2)
    assert_inside(truth["joints_2d"], rendered.cameras)
    for view, (camera, full) in enumerate(zip(rendered.cameras, original)):
        # Scaling keeps pixel centres: u' + 0.5 = s (u + 0.5) for the full-size camera's u.
        full_uv = geometry.project(truth["joints_3d"], full)
        np.testing.assert_allclose(truth["joints_2d"][:, view], 0.125 * (full_uv + 0.5) - 0.5, atol=1e-9)


def test_command_line_errors_name_the_fix(calibration_samples_dir, tmp_path, capsys):
    toml = str(calibration_samples_dir / "pose2sim" / "Calib.toml")
    for extra, message in ((["--calibration-units", "mm"], "--calibration-units m"),
                           (["--size", "1920", "1080"], "is 1920 x 1080 px, but the calibration is for 1088 x 1920 px images"),
                           (["--scale", "0"], "--scale in")):
        with pytest.raises(SystemExit) as exit_:
            synthetic_rig.main(["--calibration", toml, "--out", str(tmp_path), *extra])
        assert exit_.value.code == 2
        assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("*.mp4"))


def test_look_at_points_the_optical_axis_at_the_target_with_up_up_in_the_picture():
    """The target projects to the principal point, a point above it (along ``up``) higher in the
    picture (smaller y); the matrix is a rotation; a tilted ``up`` tilts the picture with it."""
    centre, target = np.array([4000.0, -3000.0, 1500.0]), np.array([100.0, 200.0, 900.0])
    for up in ((0, 0, 1), (0.3, 0, 1), (0, 0, 5)):
        R = geometry.look_at(centre, target, up=up)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        axis = R @ (target - centre)
        np.testing.assert_allclose(axis[:2], 0.0, atol=1e-9)
        above = R @ (target + 300 * np.asarray(up) / np.linalg.norm(up) - centre)
        assert above[1] / above[2] < -0.01 and abs(above[0] / above[2]) < 1e-9
    np.testing.assert_allclose(geometry.look_at(centre, target, up=(0, 0, 5)), geometry.look_at(centre, target), atol=1e-12)
