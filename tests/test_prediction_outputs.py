"""predict's output files, written from known arrays and read back: npz, CSV, TRC and the two videos."""
import csv

import cv2
import numpy as np
import pytest
from common import geometry
from common import skeleton
from common import video_io
from rig import prediction_outputs as outputs
import real_recording

FRAMES = np.arange(8) * 5  # every 5th frame of a 50 fps video
FPS = 50.0
CAMERAS = ("cam_a", "cam_b")
# A person standing, Z up, world mm (J17: pelvis, right leg, left leg, spine..head, left arm, right arm).
STANDING = np.array([
    [0, 0, 950], [-120, 0, 950], [-120, 0, 500], [-120, 0, 80], [120, 0, 950], [120, 0, 500],
    [120, 0, 80], [0, 0, 1200], [0, 0, 1450], [0, 0, 1550], [0, 0, 1700], [180, 0, 1450],
    [350, 0, 1250], [450, 0, 1050], [-180, 0, 1450], [-350, 0, 1250], [-450, 0, 1050]], np.float64)
# Two views of different shapes: a landscape 320 x 240 and a portrait 240 x 320.
FRAME_SIZES = ((320, 240), (240, 320))
GREY = (96, 128)  # each view's uniform background level


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


def frames_bgr() -> list:
    return [np.full((height, width, 3), level, np.uint8) for (width, height), level in zip(FRAME_SIZES, GREY)]


# --------------------------------------------------------------------------- npz, CSV

def test_npz_loads_without_pickle_with_shapes_dtypes_and_values(tmp_path):
    joints_3d, joints_2d = track_3d(), track_2d()
    joints_3d[2, 5] = np.nan
    status = np.array(["found", "smoothed"] * 4, dtype=object)  # object input: stored as unicode
    path = outputs.write_npz(tmp_path / "predictions.npz", joints_3d, joints_2d, FRAMES, list(CAMERAS),
                             root=joints_3d[:, 0], root_status=status, fps=FPS)
    with np.load(path) as npz:  # allow_pickle is False by default
        loaded = {name: npz[name] for name in npz.files}
    assert set(loaded) == {"joints_3d", "joints_2d", "frames", "cameras", "root", "joint_names",
                           "root_status", "fps"}
    assert loaded["joints_3d"].shape == (8, 17, 3) and loaded["joints_3d"].dtype == np.float64
    assert loaded["joints_2d"].shape == (8, 2, 17, 2) and loaded["joints_2d"].dtype == np.float64
    np.testing.assert_array_equal(loaded["joints_3d"], joints_3d)  # NaN where it was
    np.testing.assert_array_equal(loaded["joints_2d"], joints_2d)
    np.testing.assert_array_equal(loaded["root"], joints_3d[:, 0])
    assert loaded["frames"].dtype == np.int64 and loaded["frames"].tolist() == FRAMES.tolist()
    for name in ("cameras", "joint_names", "root_status"):
        assert loaded[name].dtype.kind == "U"
    assert loaded["cameras"].tolist() == list(CAMERAS)
    assert loaded["joint_names"].tolist() == list(skeleton.JOINT_NAMES_17)
    assert loaded["root_status"].tolist() == status.tolist() and float(loaded["fps"]) == FPS


def test_npz_refuses_mismatched_shapes_and_clashing_names(tmp_path):
    with pytest.raises(ValueError, match="joints_2d"):
        outputs.write_npz(tmp_path / "a.npz", track_3d(), track_2d()[:, :1], FRAMES, CAMERAS)
    with pytest.raises(ValueError, match="frames"):
        outputs.write_npz(tmp_path / "a.npz", track_3d(), track_2d(), FRAMES[:-1], CAMERAS)
    with pytest.raises(ValueError, match="replace"):
        outputs.write_npz(tmp_path / "a.npz", track_3d(), track_2d(), FRAMES, CAMERAS, joint_names=["x"])


