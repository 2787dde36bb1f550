"""The root from 2D detections (rig/detections.py) on cases the real recording cannot show: three
people in the room, a view that sees nobody, a camera without detections, every layout, and the
files' errors. People are synthetic 3D keypoint sets projected through a synthetic rig and written
as OpenPose-format JSON, as pose2sim writes them (one folder per camera, one file per frame)."""
import json

import numpy as np
import pytest

from rig import detections
from synthetic import synthetic_rig

FRAMES, FPS = 12, 30.0
CAMERAS = ("cam_01", "cam_02", "cam_03", "cam_04")


@pytest.fixture(scope="module")
def cameras():
    return synthetic_rig.make_rig(4, seed=7, width=640, height=480, names=list(CAMERAS))


def body(pelvis, layout="BODY_25B", seed=0):
    """(K, 3) world mm: a person's keypoints of ``layout`` around ``pelvis`` (3,), hips 100 mm either side,
    the rest scattered over a body's extent (BODY_25's keypoint 8 on the hips' midpoint)."""
    spec = detections.LAYOUTS[layout]
    rng = np.random.default_rng(seed)
    points = pelvis + rng.uniform([-250, -250, -900], [250, 250, 800], (spec.count, 3))
    points[spec.left_hip], points[spec.right_hip] = pelvis + [0, 100, 0], pelvis - [0, 100, 0]
    if layout == "BODY_25":
        points[8] = pelvis
    return points


def write_views(folder, cameras, people_per_frame, skip=(), nobody=()):
    """One folder per camera (pose2sim's camXX_json) of files camXX.00NN.json; people_per_frame: per
    frame a list of (K, 3) world keypoint sets; cameras in ``skip`` get no folder, those in ``nobody``
    files without people, in another order in every view and frame. Every keypoint is seen with
    confidence 0.9 and a noise of 1 px."""
    rng = np.random.default_rng(1)
    for camera in cameras:
        if camera.id in skip:
            continue
        views = folder / f"{camera.id.replace('_', '')}_json"
        views.mkdir(parents=True)
        for frame, people in enumerate(people_per_frame):
            listed = []
            shuffled = [people[i] for i in rng.permutation(len(people))]  # no order shared across views
            for points in ([] if camera.id in nobody else shuffled):
                uv = synthetic_rig.geometry.project(points, camera) + rng.normal(0, 1, (len(points), 2))
                listed.append({"person_id": [-1], "pose_keypoints_2d": np.column_stack(
                    [uv, np.full(len(uv), 0.9)]).ravel().tolist()})
            path = views / f"{camera.id.replace('_', '')}.{frame:04d}.json"
            path.write_text(json.dumps({"version": 1.3, "people": listed}))


def walk(start, step):
    return [np.asarray(start, float) + frame * np.asarray(step, float) for frame in range(FRAMES)]


def roots_of(folder, cameras, layout=None):
    found = detections.load_detections(folder, CAMERAS, layout)
    return found, detections.find_roots(found, cameras, np.arange(FRAMES), FPS)


def test_three_people_the_one_seen_throughout_is_followed(cameras, tmp_path):
    """Guards the association and the tracking: three people in view, the subject walking through the
    middle, a second standing by, a third in the frames 3-6 only, detections in a different order in
    every view. The root is the subject's mid-hip within 15 mm (1 px of noise) in every frame. Planted faults: keep the
    first pairing instead of the smallest error (errors of metres), pick the latest track instead of
    the longest (the bystander)."""
    centre = synthetic_rig.floor_centre(cameras) + [0, 0, 950]
    subject = walk(centre - [300, 0, 0], [50, 0, 0])
    bystander = centre + [900, 900, 0]
    people = [[body(bystander, seed=2), body(root, seed=1)] + ([body(centre - [900, -800, 0], seed=3)]
                                                            if 3 <= frame <= 6 else [])
              for frame, root in enumerate(subject)]
    write_views(tmp_path, cameras, people)
    _, track = roots_of(tmp_path, cameras)
    assert list(track.status) == ["found"] * FRAMES and track.source == "detections"
    assert np.abs(track.roots - np.array(subject)).max() < 15.0


