"""h36m_utils: camera model against the real Human3.6M sample, CDF reading, the index, metrics."""
import json

import cv2
import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

import h36m_utils as hu
from common import geometry
from common import metrics
from common import skeleton
from media_files import write_pose_cdf, write_video

S1_CAM1_ANGLES = (-1.38382776045614, -3.16734304390158, 0.413636308164621)
S1_CAM1_CENTRE = (1841.10702774543, 4955.28462344526, 1563.4453958977)


# --------------------------------------------------------------------------- cameras

@pytest.fixture(scope="module")
def real_cameras(h36m_sample_dir):
    return hu.load_cameras(str(h36m_sample_dir / "camera-parameters.json"))


def _sample_frames(sample_dir):
    """(subject, camera id, world mm (17, 3), pixels (17, 2), camera-frame mm (17, 3)) per frame."""
    coco = json.loads((sample_dir / "h36m_coco.json").read_text())
    body = np.load(sample_dir / "test_h36m_body3d.npz")
    for image, annotation, part, cam_points in zip(coco["images"], coco["annotations"],
                                                    body["part"], body["S"]):
        subject = image["file_name"].split("_")[0]
        camera_id = image["file_name"].split(".")[1].split("_")[0]
        world = np.array(annotation["keypoints_3d"]).reshape(17, 4)[:, :3] * 1000
        pixels = np.array(annotation["keypoints"]).reshape(17, 3)[:, :2]
        assert np.allclose(pixels, part[:, :2], atol=1e-3)
        yield subject, camera_id, world, pixels, cam_points[:, :3] * 1000


def test_project_reproduces_real_2d_labels(h36m_sample_dir, real_cameras):
    frames = list(_sample_frames(h36m_sample_dir))
    assert len(frames) == 4
    for subject, camera_id, world, pixels, _ in frames:
        camera = real_cameras[subject][camera_id]
        assert np.abs(geometry.project(world, camera) - pixels).max() < 0.01
        # Distortion matters at this accuracy: the pinhole projection is off by over a pixel.
        assert np.abs(geometry.project(world, camera, distort=False) - pixels).max() > 1.0


def test_camera_frame_points_project_to_real_labels(h36m_sample_dir, real_cameras):
    for subject, camera_id, world, pixels, cam_points in _sample_frames(h36m_sample_dir):
        camera = real_cameras[subject][camera_id]
        assert np.abs(geometry.world_to_camera(world, camera) - cam_points).max() < 0.5
        identity = geometry.Camera(np.eye(3), np.zeros(3), camera.K, camera.k, camera.p,
                             camera.width, camera.height, camera.id)
        assert np.abs(geometry.project(cam_points, identity) - pixels).max() < 0.01


def test_undistort_points_inverts_the_official_distortion(real_cameras):
    rng = np.random.default_rng()
    for camera in real_cameras["S5"].values():
        world = camera.center + rng.normal(0, 1, (50, 3)) * 300
        world = world + (0 - camera.center) * 0.9  # points near the capture volume, in front
        pinhole = geometry.project(world, camera, distort=False)
        recovered = geometry.undistort_points(geometry.project(world, camera), camera)
        assert np.abs(recovered - pinhole).max() < 1e-3


def metadata_w0(published: dict) -> np.ndarray:
    """The official metadata.xml's 300 numbers <w0> from the published JSON: per camera c and subject s
    (0-based, in CAMERA_IDS and SUBJECTS order) 3 angles and the centre (mm) at 6 (11 c + s); per camera
    fx, fy, cx, cy, k1, k2, k3, p1, p2 at 264 + 9 c (the layout public readers of the file use). The
    angles are those of ``R = Rx(a) Ry(b) Rz(c)``, scipy's intrinsic "XYZ" Euler angles."""
    w0 = np.zeros(300)
    for c, camera_id in enumerate(hu.CAMERA_IDS):
        for s, subject in enumerate(hu.SUBJECTS):
            R = np.array(published["extrinsics"][subject][camera_id]["R"])
            t = np.array(published["extrinsics"][subject][camera_id]["t"]).reshape(3)
            w0[6 * (11 * c + s):6 * (11 * c + s) + 6] = [*Rotation.from_matrix(R).as_euler("XYZ"), *(-R.T @ t)]
        intrinsic = published["intrinsics"][camera_id]
        K, (k1, k2, p1, p2, k3) = np.array(intrinsic["calibration_matrix"]), intrinsic["distortion"]
        w0[264 + 9 * c:273 + 9 * c] = [K[0, 0], K[1, 1], K[0, 2], K[1, 2], k1, k2, k3, p1, p2]
    return w0