def test_csv_reads_back_as_the_arrays(tmp_path):
    joints_3d, joints_2d = track_3d(), track_2d()
    joints_2d[3, 1, 16] = np.nan
    subject, sequence = ["S9"] * 8, [f"Walking {t % 2 + 1}" for t in range(8)]
    path = outputs.write_csv(tmp_path / "predictions.csv", joints_3d, joints_2d, FRAMES, CAMERAS,
                             subject=subject, sequence=sequence)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, rows = rows[0], rows[1:]
    assert header == ["subject", "sequence", "frame", "joint", "joint_name", "x_mm", "y_mm", "z_mm",
                      "u_cam_a", "v_cam_a", "u_cam_b", "v_cam_b"]
    assert len(rows) == 8 * 17
    number = lambda text: float(text) if text else np.nan  # noqa: E731 (a blank field is a missing joint)
    for t in range(8):
        for joint in range(17):
            row = dict(zip(header, rows[t * 17 + joint]))
            assert (row["subject"], row["sequence"], int(row["frame"]), int(row["joint"])) == \
                (subject[t], sequence[t], FRAMES[t], joint)
            assert row["joint_name"] == skeleton.JOINT_NAMES_17[joint]
            xyz = [number(row[name]) for name in ("x_mm", "y_mm", "z_mm")]
            uv = [[number(row[f"{axis}_{camera}"]) for axis in "uv"] for camera in CAMERAS]
            np.testing.assert_allclose(xyz, joints_3d[t, joint], atol=1e-3)
            np.testing.assert_allclose(uv, joints_2d[t, :, joint], atol=1e-3)  # NaN only where NaN
    assert rows[3 * 17 + 16][10:12] == ["", ""]
    assert all(len(text.split(".")[1]) == 3 for text in rows[0][5:])  # 3 decimals


def test_csv_without_subject_and_sequence_starts_with_the_frame(tmp_path):
    path = outputs.write_csv(tmp_path / "p.csv", track_3d(), track_2d(), FRAMES, CAMERAS)
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header[:3] == ["frame", "joint", "joint_name"]


# --------------------------------------------------------------------------- TRC

