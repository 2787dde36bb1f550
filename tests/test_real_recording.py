"""--mode predict on a REAL recording nobody here made (pose2sim's balancing trial, see
../shared/real_recordings/README.md): the field's names, a video resized from its calibration,
the root from the detector's own JSON against the TRC's pelvis, and a run that says what it did
with the root. Skipped with a message when the recording is absent. The model's weights are
random (the path is checked here; benchmarks/bench_real.py measures trained weights)."""
import contextlib
import dataclasses
import io
import json
import os
import shutil

import numpy as np
import pytest

from common import rig_frame
from rig import detections
from rig import predict
import train_and_test
import real_recording
from real_recording import CAMERAS, reference_pelvis
from test_predict import random_weights

STRIDE = 10  # 10 of the 100 frames: a few seconds of decoding per run


@pytest.fixture(scope="module")
def recording():
    return real_recording.folder_or_skip()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return random_weights(tmp_path_factory.mktemp("weights"), "tiny-mean", 4)


def linked_videos(recording, folder, names):
    """``folder`` holding the recording's four videos (symbolic links) under ``names``, in camera order."""
    folder.mkdir()
    for index, name in enumerate(names):
        os.symlink(recording / "videos" / f"cam0{index + 1}.mp4", folder / name)
    return folder


def test_videos_pair_with_cameras_as_the_field_names_them(recording, tmp_path):
    """Guards issue 22 item 1: pose2sim's cam01.mp4 is its calibration's cam_01, and so are Cam1,
    cam-01, trial3.cam_01; names that match nothing pair in sorted order, saying so; two videos for one
    camera are an error naming both. Planted faults: leading zeros kept (cam01 != cam_01 -> the sorted
    fallback's note appears), the duplicate check removed (no error)."""
    matched, notes = predict.match_videos(recording / "videos", CAMERAS)
    assert notes == () and [os.path.basename(matched[c]) for c in CAMERAS] == [f"cam0{i}.mp4" for i in range(1, 5)]
    mixed = linked_videos(recording, tmp_path / "mixed", ["Cam1.mp4", "cam-02.MP4", "trial3.cam_03.mp4", "cam04.mov"])
    matched, notes = predict.match_videos(mixed, CAMERAS)
    assert notes == () and [os.path.basename(matched[c]) for c in CAMERAS] == sorted(os.listdir(mixed), key=lambda n: (
        "1" not in n, "2" not in n, "3" not in n))
    other = linked_videos(recording, tmp_path / "other", ["a.mp4", "b.mp4", "c.mp4", "d.mp4"])
    matched, notes = predict.match_videos(other, CAMERAS)
    assert [os.path.basename(matched[c]) for c in CAMERAS] == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]
    assert notes == (f"--videos {other}: the names do not all match the camera names, so they are paired with the "
                     "cameras in sorted order, as pose2sim does: cam_01 <- a.mp4, cam_02 <- b.mp4, cam_03 <- c.mp4, "
                     "cam_04 <- d.mp4. Check this pairing, or name each after its camera.",)
    twice = linked_videos(recording, tmp_path / "twice", ["cam01.mp4", "cam_01.avi", "cam03.mp4", "cam04.mp4"])
    with pytest.raises(ValueError, match="two for camera cam_01: cam01.mp4 and cam_01.avi"):
        predict.match_videos(twice, CAMERAS)


def test_a_calibrated_camera_without_a_video_is_left_out_and_said(recording, tmp_path):
    """A lab calibrates more cameras than a trial used: with cam03's video gone, the rig is the
    other three cameras (a note names cam_03), the detections' cam03 folder is ignored, and the
    root is still within 30 mm of the reference pelvis in the median. Background videos may cover
    the left-out camera too, but must cover every camera used. One video alone stays an error.
    Planted faults: pair_by_name's partial rule removed (an error), the detections not told which
    cameras were left out (an error: no camera for cam03_json), cam04's video paired with cam_03
    (the root far off)."""
    three = tmp_path / "three"
    three.mkdir()
    for name in ("cam01.mp4", "cam02.mp4", "cam04.mp4"):
        os.symlink(recording / "videos" / name, three / name)
    rig = predict.load_rig(recording / "Calib.toml", three, background_folder=recording / "videos")
    assert [camera.id for camera in rig.cameras] == ["cam_01", "cam_02", "cam_04"] and rig.left_out == ("cam_03",)
    assert [os.path.basename(path) for path in rig.videos] == ["cam01.mp4", "cam02.mp4", "cam04.mp4"]
    assert any("no video for camera(s) cam_03: left out; predicting from the 3 cameras" in note for note in rig.notes)
    assert [os.path.basename(paths[1]) for paths in rig.backgrounds] == ["cam01.mp4", "cam02.mp4", "cam04.mp4"]
    found = detections.load_detections(recording / "pose", [camera.id for camera in rig.cameras],
                                       left_out=rig.left_out)
    assert len(found.people) == 3 and all(found.people)
    with contextlib.redirect_stdout(io.StringIO()):
        first = predict.find_first_roots(rig, detections=found, progress=False)
    roots = rig_frame.rig_frame(rig.cameras).to_world(first.track.roots)
    # measured 45 mm median (25 to 51 leaving out each camera in turn; 21 with all four): the
    # reference is pose2sim's four-camera triangulation. A camera paired with another's video is metres off.
    assert np.median(np.linalg.norm(roots - reference_pelvis(recording), axis=1)) <= 60.0
    no4 = tmp_path / "no4"
    no4.mkdir()
    for name in ("cam01.mp4", "cam02.mp4", "cam03.mp4"):
        os.symlink(recording / "videos" / name, no4 / name)
    with pytest.raises(ValueError, match="--background-videos .*: no video for camera\\(s\\) cam_04"):
        predict.load_rig(recording / "Calib.toml", three, background_folder=no4)
    alone = tmp_path / "alone"
    alone.mkdir()
    os.symlink(recording / "videos" / "cam01.mp4", alone / "cam01.mp4")
    with pytest.raises(ValueError, match="nothing for camera\\(s\\) cam_02, cam_03, cam_04"):
        predict.load_rig(recording / "Calib.toml", alone)


