"""Calibration files -> cameras: every format read back exactly, the real files of other rigs,
OpenCV's lens model against cv2.projectPoints, the units trap and the clear errors."""
import dataclasses
import json
import re
import tomllib

import cv2
import numpy as np
import pytest

from rig import calibration
import h36m_utils
from common import geometry
from synthetic import rigs
from synthetic import synthetic_rig
import real_recording

EASYMOCAP_HEIGHT_1_2_M = "12"  # the one low camera of the EasyMocap sample


@pytest.fixture(scope="module")
def rig():
    """Five cameras unlike Human3.6M's: OpenCV's lens, 480 x 360, own names and world."""
    return synthetic_rig.make_rig(5, seed=3, width=480, height=360)


def assert_same_cameras(loaded, expected):
    assert [c.id for c in loaded] == [c.id for c in expected]
    for a, b in zip(loaded, expected):
        assert (a.width, a.height, a.distortion_model) == (b.width, b.height, b.distortion_model), a.id
        for field in ("R", "t", "K", "k", "p"):
            np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=0, atol=1e-9,
                                       err_msg=f"camera {a.id} {field}")


def points_in_front(cameras, count=200, seed=0):
    """(count, 3) world mm around where the cameras look, 0 to 2 m above the floor."""
    rng = np.random.default_rng(seed)
    centre = synthetic_rig.floor_centre(cameras)
    return centre + np.column_stack([rng.uniform(-1200, 1200, (count, 2)), rng.uniform(0, 2000, count)])


def cv2_projection(points_mm, rotation_vector, translation_mm, K, dist):
    uv, _ = cv2.projectPoints(points_mm, np.asarray(rotation_vector, np.float64),
                              np.asarray(translation_mm, np.float64), np.asarray(K, np.float64),
                              np.asarray(dist, np.float64))
    return uv[:, 0]


# --------------------------------------------------------------------------- every format

def test_a_rig_written_in_every_format_reads_back_as_its_json(rig, tmp_path):
    calibration.write_json(rig, tmp_path / "rig.json")
    calibration.write_toml(rig, tmp_path / "rig.toml")
    calibration.write_easymocap(rig, tmp_path / "easymocap")
    reference = calibration.load_calibration(tmp_path / "rig.json")
    assert (reference.format, reference.unit, reference.notes) == ("json", "mm", ())
    assert_same_cameras(reference.cameras, rig)

    toml = calibration.load_calibration(tmp_path / "rig.toml")
    assert (toml.format, toml.unit, toml.notes) == ("toml", "m", ())
    assert_same_cameras(toml.cameras, reference.cameras)
    sizes = {camera.id: (camera.width, camera.height) for camera in rig}
    folder = tmp_path / "easymocap"
    for path in (folder, folder / "intri.yml", folder / "extri.yml"):
        easymocap = calibration.load_calibration(path)
        assert (easymocap.format, easymocap.unit, easymocap.notes) == ("easymocap", "m", ())
        assert all(camera.width == camera.height == 0 for camera in easymocap.cameras)  # the format has none
        assert_same_cameras(calibration.with_image_sizes(easymocap, sizes).cameras, reference.cameras)


def test_other_units_read_back_when_stated(rig, tmp_path):
    calibration.write_toml(rig, tmp_path / "rig.toml", unit="cm")
    calibration.write_easymocap(rig, tmp_path / "easymocap", unit="mm")
    assert_same_cameras(calibration.load_calibration(tmp_path / "rig.toml", units="cm").cameras, rig)
    easymocap = calibration.load_calibration(tmp_path / "easymocap", units="mm")
    assert easymocap.unit == "mm"
    sizes = {camera.id: (camera.width, camera.height) for camera in rig}
    assert_same_cameras(calibration.with_image_sizes(easymocap, sizes).cameras, rig)


def test_opencv_lens_model_is_cv2_projectpoints(rig):
    points = points_in_front(rig)
    for camera in rig:
        expected = cv2_projection(points, cv2.Rodrigues(camera.R)[0], camera.t, camera.K,
                                  calibration.opencv_distortion(camera))
        np.testing.assert_allclose(geometry.project(points, camera), expected, rtol=0, atol=1e-6)
        # Human3.6M's formula with the same numbers is another lens, 10^4 times farther off.
        as_h36m = geometry.project(points, dataclasses.replace(camera, distortion_model="h36m"))
        assert np.abs(as_h36m - expected).max() > 0.01