def test_metadata_xml_matches_published_json(tmp_path, h36m_sample_dir, real_cameras):
    w0 = metadata_w0(json.loads((h36m_sample_dir / "camera-parameters.json").read_text()))
    # Subject 1, camera 1 as the official file gives it, so the angle convention is checked on
    # real numbers, not only against scipy.
    w0[0:6] = [*S1_CAM1_ANGLES, *S1_CAM1_CENTRE]
    xml_path = tmp_path / "metadata.xml"
    xml_path.write_text("<metadata><w0>[" + " ".join(repr(float(v)) for v in w0) + "]</w0></metadata>")
    from_xml = hu.load_cameras(str(xml_path))
    both = [(s, c) for s in real_cameras for c in real_cameras[s] if c in from_xml.get(s, {})]
    assert len(both) == len(hu.SUBJECTS) * len(hu.CAMERA_IDS)
    for subject, camera_id in both:
        camera, reference = from_xml[subject][camera_id], real_cameras[subject][camera_id]
        assert np.abs(camera.R - reference.R).max() < 1e-9, (subject, camera_id)
        assert np.abs(camera.t - reference.t).max() < 1e-9, (subject, camera_id)
        assert np.allclose(camera.K, reference.K) and np.allclose(camera.dist, reference.dist), (subject, camera_id)
        assert (camera.width, camera.height) == (reference.width, reference.height), (subject, camera_id)


def test_image_sizes_follow_the_official_rule():
    assert hu.image_size("S1", "54138969") == (1000, 1002)
    assert hu.image_size("S1", "60457274") == (1000, 1002)
    assert hu.image_size("S1", "55011271") == (1000, 1000)
    for subject in ("S4", "S7", "S10"):
        assert {hu.image_size(subject, c) for c in hu.CAMERA_IDS} == {(1000, 1002)}


