"""predict's videos (``rig.renderings``), drawn from known arrays and decoded back: the overlay of
the views and the 3D skeleton over its floor."""
import cv2
import numpy as np
import pytest
from common import geometry
from common import skeleton
from common import video_io
from rig import renderings
from prediction_track import CAMERAS, FPS, FRAMES, track_2d, track_3d
import real_recording

# Two views of different shapes: a landscape 320 x 240 and a portrait 240 x 320.
FRAME_SIZES = ((320, 240), (240, 320))
GREY = (96, 128)  # each view's uniform background level


def frames_bgr() -> list:
    return [np.full((height, width, 3), level, np.uint8) for (width, height), level in zip(FRAME_SIZES, GREY)]


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
    assert [renderings.grid_columns(n) for n in (1, 2, 4, 5, 9, 11)] == [1, 2, 2, 3, 3, 4]


def test_overlay_draws_each_views_skeleton_where_its_joints_are(tmp_path):
    joints_2d = track_2d()
    joints_2d[:, 1, 16] = np.nan  # view b loses the right wrist: its forearm must not be drawn
    path = tmp_path / "overlay.mp4"
    with renderings.OverlayVideoWriter(path, CAMERAS, FRAME_SIZES, FPS, tile_width=160) as writer:
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
            assert looks_like(frame[y, x], renderings.BONE_BGR[edge]), (view, edge, frame[y, x])
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
    with renderings.OverlayVideoWriter(tmp_path / "o.mp4", CAMERAS, FRAME_SIZES, FPS, tile_width=160) as writer:
        with pytest.raises(ValueError, match="cam_b"):
            writer.add([frames_bgr()[0], frames_bgr()[0]], track_2d()[0])


def test_overlay_of_portrait_views_fits_a_full_hd_screen_and_landscape_tiles_stay_480_wide(tmp_path):
    """The overlay's default tiles: four portrait 1080 x 1920 views (the real recording) in a mosaic
    of at most 1920 x 1080 (it was 960 x 1708: encoding it took as long as decoding the videos);
    Human3.6M's 1000 x 1002 views keep 480 px tiles. Planted fault: no fit -> 960 x 1708."""
    portrait = renderings.OverlayVideoWriter(tmp_path / "p.mp4", "abcd", [(1080, 1920)] * 2 + [(1088, 1920)] * 2, FPS)
    square = renderings.OverlayVideoWriter(tmp_path / "s.mp4", "abcd", [(1000, 1002)] * 4, FPS)
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
    with renderings.OverlayVideoWriter(paths[0], ["cam01"], [size], FPS) as full, \
            renderings.OverlayVideoWriter(paths[1], ["cam01"], [size], FPS) as shrunk:
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
    with renderings.SkeletonVideoWriter.from_track(path, shown, FPS, up=[0, 0, 2], size=(320, 240)) as writer:
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
            assert looks_like(video[t][y, x], renderings.JOINT_BGR[joint]), (t, joint, video[t][y, x])
    # Grid crossings on the floor's 0.5 m lattice, away from the person, are lighter than the background.
    crossings = np.array([[x, y, writer.floor] for x in np.arange(-1500, 2001, 500.0)
                          for y in (-1000.0, 1000.0)])
    crossing_px = geometry.project(crossings, writer.camera, distort=False)
    clear = [(u, v) for u, v in crossing_px if 5 < u < 315 and 5 < v < 235
             and np.linalg.norm(pixels[0] - [u, v], axis=1).min() > 20]
    assert len(clear) >= 4
    for u, v in clear:
        pixel = video[0][int(round(v)), int(round(u))]
        assert pixel.min() > renderings.BACKGROUND_BGR[0] + 30 and np.ptp(pixel) < 20, (u, v, pixel)