def test_a_view_with_nobody_and_a_camera_without_detections(cameras, tmp_path):
    """Guards views that add nothing: a camera whose files hold nobody, and a camera with no folder at all
    (a note names it). The root comes from the others, and the views used say which. Planted fault:
    a view without people treated as an error -> no root."""
    centre = synthetic_rig.floor_centre(cameras) + [0, 0, 950]
    subject = walk(centre, [0, 40, 0])
    write_views(tmp_path / "nobody", cameras, [[body(root)] for root in subject], nobody=("cam_02",))
    _, track = roots_of(tmp_path / "nobody", cameras)
    assert np.abs(track.roots - np.array(subject)).max() < 15.0
    assert track.views.tolist() == [[True, False, True, True]] * FRAMES
    write_views(tmp_path / "missing", cameras, [[body(root)] for root in subject], skip=("cam_03",))
    found, track = roots_of(tmp_path / "missing", cameras)
    assert found.people[2] is None and any("no detections for camera(s) cam_03" in note for note in found.notes)
    assert np.abs(track.roots - np.array(subject)).max() < 15.0


def test_frames_without_a_consistent_person_are_interpolated_or_held(cameras, tmp_path):
    """Guards the filling: frames 0-1 and 9-11 see nobody (held), frame 5 sees the person in one view
    only (interpolated between its neighbours)."""
    centre = synthetic_rig.floor_centre(cameras) + [0, 0, 950]
    subject = walk(centre, [30, 0, 0])
    write_views(tmp_path, cameras, [[body(root)] if 2 <= frame <= 8 else [] for frame, root in enumerate(subject)])
    for camera in ("cam02", "cam03", "cam04"):  # frame 5: only cam_01 sees him
        (tmp_path / f"{camera}_json" / f"{camera}.0005.json").write_text('{"people": []}')
    _, track = roots_of(tmp_path, cameras)
    assert list(track.status) == ["held"] * 2 + ["found"] * 3 + ["interpolated"] + ["found"] * 3 + ["held"] * 3
    assert np.abs(track.roots[5] - subject[5]).max() < 15.0  # he walks straight: interpolation is exact


@pytest.mark.parametrize("layout", list(detections.LAYOUTS))
def test_every_layout_is_read_and_its_hips_give_the_root(cameras, tmp_path, layout):
    """Guards the layouts' hip indices and their detection from the keypoint count (25: BODY_25 vs
    BODY_25B from where keypoint 8 lies). Planted faults: BODY_25's hips given as BODY_25B's (root
    off by the body's scatter), the 25-keypoint test inverted (wrong layout read)."""
    centre = synthetic_rig.floor_centre(cameras) + [0, 0, 950]
    subject = walk(centre, [0, 0, 5])
    write_views(tmp_path, cameras, [[body(root, layout, seed=frame)] for frame, root in enumerate(subject)])
    found, track = roots_of(tmp_path, cameras)
    assert found.layout == layout
    assert np.abs(track.roots - np.array(subject)).max() < 15.0


def test_bad_detection_files_are_clear_errors(cameras, tmp_path):
    centre = synthetic_rig.floor_centre(cameras) + [0, 0, 950]
    write_views(tmp_path, cameras, [[body(centre)]] * 2)
    with pytest.raises(ValueError, match="--keypoint-layout COCO_17 has 17 keypoints, but the files .* hold 25"):
        detections.load_detections(tmp_path, CAMERAS, "COCO_17")
    (tmp_path / "cam01_json" / "cam01.0000.json").write_text('{"people": [{"pose_keypoints_2d": [1, 2]}]}')
    with pytest.raises(ValueError, match=r"cam01.0000.json: pose_keypoints_2d of \[2\] numbers"):
        detections.load_detections(tmp_path, CAMERAS)
    (tmp_path / "cam01_json" / "cam01.0000.json").write_text("not json")
    with pytest.raises(ValueError, match="cam01.0000.json is not OpenPose-format JSON"):
        detections.load_detections(tmp_path, CAMERAS)
    (tmp_path / "cam01_json" / "cam01.0000.json").unlink()
    (tmp_path / "cam01_json" / "other.1.json").write_text('{"people": []}')
    with pytest.raises(ValueError, match="cam01.0001.json and other.1.json are both frame 1"):
        detections.load_detections(tmp_path, CAMERAS)
    with pytest.raises(FileNotFoundError, match="--detections .*nowhere: no such folder"):
        detections.load_detections(tmp_path / "nowhere", CAMERAS)