def read_trc(path):
    """(header fields by name, marker names, frames, times, (T, M, 3) coordinates) of a TRC file."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    assert lines[-1] == ""  # ends with a newline
    fields = [line.split("\t") for line in lines[:-1]]
    assert fields[0][:3] == ["PathFileType", "4", "(X/Y/Z)"] and fields[0][3] == path.name
    header = dict(zip(fields[1], fields[2]))
    names = fields[3][2::3]
    assert fields[3][:2] == ["Frame#", "Time"] and len(fields[3]) == 2 + 3 * len(names)
    assert fields[3][3::3] == [""] * len(names) and fields[3][4::3] == [""] * len(names)
    assert fields[4] == ["", ""] + [f"{axis}{k}" for k in range(1, len(names) + 1) for axis in "XYZ"]
    data = fields[5:]
    values = np.array([[float(text) if text else np.nan for text in row[2:]] for row in data])
    return (header, names, [int(row[0]) for row in data], [float(row[1]) for row in data],
            values.reshape(len(data), len(names), 3))


def test_trc_has_pose2sims_layout_and_reads_back_to_world_mm(tmp_path):
    """Guards the TRC's axes and units: written in the world's Z-up axes, turned the other way
    ((X, Y, Z) -> (Z, X, Y)) or in mm under "Units m", the file no longer reads back to the world mm
    (each planted once, each failed here)."""
    joints_3d = track_3d()
    joints_3d[4, 13] = np.nan
    path = tmp_path / "predictions.trc"
    outputs.write_trc(path, joints_3d, FRAMES, FPS)
    header, names, frames, times, values = read_trc(path)
    assert header == {"DataRate": "10", "CameraRate": "50", "NumFrames": "8", "NumMarkers": "17",
                      "Units": "m", "OrigDataRate": "50", "OrigDataStartFrame": "0", "OrigNumFrames": "8"}
    assert names == list(outputs.TRC_MARKER_NAMES) and names[0] == "Hip" and names[10] == "Head"
    assert frames == FRAMES.tolist()
    np.testing.assert_allclose(times, FRAMES / FPS)
    # Undo pose2sim's Z-up -> Y-up (X_trc, Y_trc, Z_trc) = (Y, Z, X), and metres -> mm.
    world_mm = values[..., [2, 0, 1]] * 1000
    np.testing.assert_allclose(world_mm, joints_3d, atol=1e-3)  # 6 decimals of a metre
    assert np.isnan(values[4, 13]).all() and np.isfinite(np.delete(values[4], 13, axis=0)).all()
    head, ankle = values[0, 10], values[0, 3]
    assert head[1] - ankle[1] == pytest.approx(1.62, abs=0.02)  # OpenSim's Y is up


def test_trc_refuses_frames_that_do_not_increase(tmp_path):
    with pytest.raises(ValueError, match="increasing"):
        outputs.write_trc(tmp_path / "p.trc", track_3d(), FRAMES[::-1], FPS)


# --------------------------------------------------------------------------- overlay video

def read_video(path) -> list:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame.astype(np.int32))
    capture.release()
    return frames


def looks_like(pixel, bgr) -> bool:
    """The decoded pixel has the drawn colour, up to what mp4v coding changes (measured: under 25)."""
    return np.abs(np.asarray(pixel) - bgr).max() <= 40


def test_grid_has_two_columns_for_four_views_and_four_for_eleven():
    assert [outputs.grid_columns(n) for n in (1, 2, 4, 5, 9, 11)] == [1, 2, 2, 3, 3, 4]


def test_overlay_draws_each_views_skeleton_where_its_joints_are(tmp_path):
    joints_2d = track_2d()
    joints_2d[:, 1, 16] = np.nan  # view b loses the right wrist: its forearm must not be drawn
    path = tmp_path / "overlay.mp4"
    with outputs.OverlayVideoWriter(path, CAMERAS, FRAME_SIZES, FPS, tile_width=160) as writer:
        for t in range(len(FRAMES)):
            writer.add(frames_bgr(), joints_2d[t], label=f"frame {FRAMES[t]}")
    video = read_video(path)
    # Tiles 160 wide, as high as the portrait view at that width (160 * 320 / 240 = 213.3 -> 214).
    assert len(video) == 8 and video[0].shape == (214, 320, 3)
    frame = video[0]
    # Independent of the writer: view a scales by 1/2 and sits centred in tile 0 (47 px down);
    # view b scales by 160/240 and 213/320 in tile 1 (160 px right).
    placements = {0: (np.array([0.5, 0.5]), np.array([0, 47])),
                  1: (np.array([160 / 240, 213 / 320]), np.array([160, 0]))}
    edges = skeleton.EDGES_17
    for view, (scale, offset) in placements.items():
        for edge in (edges.index((2, 3)), edges.index((4, 5)), edges.index((7, 8))):  # right, left, centre
            parent, child = edges[edge]
            middle = (joints_2d[0, view, parent] + joints_2d[0, view, child]) / 2
            x, y = np.round((middle + 0.5) * scale - 0.5 + offset).astype(int)
            assert looks_like(frame[y, x], outputs.BONE_BGR[edge]), (view, edge, frame[y, x])
    # Background away from the skeleton is the frame's grey; the letterbox above view a is black
    # below the label, which is written at the top left.
    assert np.abs(frame[150, 10] - GREY[0]).max() <= 6 and np.abs(frame[100, 170] - GREY[1]).max() <= 6
    assert frame[26:44, :160].max() <= 8 and frame[6:22, 6:60].max() > 200
    # view b's right forearm (elbow 15 -> wrist 16, wrist NaN) is not drawn: grey where it would be
    scale, offset = placements[1]
    forearm = track_2d()[0, 1, 15] * 0.75 + track_2d()[0, 1, 16] * 0.25
    x, y = np.round((forearm + 0.5) * scale - 0.5 + offset).astype(int)
    assert np.abs(frame[y, x] - GREY[1]).max() <= 6


def test_overlay_refuses_a_frame_of_the_wrong_size(tmp_path):
    with outputs.OverlayVideoWriter(tmp_path / "o.mp4", CAMERAS, FRAME_SIZES, FPS, tile_width=160) as writer:
        with pytest.raises(ValueError, match="cam_b"):
            writer.add([frames_bgr()[0], frames_bgr()[0]], track_2d()[0])


def test_overlay_of_portrait_views_fits_a_full_hd_screen_and_landscape_tiles_stay_480_wide(tmp_path):
    """The overlay's default tiles: four portrait 1080 x 1920 views (the real recording) in a mosaic
    of at most 1920 x 1080 (it was 960 x 1708: encoding it took as long as decoding the videos);
    Human3.6M's 1000 x 1002 views keep 480 px tiles. Planted fault: no fit -> 960 x 1708."""
    portrait = outputs.OverlayVideoWriter(tmp_path / "p.mp4", "abcd", [(1080, 1920)] * 2 + [(1088, 1920)] * 2, FPS)
    square = outputs.OverlayVideoWriter(tmp_path / "s.mp4", "abcd", [(1000, 1002)] * 4, FPS)
    portrait.close()
    square.close()
    assert portrait.size == (608, 1080) and square.tile_size[0] == 480 and square.size == (960, 960)