# --------------------------------------------------------------------------- the real files

def test_real_pose2sim_file_loads_in_metres_and_projects_as_cv2(calibration_samples_dir):
    path = calibration_samples_dir / "pose2sim" / "Calib.toml"
    rig = calibration.load_calibration(path)
    assert rig.names == ("cam_01", "cam_02", "cam_03", "cam_04")
    assert (rig.format, rig.unit, rig.notes) == ("toml", "m", ())
    assert all((c.width, c.height, c.distortion_model) == (1088, 1920, "opencv") for c in rig.cameras)
    heights = np.array([camera.center[2] for camera in rig.cameras])
    # z is up; the README's "1.7 to 2.1 m", rounded: 1.691, 1.881, 1.897, 2.088 m
    assert ((1650 < heights) & (heights < 2150)).all(), heights
    raw = tomllib.loads(path.read_text())
    points = points_in_front(rig.cameras)
    worst = 0.0
    for camera in rig.cameras:
        table = raw[camera.id]
        np.testing.assert_array_equal(camera.K, table["matrix"])
        expected = cv2_projection(points, table["rotation"], np.multiply(table["translation"], 1000),
                                  table["matrix"], table["distortions"])
        in_view = ((expected >= 0) & (expected < [1088, 1920])).all(axis=1)
        assert in_view.sum() > 50, camera.id
        worst = max(worst, np.abs(geometry.project(points, camera) - expected).max())
    assert worst < 1e-6, f"{worst:.2e} px from cv2.projectPoints"


def test_real_easymocap_pair_loads_the_cameras_of_both_files(calibration_samples_dir):
    folder = calibration_samples_dir / "easymocap"
    rig = calibration.load_calibration(folder)
    assert rig.names == ("11", "12", "13", "15", "17", "19", "25", "27", "31", "7", "9")
    assert rig.notes == ("camera(s) 1, 2 have intrinsics but are not in extri.yml: left out",)
    heights = {camera.id: camera.center[2] for camera in rig.cameras}
    assert 1150 < heights.pop(EASYMOCAP_HEIGHT_1_2_M) < 1300
    assert all(2200 < height < 2400 for height in heights.values()), heights
    camera = rig.cameras[0]  # the file's numbers, verbatim: K_11, dist_11, T_11 (metres)
    assert camera.K[0, 0] == 1605.067049 and camera.K[1, 2] == 533.332415
    np.testing.assert_array_equal(camera.k, [-0.003509, -0.546545, 0.0])
    np.testing.assert_array_equal(camera.p, [-0.002931, 0.006635])
    np.testing.assert_allclose(camera.t, [327.633, 1096.058, 3260.243], rtol=1e-12)

    intri = cv2.FileStorage(str(folder / "intri.yml"), cv2.FILE_STORAGE_READ)
    extri = cv2.FileStorage(str(folder / "extri.yml"), cv2.FILE_STORAGE_READ)
    points = points_in_front(rig.cameras)
    worst_rotation = worst_px = 0.0
    for camera in rig.cameras:
        name = camera.id
        rotation_vector, rotation = extri.getNode(f"R_{name}").mat(), extri.getNode(f"Rot_{name}").mat()
        worst_rotation = max(worst_rotation, np.abs(cv2.Rodrigues(rotation_vector)[0] - rotation).max())
        expected = cv2_projection(points, rotation_vector, extri.getNode(f"T_{name}").mat() * 1000,
                                  intri.getNode(f"K_{name}").mat(), intri.getNode(f"dist_{name}").mat())
        worst_px = max(worst_px, np.abs(geometry.project(points, camera) - expected).max())
    assert worst_rotation < 1e-5, "R_ and Rot_ of the sample should agree"
    assert worst_px < 1e-6, f"{worst_px:.2e} px from cv2.projectPoints"


# --------------------------------------------------------------------------- units

