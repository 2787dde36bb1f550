"""predict's output files (``rig.exports``), written from known arrays and read back: npz, CSV, TRC."""
import csv

import numpy as np
import pytest
from common import skeleton
from rig import exports
from prediction_track import CAMERAS, FPS, FRAMES, track_2d, track_3d


# --------------------------------------------------------------------------- npz, CSV

def test_npz_loads_without_pickle_with_shapes_dtypes_and_values(tmp_path):
    joints_3d, joints_2d = track_3d(), track_2d()
    joints_3d[2, 5] = np.nan
    status = np.array(["found", "smoothed"] * 4, dtype=object)  # object input: stored as unicode
    path = exports.write_npz(tmp_path / "predictions.npz", joints_3d, joints_2d, FRAMES, list(CAMERAS),
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
        exports.write_npz(tmp_path / "a.npz", track_3d(), track_2d()[:, :1], FRAMES, CAMERAS)
    with pytest.raises(ValueError, match="frames"):
        exports.write_npz(tmp_path / "a.npz", track_3d(), track_2d(), FRAMES[:-1], CAMERAS)
    with pytest.raises(ValueError, match="replace"):
        exports.write_npz(tmp_path / "a.npz", track_3d(), track_2d(), FRAMES, CAMERAS, joint_names=["x"])


def test_csv_reads_back_as_the_arrays(tmp_path):
    joints_3d, joints_2d = track_3d(), track_2d()
    joints_2d[3, 1, 16] = np.nan
    subject, sequence = ["S9"] * 8, [f"Walking {t % 2 + 1}" for t in range(8)]
    path = exports.write_csv(tmp_path / "predictions.csv", joints_3d, joints_2d, FRAMES, CAMERAS,
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
    path = exports.write_csv(tmp_path / "p.csv", track_3d(), track_2d(), FRAMES, CAMERAS)
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
    exports.write_trc(path, joints_3d, FRAMES, FPS)
    header, names, frames, times, values = read_trc(path)
    assert header == {"DataRate": "10", "CameraRate": "50", "NumFrames": "8", "NumMarkers": "17",
                      "Units": "m", "OrigDataRate": "50", "OrigDataStartFrame": "0", "OrigNumFrames": "8"}
    assert names == list(exports.TRC_MARKER_NAMES) and names[0] == "Hip" and names[10] == "Head"
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
        exports.write_trc(tmp_path / "p.trc", track_3d(), FRAMES[::-1], FPS)