def test_load_cameras_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        hu.load_cameras(str(tmp_path / "nowhere.json"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cameras": []}))
    with pytest.raises(ValueError, match="bad.json"):
        hu.load_cameras(str(bad))


def test_check_cameras_names_missing_subject(real_cameras):
    partial = {s: cams for s, cams in real_cameras.items() if s != "S11"}
    hu.check_cameras(partial, ["S1", "S9"], "cams.json")
    with pytest.raises(ValueError, match="cams.json has no calibration for S11"):
        hu.check_cameras(partial, ["S1", "S11"], "cams.json")


def test_crop_matrix_moves_projection_and_warp_alike(real_cameras):
    camera = real_cameras["S7"]["55011271"]
    crop = geometry.crop_matrix(0.25, 300.0, 210.0)
    world = np.array([[200.0, -100.0, 900.0], [-300.0, 250.0, 1500.0]])
    cropped = geometry.Camera(camera.R, camera.t, crop @ camera.K, camera.k, camera.p, 256, 256, camera.id)
    full = geometry.project(world, camera)
    assert np.allclose(geometry.project(world, cropped), 0.25 * (full - [300.0, 210.0]))
    # The pinhole P of the crop projects like the cropped camera without distortion.
    P = geometry.projection_matrix(camera, crop)
    homogeneous = np.concatenate([world, np.ones((2, 1))], axis=1) @ P.T
    assert np.allclose(homogeneous[:, :2] / homogeneous[:, 2:], geometry.project(world, cropped, distort=False))
    # cv2.warpAffine with the same matrix puts a pixel where the matrix says (pixel centres at integers).
    image = np.zeros((1000, 1000), np.uint8)
    image[400:404, 500:504] = 255  # a 4x4 block centred on pixel (501.5, 401.5)
    warped = cv2.warpAffine(image, geometry.crop_matrix(2.0, 420.0, 330.0)[:2], (256, 256))
    ys, xs = np.nonzero(warped)
    weights = warped[ys, xs].astype(float)
    centre = [np.average(xs, weights=weights), np.average(ys, weights=weights)]
    assert np.allclose(centre, 2.0 * (np.array([501.5, 401.5]) - [420.0, 330.0]), atol=0.05)


def test_skeleton_tables_are_consistent():
    assert len(skeleton.JOINT_NAMES_32) == len(skeleton.PARENTS_32) == 32
    assert skeleton.JOINT_NAMES_17[0] == "pelvis" and len(skeleton.J17) == 17
    # The 17-joint parents are the 32-joint ancestry restricted to the kept joints, except that
    # shoulders hang from the thorax (their clavicle joints sit at the thorax in the recordings).
    thorax = skeleton.JOINT_NAMES_17.index("thorax")
    for child, parent in enumerate(skeleton.PARENTS_17[1:], start=1):
        ancestor = skeleton.PARENTS_32[skeleton.J17[child]]
        while ancestor not in skeleton.J17:
            ancestor = skeleton.PARENTS_32[ancestor]
        if skeleton.JOINT_NAMES_17[child].endswith("shoulder"):
            assert parent == thorax
        else:
            assert skeleton.J17.index(ancestor) == parent
    for left, right in skeleton.LEFT_RIGHT_17:
        assert skeleton.JOINT_NAMES_17[left].replace("left", "right") == skeleton.JOINT_NAMES_17[right]
    grouped = [name for names in skeleton.JOINT_GROUPS_17.values() for name in names]
    assert sorted(grouped) == sorted(skeleton.JOINT_NAMES_17)  # every joint in exactly one group


# --------------------------------------------------------------------------- CDF labels

def test_read_poses_round_trips_real_cdf(tmp_path):
    rng = np.random.default_rng()
    d3 = rng.normal(0, 500, (1, 7, 96))
    d2 = rng.uniform(0, 1000, (1, 7, 64))
    write_pose_cdf(tmp_path / "d3.cdf", d3)
    write_pose_cdf(tmp_path / "d2.cdf", d2)
    assert np.allclose(hu.read_poses(str(tmp_path / "d3.cdf")), d3.reshape(7, 32, 3))
    assert np.allclose(hu.read_poses(str(tmp_path / "d2.cdf")), d2.reshape(7, 32, 2))


def test_read_poses_rejects_bad_files(tmp_path):
    not_cdf = tmp_path / "text.cdf"
    not_cdf.write_text("this is not a CDF")
    with pytest.raises(ValueError, match="text.cdf: not a readable CDF"):
        hu.read_poses(str(not_cdf))
    write_pose_cdf(tmp_path / "other.cdf", np.zeros((1, 3, 96)), variable="Angles")
    with pytest.raises(ValueError, match="other.cdf: CDF has no variable 'Pose'"):
        hu.read_poses(str(tmp_path / "other.cdf"))
    write_pose_cdf(tmp_path / "wide.cdf", np.zeros((1, 3, 78)))
    with pytest.raises(ValueError, match=r"wide.cdf: variable 'Pose' has shape \(3, 78\)"):
        hu.read_poses(str(tmp_path / "wide.cdf"))


# --------------------------------------------------------------------------- index

def write_sequence(data_root, labels_root, subject, stem, frames, cameras=hu.CAMERA_IDS,
                   label_frames=None):
    """Videos under data_root/<subject>/Videos, labels under labels_root/<subject>/MyPoseFeatures."""
    label_frames = label_frames or min(frames.values())
    for camera_id in cameras:
        write_video(data_root / subject / "Videos" / f"{stem}.{camera_id}.mp4", frames[camera_id])
        write_pose_cdf(labels_root / subject / "MyPoseFeatures" / "D2_Positions" /
                       f"{stem}.{camera_id}.cdf", np.zeros((1, label_frames, 64)))
    write_pose_cdf(labels_root / subject / "MyPoseFeatures" / "D3_Positions" / f"{stem}.cdf",
                   np.zeros((1, label_frames, 96)))


@pytest.fixture
def quirky_tree(tmp_path):
    """A small Human3.6M tree in the archives' nested layout with every quirk of the real set."""
    data, labels = tmp_path / "Data", tmp_path / "Labels"
    same = {c: 6 for c in hu.CAMERA_IDS}
    write_sequence(data / "Videos_S1", labels / "Poses_S1", "S1", "Directions 1", same)
    write_sequence(data / "Videos_S1", labels / "Poses_S1", "S1", "TakingPhoto", same)
    write_sequence(data / "Videos_S1", labels / "Poses_S1", "S1", "Walking",
                   {**same, "58860488": 11}, label_frames=5)
    write_video(data / "Videos_S1" / "S1" / "Videos" / "Directions_ALL.54138969.mp4", 4)
    # S11 'Directions 1' is whole; 'Directions' camera 54138969 is there, opens and has frames, but
    # is damaged in the real release.
    write_sequence(data, labels, "S11", "Directions 1", same)
    write_sequence(data, labels, "S11", "Directions", same)
    write_sequence(data, labels, "S11", "Phoning", same, cameras=hu.CAMERA_IDS[1:])  # a file not downloaded
    write_sequence(data, labels, "S11", "SittingDown 2", same)
    write_sequence(data, labels, "S9", "Greeting", same)
    write_sequence(data, labels, "S9", "Waiting", same)
    return data, labels


def test_find_sequences_handles_and_reports_every_quirk(quirky_tree):
    data, labels = quirky_tree
    sequences, report = hu.find_sequences(str(data), str(labels), ["S1", "S5", "S9", "S11"])
    found = {(s.subject, s.name): s for s in sequences}
    assert set(found) == {("S1", "Directions 1"), ("S1", "TakingPhoto"), ("S1", "Walking"),
                          ("S11", "Directions 1"), ("S11", "SittingDown 2"), ("S9", "Waiting")}
    assert found[("S1", "TakingPhoto")].action == "Photo"
    assert found[("S11", "SittingDown 2")].action == "SittingDown"
    assert found[("S1", "Walking")].num_frames == 5
    assert list(found[("S1", "Directions 1")].videos) == list(hu.CAMERA_IDS)
    reasons = {(e.kind, e.subject, e.sequence): e.reason for e in report.entries}
    assert "'_ALL'" in reasons[("skipped", "S1", "Directions_ALL")]
    assert "missing video of camera 54138969" in reasons[("unusable", "S11", "Phoning")]
    assert "camera 54138969 is damaged in the official release" in reasons[("skipped", "S11", "Directions")]
    assert "S9_training_vids.txt" in reasons[("skipped", "S9", "Greeting")]
    assert "video 58860488 11" in reasons[("trimmed", "S1", "Walking")]
    assert ("renamed", "S1", "TakingPhoto") in reasons
    assert ("missing", "S5", "-") in reasons
    assert report.num_sequences == 6 and report.num_frames == 6 * 5 + 5
    printed = str(report)
    assert "skipped (3)" in printed and "unusable (1)" in printed and "Directions_ALL" in printed
    # The holes (a file not downloaded, a subject not there) apart from what is left out by design.
    assert {(e.kind, e.subject, e.sequence) for e in report.problems()} == {("unusable", "S11", "Phoning"),
                                                                           ("missing", "S5", "-")}


def test_find_sequences_without_s9_list_keeps_all_s9(quirky_tree):
    data, labels = quirky_tree
    sequences, _ = hu.find_sequences(str(data), str(labels), ["S9"], s9_list=None)
    assert sorted(s.name for s in sequences) == ["Greeting", "Waiting"]


def test_find_sequences_action_filter_is_reported(quirky_tree):
    data, labels = quirky_tree
    sequences, report = hu.find_sequences(str(data), str(labels), ["S1"], actions=["Photo"])
    assert [s.name for s in sequences] == ["TakingPhoto"]
    assert any("not among the requested" in e.reason for e in report.of_kind("skipped"))


def test_find_sequences_reports_unreadable_video(quirky_tree):
    data, labels = quirky_tree
    (data / "S11" / "Videos" / "SittingDown 2.55011271.mp4").write_bytes(b"\x00" * 64)
    sequences, report = hu.find_sequences(str(data), str(labels), ["S11"])
    assert [s.name for s in sequences] == ["Directions 1"]
    assert any("unreadable video" in e.reason and "SittingDown 2.55011271.mp4" in e.reason
               for e in report.of_kind("unusable"))


def test_find_sequences_missing_folders_say_what_to_do(tmp_path):
    (tmp_path / "Data").mkdir()
    with pytest.raises(FileNotFoundError, match="labels folder .*Labels does not exist.*--mode demo"):
        hu.find_sequences(str(tmp_path / "Data"), str(tmp_path / "Labels"), ["S1"])


def test_s9_list_excludes_exactly_the_wrongly_labelled_videos():
    names = hu.read_s9_list(hu.DEFAULT_S9_LIST)
    stems = {name.rsplit(".", 2)[0] for name in names}
    assert not stems & {"Greeting", "SittingDown 1", "Waiting 1"}
    assert not any("_ALL" in stem for stem in stems)
    assert {"Greeting 1", "SittingDown", "Waiting", "Directions 1"} <= stems
    for stem in stems:
        assert {f"{stem}.{c}.mp4" for c in hu.CAMERA_IDS} <= names


# --------------------------------------------------------------------------- metrics

def test_mpjpe_and_relative_on_known_offsets():
    rng = np.random.default_rng()
    gt = rng.normal(0, 400, (5, 17, 3))
    direction = rng.normal(size=(5, 17, 3))
    offsets = 10 * direction / np.linalg.norm(direction, axis=-1, keepdims=True)
    assert np.allclose(metrics.mpjpe(gt + offsets, gt), 10)
    shifted = gt + np.array([100.0, -50.0, 20.0])
    assert np.allclose(metrics.mpjpe(shifted, gt), np.linalg.norm([100, -50, 20]))
    assert np.allclose(metrics.mpjpe_relative(shifted, gt), 0, atol=1e-9)


def test_p_mpjpe_removes_similarity_and_matches_scipy_reference():
    rng = np.random.default_rng()
    gt = rng.normal(0, 400, (4, 17, 3))
    rotation = Rotation.random(4).as_matrix()
    moved = 1.3 * np.einsum("nij,nkj->nki", rotation, gt) + rng.normal(0, 500, (4, 1, 3))
    assert np.allclose(metrics.p_mpjpe(moved, gt), 0, atol=1e-6)
    noisy = gt + rng.normal(0, 30, gt.shape)
    for pred, target, value in zip(noisy, gt, metrics.p_mpjpe(noisy, gt)):
        x, y = pred - pred.mean(0), target - target.mean(0)
        R, trace = orthogonal_procrustes(x, y)
        aligned = (trace / (x ** 2).sum()) * x @ R + target.mean(0)
        assert np.isclose(value, np.linalg.norm(aligned - target, axis=-1).mean())
        # Procrustes minimises the squared error over every similarity, translation-only included
        # (mean Euclidean errors, root-relative or P-MPJPE, carry no such order).
        rms = lambda a, b: np.sqrt(((a - b) ** 2).sum(-1).mean())
        assert rms(aligned, target) <= rms(x + target.mean(0), target) + 1e-9


def test_error_2d_and_per_action_summary():
    pred = np.zeros((3, 4, 17, 2))
    pred[..., 0] = 3.0
    pred[..., 1] = 4.0
    assert np.allclose(metrics.error_2d(pred, np.zeros_like(pred)), 5.0)
    actions = ["Walking", "Walking", "Walking", "Eating"]
    per_action, averages = metrics.summarize_per_action(actions, {"mpjpe": [10, 20, 30, 100]})
    assert per_action == {"Eating": {"mpjpe": 100.0}, "Walking": {"mpjpe": 20.0}}
    assert averages == {"mpjpe": 60.0}  # mean of actions, not of frames (which would be 40)


def test_last_trial_of_every_action_is_held_out_for_validation():
    def sequence(subject, name):
        return hu.Sequence(subject, hu.canonical_action(name), name, {}, "", {}, 10)
    names = ["Directions 1", "Directions 2", "SittingDown", "SittingDown 2", "TakingPhoto 1", "Walking 1"]
    sequences = [sequence(s, n) for s in ("S1", "S8") for n in names]
    kept, held_out = hu.hold_out_last_trials(sequences, ["S8"])
    assert [(s.subject, s.name) for s in held_out] == [("S8", n) for n in
                                                       ("Directions 2", "SittingDown 2", "TakingPhoto 1", "Walking 1")]
    assert len(kept) + len(held_out) == len(sequences) and not set(map(id, kept)) & set(map(id, held_out))
    assert all(s.subject == "S1" for s in kept[:len(names)]) and hu.hold_out_last_trials(sequences, [])[1] == []


def test_a_run_needing_a_missing_or_unreadable_sequence_fails_naming_each_unless_partial_is_allowed(quirky_tree):
    """Guards "complete or named": every hole of every report is in the error with the fixes; what
    is left out by design (the S9 list, the damaged S11 video, _ALL) is no hole; --allow-partial
    lets the run go on, and the block printed up front still names what was left out and why."""
    data, labels = quirky_tree
    (data / "S11" / "Videos" / "SittingDown 2.55011271.mp4").write_bytes(b"\x00" * 64)
    _, report = hu.find_sequences(str(data), str(labels), ["S9", "S11"])
    _, other = hu.find_sequences(str(data), str(labels), ["S5"])
    with pytest.raises(hu.IncompleteDataError) as error:
        hu.require_complete([report, other], "the test", allow_partial=False)
    message = str(error.value)
    for named in ("S11 Phoning: missing video of camera 54138969", "SittingDown 2.55011271.mp4", "S5 -",
                  "--allow-partial", "--test-subjects"):
        assert named in message, named
    assert "Greeting" not in message and "S11 Directions:" not in message  # by design, not holes
    hu.require_complete([report, other], "the test", allow_partial=True)
    _, whole = hu.find_sequences(str(data), str(labels), ["S9"])
    hu.require_complete([whole], "the test", allow_partial=False)  # S9: only its listed trial, complete
    sequences, _ = hu.find_sequences(str(data), str(labels), ["S11"])
    block = hu.describe_sequences({"test": sequences}, [report, other])
    assert "test: 1 sequences" in block and "S11: Directions 1" in block
    assert "left out, files missing or unreadable (2):" in block and "left out, subject not found (1):" in block
    assert "left out by design (2):" in block and "S9 Greeting: not in S9_training_vids.txt" in block