def test_a_calibration_read_in_the_wrong_unit_is_an_error_naming_the_flag(calibration_samples_dir, rig,
                                                                          tmp_path):
    path = calibration_samples_dir / "pose2sim" / "Calib.toml"
    for wrong in ("mm", "cm"):
        with pytest.raises(ValueError, match=r"--calibration-units m \(") as error:
            calibration.load_calibration(path, units=wrong)
        assert str(path) in str(error.value) and calibration.UNIT_NAMES[wrong] in str(error.value)
    calibration.write_json(rig, tmp_path / "rig.json")
    with pytest.raises(ValueError, match=r"read in metres .*--calibration-units mm"):
        calibration.load_calibration(tmp_path / "rig.json", units="m")
    calibration.write_toml(rig, tmp_path / "rig.toml", unit="cm")  # the default for TOML is m
    with pytest.raises(ValueError, match=r"--calibration-units cm"):
        calibration.load_calibration(tmp_path / "rig.toml")
    with pytest.raises(ValueError, match="Unknown calibration unit 'inch'"):
        calibration.load_calibration(tmp_path / "rig.toml", units="inch")


# --------------------------------------------------------------------------- what is refused

def test_fisheye_and_unsupported_lens_models_are_clear_errors(rig, tmp_path):
    calibration.write_toml(rig, tmp_path / "rig.toml")
    text = (tmp_path / "rig.toml").read_text()
    fisheye = tmp_path / "fisheye.toml"
    fisheye.write_text(text.replace("fisheye = false", "fisheye = true", 1))
    with pytest.raises(ValueError, match=r"fisheye.toml, camera \[cam_a\] is a fisheye camera"):
        calibration.load_calibration(fisheye)

    def with_distortions(extra):
        path = tmp_path / "extra.toml"
        path.write_text(re.sub(r"(distortions = \[[^\]]*)\]", rf"\1, {extra} ]", text, count=1))
        return path
    rational_zero = calibration.load_calibration(with_distortions("0.0, 0.0, 0.0"))  # 8 coefficients
    assert_same_cameras(rational_zero.cameras, calibration.load_calibration(tmp_path / "rig.toml").cameras)
    with pytest.raises(ValueError, match=r"beyond k3 are not zero \(\[0.0, 0.1, 0.0\]\)"):
        calibration.load_calibration(with_distortions("0.0, 0.1, 0.0"))
    with pytest.raises(ValueError, match="6 distortion coefficients"):
        calibration.load_calibration(with_distortions("0.0"))


def test_two_cameras_of_one_name_are_an_error(rig, tmp_path):
    calibration.write_toml(rig, tmp_path / "rig.toml")
    text = (tmp_path / "rig.toml").read_text().replace('name = "cam_c"', 'name = "cam_a"')
    (tmp_path / "rig.toml").write_text(text)
    with pytest.raises(ValueError, match="rig.toml names several cameras cam_a: give each camera its own name"):
        calibration.load_calibration(tmp_path / "rig.toml")