def test_overlay_shrinks_a_real_frame_as_an_area_average_would_and_takes_shrunk_tiles(tmp_path):
    """predict shrinks each frame into its tile as it decodes it (halved by averaging, then
    bilinear: an area resize of a 1080 x 1920 frame cost twice its decoding). On a frame of the
    real recording the tile stays within 1 grey level (mean) of OpenCV's area resize, and a video
    written from the shrunk tiles equals one written from the full frames. Planted fault: a
    nearest-neighbour shrink -> 2.7 levels off."""
    path = real_recording.folder_or_skip() / "videos" / "cam01.mp4"
    frame = next(video_io.stream_frames(path, [50])).copy()
    size = frame.shape[1::-1]
    paths = tmp_path / "full.mp4", tmp_path / "shrunk.mp4"
    with outputs.OverlayVideoWriter(paths[0], ["cam01"], [size], FPS) as full, \
            outputs.OverlayVideoWriter(paths[1], ["cam01"], [size], FPS) as shrunk:
        tile = shrunk.shrink(0, frame)
        _, _, width, height = shrunk.view_box(0)
        assert tile.shape == (height, width, 3)
        area = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        assert np.abs(tile.astype(int) - area).mean() <= 1.0
        joints = np.full((1, 17, 2), np.nan)
        full.add([frame], joints)
        shrunk.add([tile], joints)
    first, second = read_video(paths[0]), read_video(paths[1])
    assert len(first) == 1 and np.array_equal(first[0], second[0])


# --------------------------------------------------------------------------- 3D skeleton video

def test_skeleton_video_draws_joints_where_its_camera_projects_them_over_the_floor(tmp_path):
    track = track_3d()
    shown = track.copy()
    shown[3, 16] = np.nan  # a lost joint is left out, not drawn somewhere
    path = tmp_path / "skeleton_3d.mp4"
    with outputs.SkeletonVideoWriter.from_track(path, shown, FPS, up=[0, 0, 2], size=(320, 240)) as writer:
        for t in range(len(FRAMES)):
            writer.add(shown[t], label=f"frame {FRAMES[t]}")
    video = read_video(path)
    assert len(video) == 8 and video[0].shape == (240, 320, 3)
    assert writer.floor == pytest.approx(track[:, [3, 6], 2].min())  # the lowest ankle
    pixels = geometry.project(track, writer.camera, distort=False)
    # the whole track is in the picture, and up is up in it
    assert (pixels > 5).all() and (pixels[..., 0] < 315).all() and (pixels[..., 1] < 235).all()
    assert (pixels[:, 10, 1] < pixels[:, 3, 1] - 50).all()
    for t in (0, 7):
        for joint in (10, 13, 16):  # head (centre), left wrist, right wrist: ends of the skeleton
            x, y = np.round(pixels[t, joint]).astype(int)
            assert looks_like(video[t][y, x], outputs.JOINT_BGR[joint]), (t, joint, video[t][y, x])
    # Grid crossings on the floor's 0.5 m lattice, away from the person, are lighter than the background.
    crossings = np.array([[x, y, writer.floor] for x in np.arange(-1500, 2001, 500.0)
                          for y in (-1000.0, 1000.0)])
    crossing_px = geometry.project(crossings, writer.camera, distort=False)
    clear = [(u, v) for u, v in crossing_px if 5 < u < 315 and 5 < v < 235
             and np.linalg.norm(pixels[0] - [u, v], axis=1).min() > 20]
    assert len(clear) >= 4
    for u, v in clear:
        pixel = video[0][int(round(v)), int(round(u))]
        assert pixel.min() > outputs.BACKGROUND_BGR[0] + 30 and np.ptp(pixel) < 20, (u, v, pixel)