def test_the_1080_wide_videos_scale_their_1088_wide_cameras(recording):
    """Guards issue 22 item 2 on the real files: cam01 and cam02 decode 1080 wide, the calibration says
    1088: their fx and cx scale by 1080 / 1088, one line each says so, the others stay."""
    toml = predict.calibration.load_calibration(recording / "Calib.toml")
    rig = predict.load_rig(recording / "Calib.toml", recording / "videos")
    assert [(c.width, c.height) for c in rig.cameras] == [(1080, 1920), (1080, 1920), (1088, 1920), (1088, 1920)]
    for ours, theirs in zip(rig.cameras, toml.cameras):
        ratio = ours.width / 1088
        np.testing.assert_allclose(ours.K[0, [0, 2]], [ratio * theirs.K[0, 0], ratio * (theirs.K[0, 2] + 0.5) - 0.5])
        np.testing.assert_allclose(ours.K[1], theirs.K[1])
    scaled = [note for note in rig.notes if "scaled to the video" in note]
    assert [note.split(":")[0] for note in scaled] == ["Camera cam_01", "Camera cam_02"]
    assert all("fx and cx by 0.9926, fy and cy by 1.0000" in note for note in scaled)
    assert rig.backgrounds is None  # no --background-videos: the root finder may warn that he stays in place


def test_the_detections_root_is_within_30_mm_of_the_reference_pelvis(recording):
    """Guards issue 22 item 3's target: the mid-hip from the JSON (BODY_25B, detected from the keypoints;
    two people in some views) within 30 mm (median) of the TRC's pelvis, found in >= 95 of 100 frames
    (measured: 100 found, median 19 mm, mean 25 mm). Planted fault: hips taken as BODY_25's (12, 9):
    median 239 mm. Not guarded here: the scaling of the 1080-wide cameras (left out, the median is
    17 mm: pose2sim triangulated the TRC without it; the test above guards it)."""
    rig = predict.load_rig(recording / "Calib.toml", recording / "videos")
    found = detections.load_detections(recording / "pose", CAMERAS)
    assert found.layout == "BODY_25B" and any("read as BODY_25B" in note for note in found.notes)
    assert max(len(people) for people in found.people[0].values()) >= 2  # the man and who else the detector saw
    track = detections.find_roots(found, rig.cameras, np.arange(100), rig.fps)
    error = np.linalg.norm(track.roots - reference_pelvis(recording), axis=1)
    assert np.sum(track.status == "found") >= 95
    assert np.median(error) <= 30.0, np.median(error)


def predict_real(recording, weights, out, *extra):
    return train_and_test.main(["--mode", "predict", "--config", "tiny-mean", "--weights", weights, "--videos",
                                str(recording / "videos"), "--calibration", str(recording / "Calib.toml"),
                                "--output-dir", str(out), "--stride", str(STRIDE), "--verbose", "0", *extra])


def partial_detections(recording, folder, last_frame):
    """A copy of the recording's detections with the frames after ``last_frame`` left out."""
    for camera in sorted((recording / "pose").iterdir()):
        (folder / camera.name).mkdir(parents=True)
        for path in sorted(camera.glob("*.json"))[:last_frame + 1]:
            shutil.copy(path, folder / camera.name / path.name)
    return folder