def test_unknown_paths_are_errors_naming_the_file_and_the_formats(tmp_path):
    other = tmp_path / "cameras.txt"
    other.write_text("fx = 1000\n")
    with pytest.raises(ValueError, match=r"cameras.txt: unknown format \(\.txt\).*toml.*intri.yml.*json"):
        calibration.load_calibration(other)
    with pytest.raises(ValueError, match="does not hold EasyMocap's intri.yml"):
        calibration.load_calibration(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found: .*missing.toml"):
        calibration.load_calibration(tmp_path / "missing.toml")
    (tmp_path / "intri.yml").write_text("%YAML:1.0\n---\nnames: []\n")
    with pytest.raises(FileNotFoundError, match="half of an EasyMocap calibration: .*extri.yml is missing"):
        calibration.load_calibration(tmp_path / "intri.yml")
    (tmp_path / "broken.toml").write_text("[cam_1\n")
    with pytest.raises(ValueError, match="broken.toml is not valid TOML"):
        calibration.load_calibration(tmp_path / "broken.toml")
    (tmp_path / "partial.toml").write_text("[cam_1]\nname = 'a'\nsize = [10, 10]\n")
    with pytest.raises(ValueError, match=r"partial.toml, camera \[cam_1\] has no matrix, distortions"):
        calibration.load_calibration(tmp_path / "partial.toml")


def test_a_json_of_several_subjects_needs_one_picked(rig, tmp_path):
    path = tmp_path / "cameras.json"
    moved = [dataclasses.replace(camera, t=camera.t + 100.0) for camera in rig]
    path.write_text(json.dumps(h36m_utils.cameras_json({"S1": {c.id: c for c in rig},
                                                        "S5": {c.id: c for c in moved}})))
    with pytest.raises(ValueError, match=r"holds 2 rigs \(subjects S1, S5\).*subject="):
        calibration.load_calibration(path)
    assert_same_cameras(calibration.load_calibration(path, subject="S5").cameras, moved)
    with pytest.raises(ValueError, match="has no subject 'S7'; it holds S1, S5"):
        calibration.load_calibration(path, subject="S7")


def test_a_json_camera_without_image_size_takes_it_from_the_video(rig, tmp_path):
    calibration.write_json(rig, tmp_path / "rig.json")
    content = json.loads((tmp_path / "rig.json").read_text())
    for intrinsic in content["intrinsics"].values():
        del intrinsic["image_size"]
    (tmp_path / "rig.json").write_text(json.dumps(content))
    loaded = calibration.load_calibration(tmp_path / "rig.json")
    assert all(camera.width == camera.height == 0 for camera in loaded.cameras)


def write_extri(path, rotations):
    """An extri.yml holding, per camera, the given R_ / Rot_ entries and T_ = (index, 0, 3) m."""
    storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    storage.startWriteStruct("names", cv2.FileNode_SEQ)
    for name in rotations:
        storage.write("", name)
    storage.endWriteStruct()
    for index, (name, entries) in enumerate(rotations.items()):
        for key, value in entries.items():
            storage.write(f"{key}_{name}", value)
        storage.write(f"T_{name}", np.array([[float(index)], [0.0], [3.0]]))
    storage.release()


def test_easymocap_rotations_as_vector_or_matrix_must_agree(rig, tmp_path):
    calibration.write_easymocap(rig[:2], tmp_path)
    turn = cv2.Rodrigues(np.array([0.1, 0.2, 0.3]))[0]
    vector = cv2.Rodrigues(turn)[0]
    write_extri(tmp_path / "extri.yml", {"cam_a": {"Rot": turn}, "cam_b": {"R": vector, "Rot": turn}})
    loaded = calibration.load_calibration(tmp_path)
    for camera in loaded.cameras:
        np.testing.assert_allclose(camera.R, turn, atol=1e-12)
    write_extri(tmp_path / "extri.yml", {"cam_a": {"Rot": turn}, "cam_b": {"R": vector + 0.01, "Rot": turn}})
    with pytest.raises(ValueError, match="camera cam_b: R_cam_b and Rot_cam_b are different rotations"):
        calibration.load_calibration(tmp_path)
    write_extri(tmp_path / "extri.yml", {"cam_a": {"Rot": 2 * turn}, "cam_b": {"Rot": turn}})
    with pytest.raises(ValueError, match="camera cam_a: the rotation matrix is not a rotation"):
        calibration.load_calibration(tmp_path)


# --------------------------------------------------------------------------- sizes and writers

def test_image_sizes_come_from_the_videos_and_a_resized_video_scales_its_camera(rig, tmp_path):
    """Guards issue 22 item 2: a video resized from its calibration's image (pose2sim's 1080-wide
    videos of a 1088-wide calibration) scales its camera, fx, cx by the width ratio and fy, cy by the
    height's; an aspect change is still an error. Planted faults: the ratios swapped (the 2x width
    check fails), the aspect check removed (no error for 480 x 300)."""
    calibration.write_toml(rig, tmp_path / "rig.toml")
    toml = calibration.load_calibration(tmp_path / "rig.toml")
    sizes = {camera.id: (480, 360) for camera in rig}
    assert_same_cameras(calibration.with_image_sizes(toml, sizes).cameras, rig)
    assert not calibration.with_image_sizes(toml, sizes).notes
    scaled = calibration.with_image_sizes(toml, {**sizes, "cam_b": (960, 720), "cam_c": (476, 360)})
    points = points_in_front(rig)
    for index, ratios in ((1, [2.0, 2.0]), (2, [476 / 480, 1.0])):
        original, resized = (geometry.project(points, cameras[index]) for cameras in (rig, scaled.cameras))
        np.testing.assert_allclose(resized, (original + 0.5) * ratios - 0.5, atol=1e-9)  # pixel centres at integers
    assert [(c.width, c.height) for c in scaled.cameras[1:3]] == [(960, 720), (476, 360)]
    assert scaled.notes == (
        "Camera cam_b: its video is 960 x 720 px, the calibration's image 480 x 360: the camera is scaled to the "
        "video, fx and cx by 2.0000, fy and cy by 2.0000.",
        "Camera cam_c: its video is 476 x 360 px, the calibration's image 480 x 360: the camera is scaled to the "
        "video, fx and cx by 0.9917, fy and cy by 1.0000.")
    with pytest.raises(ValueError, match=r"The video of camera cam_b \(calibration .*rig.toml\) is 480 x 300 px, "
                                         r"but the calibration is for 480 x 360 px images: the aspect ratio differs"):
        calibration.with_image_sizes(toml, {**sizes, "cam_b": (480, 300)})
    with pytest.raises(ValueError, match="No image size for camera.s. cam_e of"):
        calibration.with_image_sizes(toml, {name: size for name, size in sizes.items() if name != "cam_e"})


def test_human36m_tangential_distortion_cannot_be_written_as_opencv(tmp_path):
    cameras = list(rigs.make_cameras("S1", rigs.make_intrinsics(320, 0), 0).values())
    with pytest.raises(ValueError, match="Human3.6M's tangential distortion.*write_json"):
        calibration.write_toml(cameras, tmp_path / "h36m.toml")
    calibration.write_json(cameras, tmp_path / "h36m.json")
    assert_same_cameras(calibration.load_calibration(tmp_path / "h36m.json").cameras, cameras)


# --------------------------------------------------------------------------- the real recording (Qualisys)

@pytest.fixture(scope="module")
def recording():
    return real_recording.folder_or_skip()


def test_the_qualisys_file_projects_as_the_toml_pose2sim_made_from_it(recording):
    """Guards issue 22 item 7: the shared recording's Calib.qca.txt (centre in mm, rotation in Qualisys'
    camera axes, intrinsics in 1/64 px) gives the cameras of its Calib.toml, projections within 0.5 px
    (they agree to 1e-9). Planted faults: the rotation transposed, the axis flip left out, the 1/64 left
    out of the lens terms: each moves projections by pixels to metres."""
    toml = calibration.load_calibration(recording / "Calib.toml")
    qualisys = calibration.load_calibration(recording / "Calib.qca.txt")
    assert (qualisys.format, qualisys.unit, qualisys.names) == ("qualisys", "mm", ("cam01", "cam02", "cam03", "cam04"))
    points = points_in_front(toml.cameras, count=500)
    for ours, theirs in zip(qualisys.cameras, toml.cameras):
        assert (ours.width, ours.height) == (theirs.width, theirs.height) == (1088, 1920)
        expected = geometry.project(points, theirs)
        inside = np.all((expected >= 0) & (expected < [theirs.width, theirs.height]), axis=1)
        assert inside.sum() > 100, ours.id  # the check looks at the image, not beside it
        assert np.abs(geometry.project(points[inside], ours) - expected[inside]).max() < 0.5, ours.id


def test_the_qualisys_units_are_checked(recording, tmp_path):
    """Guards the unit check on the fourth format: the centre in mm read as metres is a rig kilometres
    wide and an error naming --calibration-units; a file whose centres were written in metres says so.
    Planted fault: check_scale skipped for qualisys -> no error."""
    with pytest.raises(ValueError, match=r"Calib.qca.txt: read in metres .*pass --calibration-units mm"):
        calibration.load_calibration(recording / "Calib.qca.txt", units="m")
    text = (recording / "Calib.qca.txt").read_text()
    in_metres = re.sub(r' ([xyz])="(-?[\d.]+)"', lambda m: f' {m[1]}="{float(m[2]) / 1000!r}"', text)
    (tmp_path / "metres.qca.txt").write_text(in_metres)
    with pytest.raises(ValueError, match=r"metres.qca.txt: read in millimetres .*pass --calibration-units m"):
        calibration.load_calibration(tmp_path / "metres.qca.txt")
    assert calibration.load_calibration(tmp_path / "metres.qca.txt", units="m").unit == "m"
    (tmp_path / "broken.qca.txt").write_text(text.replace("<transform", "<transfrm"))
    with pytest.raises(ValueError, match="broken.qca.txt, camera cam01 lacks <transform>"):
        calibration.load_calibration(tmp_path / "broken.qca.txt")
