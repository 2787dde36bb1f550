"""The synthetic Human3.6M set: layout, trials, quirks, labels, rendering, determinism, CLI.

Checked against independent readers: cdflib for the CDF files, OpenCV decoding for the mp4
videos, h36m_utils.load_cameras for the camera file.
"""
import json
import pathlib
import re
import subprocess
import sys

import cdflib
import cv2
import numpy as np
import pytest

import h36m_utils
from common import geometry
from common import skeleton
from synthetic import motion
from synthetic import render
from synthetic import synthetic_h36m
from h36m_utils import CAMERA_IDS
from common.skeleton import J17
from joint_balls import BallCheck, ball_radius_px

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers

def _videos(dataset, subject):
    """{stem: {camera id: path}} of a subject's videos."""
    found = {}
    for path in sorted((dataset.data_dir / subject / "Videos").glob("*.mp4")):
        stem, camera_id = path.stem.rsplit(".", 1)
        found.setdefault(stem, {})[camera_id] = path
    return found


def _labels_dir(dataset, subject, kind):
    return dataset.labels_dir / subject / "MyPoseFeatures" / kind


def _d3_stems(dataset, subject):
    return sorted(path.stem for path in _labels_dir(dataset, subject, "D3_Positions").glob("*.cdf"))


def _frame_count(path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    count = 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def _pose(path):
    """The raw ``Pose`` variable, read with cdflib directly."""
    return cdflib.CDF(str(path)).varget("Pose")


def _labelled_sequences(dataset):
    """(subject, stem, D3 (N, 32, 3), {camera: D2 (N, 32, 2)}) for every labelled sequence."""
    for subject in dataset.subjects:
        for stem in _d3_stems(dataset, subject):
            d3_dir = _labels_dir(dataset, subject, "D3_Positions")
            d2_dir = _labels_dir(dataset, subject, "D2_Positions")
            d3 = h36m_utils.read_poses(str(d3_dir / f"{stem}.cdf"))
            d2 = {c: h36m_utils.read_poses(str(d2_dir / f"{stem}.{c}.cdf")) for c in CAMERA_IDS}
            yield subject, stem, d3, d2


@pytest.fixture(scope="module")
def cameras(synthetic_dataset):
    return h36m_utils.load_cameras(str(synthetic_dataset.cameras_path))


# --------------------------------------------------------------------------- layout and files

def test_layout_is_the_official_one(synthetic_dataset):
    assert synthetic_dataset.subjects == ("S1", "S11")
    assert synthetic_dataset.data_dir == synthetic_dataset.root / "Data"
    assert synthetic_dataset.labels_dir == synthetic_dataset.root / "Labels"
    assert synthetic_dataset.cameras_path == synthetic_dataset.labels_dir / "camera-parameters.json"
    for subject in synthetic_dataset.subjects:
        stems = _d3_stems(synthetic_dataset, subject)
        actions = sorted(h36m_utils.canonical_action(stem) for stem in stems)
        assert actions == sorted(synthetic_h36m.DEFAULT_ACTIONS * synthetic_h36m.DEFAULT_TRIALS)
        videos = _videos(synthetic_dataset, subject)
        for stem in stems:
            d2_dir = _labels_dir(synthetic_dataset, subject, "D2_Positions")
            d2 = sorted(path.name for path in d2_dir.glob(f"{stem}.*.cdf"))
            assert d2 == [f"{stem}.{c}.cdf" for c in CAMERA_IDS]
            assert set(videos[stem]) <= set(CAMERA_IDS) and len(videos[stem]) >= 3


def test_camera_file_has_the_shared_layout(synthetic_dataset, h36m_sample_dir):
    written = json.loads(synthetic_dataset.cameras_path.read_text())
    real = json.loads((h36m_sample_dir / "camera-parameters.json").read_text())
    assert set(written) == set(real) == {"intrinsics", "extrinsics"}
    assert set(written["intrinsics"]) == set(CAMERA_IDS)
    assert set(written["extrinsics"]) == {"S1", "S11"}
    for camera_id in CAMERA_IDS:
        intrinsic = written["intrinsics"][camera_id]
        assert set(intrinsic) == set(real["intrinsics"][camera_id]) | {"image_size"}
        assert np.shape(intrinsic["calibration_matrix"]) == (3, 3)
        assert len(intrinsic["distortion"]) == 5
        expected_height = 258 if camera_id in ("54138969", "60457274") else 256
        assert intrinsic["image_size"] == [256, expected_height]
        ours, theirs = written["extrinsics"]["S11"][camera_id], real["extrinsics"]["S11"][camera_id]
        assert np.shape(ours["R"]) == np.shape(theirs["R"]) == (3, 3)
        assert np.shape(ours["t"]) == np.shape(theirs["t"]) == (3, 1)


def test_cdf_files_hold_pose_with_the_official_shapes(synthetic_dataset):
    for subject in synthetic_dataset.subjects:
        videos = _videos(synthetic_dataset, subject)
        for stem in _d3_stems(synthetic_dataset, subject):
            d3_path = _labels_dir(synthetic_dataset, subject, "D3_Positions") / f"{stem}.cdf"
            info = cdflib.CDF(str(d3_path)).cdf_info()
            assert info.zVariables + info.rVariables == ["Pose"]
            d3 = _pose(d3_path)
            assert d3.dtype == np.float64 and d3.ndim == 3 and d3.shape[::2] == (1, 96)
            assert 16 <= d3.shape[1] <= 40
            for camera_id in CAMERA_IDS:
                d2_dir = _labels_dir(synthetic_dataset, subject, "D2_Positions")
                d2 = _pose(d2_dir / f"{stem}.{camera_id}.cdf")
                assert d2.dtype == np.float64 and d2.shape == (1, d3.shape[1], 64)
            lengths = {_frame_count(path) for path in videos[stem].values()}
            assert min(lengths) >= d3.shape[1]


def test_videos_are_50_fps_mp4_of_the_camera_size(synthetic_dataset, cameras):
    for camera_id, path in _videos(synthetic_dataset, "S11")["Walking"].items():
        capture = cv2.VideoCapture(str(path))
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(50)
        ok, frame = capture.read()
        capture.release()
        camera = cameras["S11"][camera_id]
        assert ok and frame.shape == (camera.height, camera.width, 3)


# --------------------------------------------------------------------------- trials

def test_trial_names_are_real_like_unique_and_map_back_to_their_action():
    for subject in h36m_utils.SUBJECTS:
        for action in h36m_utils.ACTIONS:
            for quirks in (True, False):
                names = synthetic_h36m.trial_names(subject, action, 3, quirks)
                assert len(set(names)) == 3, names
                assert [h36m_utils.canonical_action(name) for name in names] == [action] * 3
                # The first trial keeps its name whatever the number of trials.
                assert synthetic_h36m.trial_names(subject, action, 1, quirks) == names[:1]
    assert synthetic_h36m.trial_names("S1", "SittingDown", 2, True) == ["SittingDown 2",
                                                                          "SittingDown"]
    assert synthetic_h36m.trial_names("S11", "Directions", 2, True) == ["Directions 1",
                                                                         "Directions"]
    assert synthetic_h36m.trial_names("S1", "Photo", 2, True)[0].startswith("TakingPhoto")
    assert synthetic_h36m.trial_names("S5", "Walking", 2, False) == ["Walking 1", "Walking 2"]


def test_the_default_set_has_two_trials_of_every_action_per_training_subject(tmp_path):
    """The default subjects, actions and trials (few frames, small images), seen by the index."""
    dataset = synthetic_h36m.generate_dataset(tmp_path, frames=16, size=64, progress=False)
    sequences, report = h36m_utils.find_sequences(str(dataset.data_dir), str(dataset.labels_dir),
                                                  dataset.subjects)
    assert synthetic_h36m.DEFAULT_TRIALS == 2
    trials = {}
    for sequence in sequences:
        trials.setdefault((sequence.subject, sequence.action), []).append(sequence.name)
    training = [s for s in dataset.subjects if s not in h36m_utils.TEST_SUBJECTS]
    assert training == ["S1", "S5", "S6", "S7"]
    for subject in training:
        for action in synthetic_h36m.DEFAULT_ACTIONS:
            names = trials[subject, action]
            assert len(set(names)) == len(names) == 2, (subject, action, names)
    # S11 too, but for Directions: one trial lacks a camera video, as in the real set.
    s11 = [len(trials["S11", action]) for action in synthetic_h36m.DEFAULT_ACTIONS]
    assert s11 == [1] + [2] * (len(s11) - 1)
    skipped = {(e.subject, e.sequence) for e in report.of_kind("skipped")}
    assert skipped == {("S1", "Directions_ALL"), ("S11", "Directions")}
    assert {e.sequence for e in report.of_kind("renamed")} == {
        "TakingPhoto", "TakingPhoto 2", "WalkingDog 1", "WalkingDog"}
    expected = 2 * len(dataset.subjects) * len(synthetic_h36m.DEFAULT_ACTIONS) - 1
    assert report.num_sequences == len(sequences) == expected
    assert str(report).startswith(f"Human3.6M index: {expected} sequences")


def test_the_trials_of_an_action_are_different_motions(synthetic_dataset):
    """Not the same motion moved elsewhere: the body itself moves differently. (That each
    trial still does what its action says is checked with the other motion tests.)"""
    trials = {}
    for subject, stem, d3, _ in _labelled_sequences(synthetic_dataset):
        trials.setdefault((subject, h36m_utils.canonical_action(stem)), []).append(d3)
    for key, (first, second) in trials.items():
        frames = min(len(first), len(second))  # one trial has shortened labels
        root_relative = [pose[:frames] - pose[:frames, :1] for pose in (first, second)]
        assert np.abs(first[:frames] - second[:frames]).max() > 200, key
        assert np.abs(root_relative[0] - root_relative[1]).max() > 50, key  # not just moved


def test_one_trial_gives_the_one_trial_set(tmp_path):
    """trials=1: one trial per action, named as before trials existed, with every quirk on it;
    its labels are those of the first of two trials, bit for bit."""
    actions = ("Directions", "SittingDown", "Walking")
    one, two = (synthetic_h36m.generate_dataset(tmp_path / str(trials), subjects=("S1",),
                                                frames=16, size=64, actions=actions,
                                                trials=trials, progress=False)
                for trials in (1, 2))
    assert _d3_stems(one, "S1") == ["Directions 1", "SittingDown 2", "Walking"]
    assert sorted(_videos(one, "S1")) == ["Directions 1", "Directions_ALL", "SittingDown 2",
                                          "Walking"]
    # S1 alone is the first and the last subject: short labels and a missing camera, one trial.
    assert set(_videos(one, "S1")["Directions 1"]) == set(CAMERA_IDS) - {"54138969"}
    assert _pose(_labels_dir(one, "S1", "D3_Positions") / "Directions 1.cdf").shape[1] < 16
    assert len(_d3_stems(two, "S1")) == 6
    for stem in ("Directions 1", "SittingDown 2"):
        ours, theirs = (_pose(_labels_dir(dataset, "S1", "D3_Positions") / f"{stem}.cdf")
                        for dataset in (one, two))
        np.testing.assert_array_equal(ours, theirs)


# --------------------------------------------------------------------------- quirks

def test_quirks_of_the_real_set_are_present(synthetic_dataset):
    s1, s11 = _videos(synthetic_dataset, "S1"), _videos(synthetic_dataset, "S11")
    # One camera video 2 to 7 frames longer than the others (in exactly one trial).
    longer = []
    for stem, per_camera in {**s1, **{f"S11 {k}": v for k, v in s11.items()}}.items():
        counts = sorted(_frame_count(path) for path in per_camera.values())
        if counts[-1] != counts[0]:
            longer.append((stem, counts))
    assert len(longer) == 1
    counts = longer[0][1]
    assert counts[:-1] == [counts[0]] * (len(counts) - 1) and 2 <= counts[-1] - counts[0] <= 7
    # Labels shorter than the videos in one trial.
    shorter = []
    for subject, videos in (("S1", s1), ("S11", s11)):
        for stem in _d3_stems(synthetic_dataset, subject):
            labels = _pose(_labels_dir(synthetic_dataset, subject, "D3_Positions") / f"{stem}.cdf")
            if labels.shape[1] < min(_frame_count(path) for path in videos[stem].values()):
                shorter.append((subject, stem))
    assert len(shorter) == 1
    # S11 "Directions" (not "Directions 1") has no video from camera 54138969 (the real set's
    # damaged one), but labels.
    assert set(s11["Directions"]) == set(CAMERA_IDS) - {"54138969"}
    assert set(s11["Directions 1"]) == set(CAMERA_IDS)
    s11_d2 = _labels_dir(synthetic_dataset, "S11", "D2_Positions")
    assert (s11_d2 / "Directions.54138969.cdf").is_file()
    # An _ALL recording: videos of all cameras, no labels.
    all_stems = [stem for stem in s1 if stem.endswith("_ALL")]
    assert all_stems == ["Directions_ALL"] and set(s1["Directions_ALL"]) == set(CAMERA_IDS)
    assert not list(synthetic_dataset.labels_dir.rglob("*_ALL*"))
    # S1's own action names; the others use the canonical ones.
    s1_bases = {stem.split(" ")[0] for stem in _d3_stems(synthetic_dataset, "S1")}
    s11_bases = {stem.split(" ")[0] for stem in _d3_stems(synthetic_dataset, "S11")}
    assert {"TakingPhoto", "WalkingDog"} <= s1_bases and not {"Photo", "WalkDog"} & s1_bases
    assert {"Photo", "WalkDog"} <= s11_bases and not {"TakingPhoto", "WalkingDog"} & s11_bases
    # Irregular trial numbers: "SittingDown 2" without "SittingDown 1"; some trials unnumbered.
    for subject in ("S1", "S11"):
        stems = _d3_stems(synthetic_dataset, subject)
        assert "SittingDown 2" in stems and "SittingDown 1" not in stems
        assert any(" " not in stem for stem in stems)


def test_without_quirks_the_set_is_clean(tmp_path):
    dataset = synthetic_h36m.generate_dataset(tmp_path, subjects=("S1", "S11"), frames=16, size=64,
                                              actions=("Directions", "Photo"), quirks=False,
                                              progress=False)
    for subject in ("S1", "S11"):
        videos = _videos(dataset, subject)
        assert sorted(videos) == _d3_stems(dataset, subject) == ["Directions 1", "Directions 2",
                                                                 "Photo 1", "Photo 2"]
        for stem, per_camera in videos.items():
            assert set(per_camera) == set(CAMERA_IDS)
            assert {_frame_count(path) for path in per_camera.values()} == {16}
            labels = _pose(_labels_dir(dataset, subject, "D3_Positions") / f"{stem}.cdf")
            assert labels.shape == (1, 16, 96)


def test_the_index_reports_every_quirk(synthetic_dataset):
    sequences, report = h36m_utils.find_sequences(str(synthetic_dataset.data_dir),
                                                  str(synthetic_dataset.labels_dir),
                                                  synthetic_dataset.subjects)
    skipped = {(e.subject, e.sequence) for e in report.of_kind("skipped")}
    assert skipped == {("S1", "Directions_ALL"), ("S11", "Directions")}
    assert len(report.of_kind("trimmed")) == 2
    trials = synthetic_h36m.DEFAULT_TRIALS
    assert len(report.of_kind("renamed")) == 2 * trials  # S1's TakingPhoto and WalkingDog
    assert len(sequences) == 2 * trials * len(synthetic_h36m.DEFAULT_ACTIONS) - 1


# --------------------------------------------------------------------------- labels

def test_d2_labels_are_the_distorted_projection_of_d3(synthetic_dataset, cameras):
    for subject, _, d3, d2 in _labelled_sequences(synthetic_dataset):
        for camera_id, uv in d2.items():
            camera = cameras[subject][camera_id]
            np.testing.assert_allclose(uv, geometry.project(d3, camera), rtol=0, atol=1e-9)
            # The lens distortion is in the labels; as in the real set, near the image centre
            # (where the person is) it moves points by about 0.1 to 0.3% of the image width.
            pinhole = geometry.project(d3, camera, distort=False)
            assert np.abs(uv - pinhole).max() > 0.001 * camera.width


def test_every_joint_stays_inside_every_view(synthetic_dataset, cameras):
    for subject, stem, _, d2 in _labelled_sequences(synthetic_dataset):
        for camera_id, uv in d2.items():
            camera = cameras[subject][camera_id]
            last = (camera.width - 1, camera.height - 1)
            assert (uv >= 0).all() and (uv <= last).all(), (subject, stem, camera_id)


def test_skeleton_is_rigid_human_sized_and_on_the_floor(synthetic_dataset):
    thighs = {}
    for subject, stem, d3, _ in _labelled_sequences(synthetic_dataset):
        assert np.isfinite(d3).all()
        parents = list(skeleton.PARENTS_32[1:])
        bones = np.linalg.norm(d3[:, 1:] - d3[:, parents], axis=-1)  # (N, 31)
        assert np.ptp(bones, axis=0).max() < 1e-6, f"{subject} {stem}: bone lengths change"
        length = dict(zip(range(1, 32), bones[0]))
        for (child, low, high) in ((2, 380, 500), (3, 380, 500), (18, 240, 310), (19, 220, 290),
                                   (1, 110, 150), (13, 220, 280)):
            assert low <= length[child] <= high, (subject, stem, child, length[child])
        for left, right in ((7, 2), (8, 3), (18, 26), (19, 27)):
            assert length[left] == pytest.approx(length[right])
        # The feet rest on the floor (z = 0 plane; the foot joints lie inside the foot).
        lowest = d3[:, [3, 4, 5, 8, 9, 10], 2].min(axis=1)
        assert 20 < lowest.min() and lowest.max() < 40, f"{subject} {stem}: feet off the floor"
        assert d3[..., 2].max() < 2000
        thighs.setdefault(subject, set()).add(round(length[2], 6))
    assert len(thighs["S1"]) == len(thighs["S11"]) == 1     # one skeleton per subject
    assert abs(thighs["S1"].pop() - thighs["S11"].pop()) > 1.0


def test_motion_is_smooth_and_does_what_the_action_says(synthetic_dataset):
    """Every trial of every action."""
    for subject, stem, pose, _ in _labelled_sequences(synthetic_dataset):
        key, action = (subject, stem), h36m_utils.canonical_action(stem)
        speed = np.linalg.norm(np.diff(pose, axis=0), axis=-1) * motion.FPS  # mm/s
        assert speed.max() < 8000, key  # a swinging foot is the fastest part
        assert np.abs(np.diff(pose, 2, axis=0)).max() < 30, key  # mm per frame^2: no jumps
        assert speed.mean() > 50, f"{key}: nobody moves"
        if action == "Walking":
            assert np.linalg.norm(pose[-1, 0, :2] - pose[0, 0, :2]) > 400, key
        if action == "SittingDown":
            assert pose[0, 0, 2] - pose[:, 0, 2].min() > 150, key
        if action == "Greeting":
            wrists, head = pose[:, [19, 27], 2].max(axis=1), pose[:, 15, 2]
            assert (wrists > head - 150).any(), f"{key}: nobody waves"


def test_every_action_of_the_data_set_can_be_generated(tmp_path):
    dataset = synthetic_h36m.generate_dataset(tmp_path, subjects=("S8",), frames=16, size=64,
                                              actions=h36m_utils.ACTIONS, quirks=False,
                                              trials=1, progress=False)
    cameras = h36m_utils.load_cameras(str(dataset.cameras_path))["S8"]
    stems = _d3_stems(dataset, "S8")
    assert sorted(h36m_utils.canonical_action(stem) for stem in stems) == sorted(h36m_utils.ACTIONS)
    for stem in stems:
        d3 = h36m_utils.read_poses(str(_labels_dir(dataset, "S8", "D3_Positions") / f"{stem}.cdf"))
        assert d3.shape == (16, 32, 3) and np.isfinite(d3).all()
        for camera in cameras.values():
            uv = geometry.project(d3, camera)
            assert (uv >= 0).all() and (uv <= [camera.width - 1, camera.height - 1]).all(), stem


# --------------------------------------------------------------------------- rendering

def test_rendered_joints_are_where_the_labels_say(synthetic_dataset, cameras):
    """Each standard joint carries a white ball centred on its D2 label: find the balls in the
    decoded video (connected white regions) and compare their centroids with the labels."""
    balls = BallCheck()
    for subject, stem, d3, d2 in _labelled_sequences(synthetic_dataset):
        videos = _videos(synthetic_dataset, subject)[stem]
        for camera_id, path in videos.items():
            camera = cameras[subject][camera_id]
            labels = d2[camera_id][:, list(J17)]
            radius = ball_radius_px(d3[:, list(J17)], camera)
            capture = cv2.VideoCapture(str(path))
            for frame_index in range(len(labels)):
                ok, frame = capture.read()
                assert ok, f"{path} ends at frame {frame_index}"
                if frame_index % 13 == 0:
                    balls.add_frame(frame, labels[frame_index], radius[frame_index],
                                    (subject, stem, camera_id, frame_index))
            capture.release()
    balls.assert_on_labels()


def test_limb_outlines_are_the_silhouettes_of_capsules(cameras):
    """Random capsules: the projected outline is convex, contains the projected axis, and is as
    wide as the sphere of the same radius at its middle appears (f r / depth on each side)."""
    camera = cameras["S1"]["55011271"]
    rng = np.random.default_rng(7)
    for _ in range(50):
        a = rng.uniform(-800, 800, 3) + (0, 0, 900)
        b = a + rng.normal(0, 250, 3)
        radius = rng.uniform(30, 120)
        rim = render.capsule_outlines(a, b, radius, 0.0, camera)
        outline = geometry.project(rim, camera).astype(np.float32)
        area = cv2.contourArea(outline)
        assert area == pytest.approx(cv2.contourArea(cv2.convexHull(outline)), rel=0.01)
        for point in (a, b, (a + b) / 2):
            centre = tuple(map(float, geometry.project(point, camera)))
            inside = cv2.pointPolygonTest(outline, centre, True)
            depth = geometry.world_to_camera(point, camera)[2]
            # Distance to the rim: the radius in pixels (distortion changes it by a few %).
            assert inside == pytest.approx(camera.K[0, 0] * radius / depth, rel=0.15)


def test_left_and_right_body_parts_have_distinct_colours():
    colours = {part.name: np.array(part.colour_rgb, float) for part in render.BODY_PARTS}
    limbs = [name for name in colours if name.startswith("left_")]
    assert len(limbs) == 6
    for left in limbs:
        right = "right_" + left[len("left_"):]
        assert np.linalg.norm(colours[left] - colours[right]) > 100, left
    distinct = {tuple(c) for name, c in colours.items() if name.startswith(("left_", "right_"))}
    assert len(distinct) == 12
    assert all(min(c) < 200 for c in colours.values()), "a part colour looks like a joint ball"


# --------------------------------------------------------------------------- the camera rig

def test_camera_rig_is_like_the_real_one(synthetic_dataset, cameras, h36m_sample_dir):
    real = h36m_utils.load_cameras(str(h36m_sample_dir / "camera-parameters.json"))
    for subject in ("S1", "S11"):
        for camera_id, camera in cameras[subject].items():
            centre = camera.center
            assert 3800 < np.linalg.norm(centre[:2]) < 6000 and 1400 < centre[2] < 1700
            assert np.linalg.norm(centre - real[subject][camera_id].center) < 800
            to_centre = np.array([0.0, 0.0, 500.0]) - centre
            angle = np.degrees(np.arccos(camera.R[2] @ to_centre / np.linalg.norm(to_centre)))
            assert angle < 4, f"{subject} {camera_id} looks {angle:.1f} deg off the centre"
            np.testing.assert_allclose(camera.R @ camera.R.T, np.eye(3), atol=1e-12)
            assert np.linalg.det(camera.R) == pytest.approx(1.0)
            real_camera = real[subject][camera_id]
            focal_per_width = real_camera.K[0, 0] / 1000
            assert camera.K[0, 0] / camera.width == pytest.approx(focal_per_width, rel=0.01)
            np.testing.assert_allclose(camera.k, real_camera.k, atol=0.04)
            np.testing.assert_allclose(camera.p, real_camera.p, atol=0.012)
        # Extrinsics differ per subject; intrinsics are per camera.
    for camera_id in CAMERA_IDS:
        s1, s11 = cameras["S1"][camera_id], cameras["S11"][camera_id]
        assert np.linalg.norm(s1.center - s11.center) > 5
        np.testing.assert_array_equal(s1.K, s11.K)


# --------------------------------------------------------------------------- determinism

def test_labels_are_deterministic_and_independent_of_other_subjects(synthetic_dataset, tmp_path):
    """S11 generated alone with the same seed: the same labels bit for bit, the same video frames.

    Alone, S11 is the first subject, so it also gets the first subject's quirks (labels cut
    short in its first trial): that trial is compared over the common frames.
    """
    alone = synthetic_h36m.generate_dataset(tmp_path / "alone", subjects=("S11",), frames=40,
                                            size=256, seed=0, progress=False)
    assert _d3_stems(alone, "S11") == _d3_stems(synthetic_dataset, "S11")
    equal_lengths = 0
    for stem in _d3_stems(alone, "S11"):
        d2_suffixes = [f".{c}" for c in CAMERA_IDS]
        for kind, suffixes in (("D3_Positions", [""]), ("D2_Positions", d2_suffixes)):
            for suffix in suffixes:
                name = f"{stem}{suffix}.cdf"
                ours, theirs = (_pose(_labels_dir(dataset, "S11", kind) / name)
                                for dataset in (alone, synthetic_dataset))
                common = min(ours.shape[1], theirs.shape[1])
                assert common >= 30
                np.testing.assert_array_equal(ours[:, :common], theirs[:, :common])
        equal_lengths += ours.shape == theirs.shape
    assert equal_lengths == synthetic_h36m.DEFAULT_TRIALS * len(synthetic_h36m.DEFAULT_ACTIONS) - 1
    ours = json.loads(alone.cameras_path.read_text())
    theirs = json.loads(synthetic_dataset.cameras_path.read_text())
    assert ours["extrinsics"]["S11"] == theirs["extrinsics"]["S11"]
    assert ours["intrinsics"] == theirs["intrinsics"]
    first, second = (cv2.VideoCapture(str(_videos(dataset, "S11")["Walking"]["55011271"]))
                     for dataset in (alone, synthetic_dataset))
    for _ in range(3):
        np.testing.assert_array_equal(first.read()[1], second.read()[1])


def test_another_seed_gives_other_data(synthetic_dataset, tmp_path):
    other = synthetic_h36m.generate_dataset(tmp_path, subjects=("S11",), frames=40, size=64, seed=1,
                                            actions=("Walking",), progress=False)
    ours = _pose(_labels_dir(other, "S11", "D3_Positions") / "Walking.cdf")
    theirs = _pose(_labels_dir(synthetic_dataset, "S11", "D3_Positions") / "Walking.cdf")
    common = min(ours.shape[1], theirs.shape[1])  # alone, S11 gets the short-labels quirk
    assert common >= 30 and np.abs(ours[:, :common] - theirs[:, :common]).max() > 100


@pytest.mark.parametrize("kwargs, message", [
    ({"subjects": ("S12",)}, "S12"),
    ({"actions": ("Dancing",)}, "Dancing"),
    ({"frames": 5}, "frames=5"),
    ({"size": 63}, "size=63"),
    ({"trials": 0}, "trials=0"),
])
def test_bad_arguments_are_refused_with_a_clear_message(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic_h36m.generate_dataset(tmp_path, **kwargs, progress=False)
    assert not list(tmp_path.iterdir()), "nothing is written before the arguments are checked"


# --------------------------------------------------------------------------- command line

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "synthetic.synthetic_h36m", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_command_line_writes_a_set_and_reports(tmp_path):
    result = _cli("--out", str(tmp_path), "--subjects", "S6", "--actions", "Walking",
                  "--trials", "3", "--frames", "16", "--size", "64", "--seed", "3")
    assert result.returncode == 0, result.stderr
    # 3 trials x 4 cameras, less the missing one, and the _ALL recording's 4; 3 x (1 + 4) labels.
    assert "Wrote 15 videos, 15 label files and 12 visibility files" in result.stdout
    cameras_path = tmp_path / "Labels" / "camera-parameters.json"
    dataset = synthetic_h36m.SyntheticDataset(tmp_path, tmp_path / "Data", tmp_path / "Labels",
                                              cameras_path, ("S6",))
    stems = synthetic_h36m.trial_names("S6", "Walking", 3, quirks=True)
    assert _d3_stems(dataset, "S6") == sorted(stems)
    assert all(f"S6 {stem} " in result.stdout for stem in stems)
    videos = _videos(dataset, "S6")
    assert set(videos[stems[-1]]) == set(CAMERA_IDS) - {"54138969"}  # alone, S6 is the last subject
    assert set(videos["Walking_ALL"]) == set(CAMERA_IDS)
    assert set(h36m_utils.load_cameras(str(cameras_path))) == {"S6"}


def test_command_line_help_and_errors():
    result = _cli("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines anywhere
    for flag, default in (("--trials", synthetic_h36m.DEFAULT_TRIALS),
                          ("--frames", synthetic_h36m.DEFAULT_FRAMES),
                          ("--size", synthetic_h36m.DEFAULT_SIZE)):
        assert re.search(rf"{flag} [A-Z]+ [^-\[]*\(default: {default}\)", text), flag
    assert "--seed" in text and "--subjects" in text
    result = _cli("--out", "/nonexistent/never", "--subjects", "S0")
    assert result.returncode == 2 and "S0" in result.stderr


# --------------------------------------------------------------------------- visibility, looks, props

def _visibility(dataset, subject, stem, camera_id):
    path = _labels_dir(dataset, subject, "Visibility") / f"{stem}.{camera_id}.cdf"
    return np.asarray(cdflib.CDF(str(path)).varget("Visible")).reshape(-1, 17)


def test_visibility_labels_say_which_joint_balls_the_video_shows(synthetic_dataset):
    """Where the labels say a joint shows, its white ball is at its 2D label in the decoded frame;
    where they say it is hidden, the pixel there is mostly not white (a limb covers it)."""
    white = {True: [], False: []}
    stem = "SittingDown 2"
    for camera_id in CAMERA_IDS:
        visible = _visibility(synthetic_dataset, "S11", stem, camera_id)
        labels = _pose(_labels_dir(synthetic_dataset, "S11", "D2_Positions") / f"{stem}.{camera_id}.cdf")
        labels = labels.reshape(-1, 32, 2)[:, list(J17)]
        capture = cv2.VideoCapture(str(synthetic_dataset.data_dir / "S11" / "Videos" / f"{stem}.{camera_id}.mp4"))
        for frame in range(len(visible)):  # read in order: seeking an mp4v video can land on another frame
            image = capture.read()[1]
            for joint, (x, y) in enumerate(np.round(labels[frame]).astype(int)):
                white[bool(visible[frame, joint])].append(image[y, x].min() > 200)
    assert 0.1 < len(white[False]) / (len(white[False]) + len(white[True])) < 0.6  # some hidden, most seen
    # Measured 0.90 and 0.31: mp4 blurs some small balls below 200; a hidden joint's pixel is white
    # where another joint's ball covers it.
    assert np.mean(white[True]) > 0.85, np.mean(white[True])
    assert np.mean(white[False]) < 0.4, np.mean(white[False])


def test_props_hide_joints_without_changing_the_motion(tmp_path):
    """The same seed with props: identical 3D labels, more hidden joints; the boxes are in the video."""
    options = dict(subjects=("S11",), frames=20, size=128, seed=0, actions=("Walking", "SittingDown"),
                   progress=False, trials=1, quirks=False)
    plain = synthetic_h36m.generate_dataset(tmp_path / "plain", **options)
    boxed = synthetic_h36m.generate_dataset(tmp_path / "boxed", props=3, **options)
    hidden = {}
    for name, dataset in (("plain", plain), ("boxed", boxed)):
        hidden[name] = np.mean([1 - _visibility(dataset, "S11", stem, camera_id).mean()
                                for stem in ("Walking 1", "SittingDown 1") for camera_id in CAMERA_IDS])
    for stem in ("Walking 1", "SittingDown 1"):
        np.testing.assert_array_equal(_pose(_labels_dir(plain, "S11", "D3_Positions") / f"{stem}.cdf"),
                                      _pose(_labels_dir(boxed, "S11", "D3_Positions") / f"{stem}.cdf"))
    assert hidden["boxed"] > hidden["plain"] + 0.05, hidden


def test_look_alike_sides_and_no_balls():
    """alike_sides paints each right part as its left twin; without balls no white is drawn."""
    colours = dict(zip([part.name for part in render.BODY_PARTS], render._part_colours(render.Look(alike_sides=True))))
    for name, colour in colours.items():
        if name.startswith("right_"):
            assert colour == colours[name.replace("right_", "left_")]
    assert colours["left_thigh"] != colours["left_shin"]
    cameras = synthetic_h36m.rigs.make_cameras("S1", synthetic_h36m.rigs.make_intrinsics(160, 0), 0)
    camera = cameras[CAMERA_IDS[0]]
    poses = motion.keep_in_view(motion.animate("Walking", motion.rest_offsets(), 3, np.random.default_rng(0)), cameras.values())
    background = np.zeros((camera.height, camera.width, 3), np.uint8)
    with_balls = render.draw_frame(background, render.body_draw_list(poses, camera), 0)
    without = render.draw_frame(background, render.body_draw_list(poses, camera, render.Look(joint_balls=False)), 0)
    assert (with_balls.min(axis=-1) > 250).sum() > 20
    assert (without.min(axis=-1) > 250).sum() == 0