def test_held_roots_warn_and_too_few_stop_the_run_with_the_flags_that_help(recording, weights, tmp_path, capsys):
    """Guards issue 22 item 4: frames 80 and 90 without detections are held: a warning naming
    --detections and --background-videos, the counts in summary.json and root_status in
    predictions.npz; detections for frames 0-39 only (4 of 10 frames) stop the run before the model
    with exit 1. Planted faults: the warning never raised, the error share check removed (exit 0),
    root_status not written."""
    code = predict_real(recording, weights, tmp_path / "out", "--detections",
                        str(partial_detections(recording, tmp_path / "until79", 79)))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "Warning: the root was not found in 2 of 10 frames (20%: 0 interpolated, 2 held" in printed.out
    assert "--detections DIR" in printed.out and "--background-videos DIR" in printed.out
    assert "Trained on: not recorded" in printed.out  # random weights: no training_data in their sidecar
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["root_source"] == "detections" and summary["frames"] == 10
    assert (summary["root"]["found"], summary["root"]["held"], summary["root"]["share_held"]) == (8, 2, 0.2)
    assert summary["warnings"] and summary["weights"]["config"] == "tiny-mean"
    with np.load(tmp_path / "out" / "predictions.npz") as saved:
        assert saved["root_status"].tolist() == ["found"] * 8 + ["held"] * 2
        assert saved["root"].shape == (10, 3)
    code = predict_real(recording, weights, tmp_path / "few", "--detections",
                        str(partial_detections(recording, tmp_path / "until39", 39)))
    printed = capsys.readouterr()
    assert code == 1 and not (tmp_path / "few" / "predictions.npz").exists()
    assert "The root was found in only 4 of 10 frames from the detections (0 interpolated, 6 held)" in printed.err
    assert "--background-videos DIR" in printed.err and "--root-source centre" in printed.err


def test_without_detections_the_still_man_stops_the_run_with_the_flags_that_help(recording, weights, tmp_path,
                                                                                 capsys):
    """Issue 22 item 4, as a user runs it: the man balances in one place, so his own videos'
    background holds him and the silhouettes find nobody. predict exits 1 before the model, writes
    nothing, and names the three flags that would help (the library's wording names its argument).
    Planted fault: predict passes the root finder's error on as it is -> the flags are missing."""
    code = predict_real(recording, weights, tmp_path / "out")
    printed = capsys.readouterr()
    assert code == 1 and not (tmp_path / "out" / "predictions.npz").exists()
    assert "No person found in any frame of" in printed.err and "cam04.mp4" in printed.err
    for flag in ("--detections DIR", "--background-videos DIR", "--root-source centre"):
        assert flag in printed.err, flag
    assert "background_videos;" not in printed.err


def test_the_detections_root_uses_the_cameras_scaled_to_the_1080_wide_videos(recording):
    """Issue 22: the JSON is in each video's pixels, so predict triangulates the root with the cameras
    scaled to the videos (cam01 and cam02 are 1080 wide, the calibration 1088). predict's own path
    (``load_rig``, ``find_first_roots``) gives the root that ``detections.find_roots`` gives on the
    scaled cameras (in the rig frame, as predict), to the micrometre. Pretending the scaling away
    moves it by a few mm (measured: median 4.9 mm) and keeps it within 30 mm of the TRC's pelvis
    (21 mm median scaled, 19 mm not: pose2sim triangulated the TRC without the scaling): the
    detections cannot tell the two apart, so the path is what guards the scaling. Planted fault: ``with_image_sizes`` sizes a camera
    without scaling it -> the roots differ by the same few mm and the first assertion fails."""
    rig = predict.load_rig(recording / "Calib.toml", recording / "videos")
    found = detections.load_detections(recording / "pose", CAMERAS)
    with contextlib.redirect_stdout(io.StringIO()):
        first = predict.find_first_roots(rig, detections=found, progress=False)
    ours = rig_frame.rig_frame(rig.cameras).to_world(first.track.roots)
    calibrated = predict.calibration.load_calibration(recording / "Calib.toml").cameras
    scaled = [predict.calibration.scaled_camera(camera, (1080, 1920)) if index < 2 else camera
              for index, camera in enumerate(calibrated)]
    unscaled = [dataclasses.replace(camera, width=size.width, height=size.height)
                for camera, size in zip(calibrated, scaled)]
    world = {}
    for name, cameras in (("scaled", scaled), ("unscaled", unscaled)):  # in the rig frame, as predict
        local, frame = rig_frame.cameras_in_rig_frame(cameras)
        world[name] = frame.to_world(detections.find_roots(found, local, first.frames, rig.fps).roots)
    np.testing.assert_allclose(ours, world["scaled"], atol=1e-3)
    pretended = world["unscaled"]
    moved = np.linalg.norm(pretended - ours, axis=1)
    assert 0.5 < np.median(moved) < 10.0, np.median(moved)
    pelvis = reference_pelvis(recording)
    for roots in (ours, pretended):
        assert np.median(np.linalg.norm(roots - pelvis, axis=1)) <= 30.0


def test_bench_real_reports_a_refused_source_as_a_row(recording, capsys):
    """bench_real on the real recording with the silhouettes (which find nobody there): the table
    still prints, with the source's row saying predict refused it. Planted fault: the root finder's
    error not caught -> bench_real raises and no table is printed."""
    from benchmarks import bench_real
    bench_real.main(["--recording", str(recording), "--sources", "silhouettes"])
    rows = capsys.readouterr().out.splitlines()
    assert rows[-1].split()[:4] == ["silhouettes", "-", "-", "-"]
    assert "predict refused: no person found in any frame" in rows[-1]
