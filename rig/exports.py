"""Predictions as the files a user opens: arrays in, files out; no TensorFlow, no drawing.

T frames, V cameras, the 17 joints of ``skeleton.J17``, for predict and test mode:

* ``write_npz`` -> ``predictions.npz``: every array, loadable with ``np.load`` without pickle;
* ``write_csv`` -> ``predictions.csv``: a row per (frame, joint), for spreadsheets and pandas;
* ``write_trc`` -> ``predictions.trc``: the marker file OpenSim and pose2sim read.

Units: 3D joints in millimetres in the calibration's world frame; 2D joints in pixels of each
full frame as the image shows them (distorted), pixel centres at integer coordinates
(``h36m_utils``). A joint that could not be predicted is NaN: the files leave it blank. The videos
drawn from the same arrays are ``renderings``'.
"""
from __future__ import annotations

import csv
import os

import numpy as np
from common import skeleton

NUM_JOINTS = len(skeleton.J17)


# TRC marker names: pose2sim's names where pose2sim's skeletons (HALPE_26, COCO_17, BODY_25) have
# the same point, so its OpenSim marker sets and IK set-ups match them by name; Human3.6M's own
# names for its two trunk points pose2sim has no marker for (Spine, Thorax). Order of J17.
TRC_MARKER_NAMES = ("Hip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "Spine", "Thorax",
                    "Neck", "Head", "LShoulder", "LElbow", "LWrist", "RShoulder", "RElbow", "RWrist")
TRC_DECIMALS = 6  # metres: 1 micrometre
CSV_DECIMALS = 3  # mm and px


def checked(name: str, array, shape: tuple) -> np.ndarray:
    """``array`` as a numpy array, or ValueError when its shape is not ``shape`` (None: any size)."""
    array = np.asarray(array)
    if array.ndim != len(shape) or any(want is not None and have != want
                                       for have, want in zip(array.shape, shape)):
        expected = ", ".join("any" if size is None else str(size) for size in shape)
        raise ValueError(f"{name} has shape {array.shape}; expected ({expected})")
    return array


def _predictions(joints_3d, joints_2d, frames, cameras) -> tuple[np.ndarray, ...]:
    """The four arrays every file holds, checked against each other: (T, 17, 3), (T, V, 17, 2), (T,), (V,)."""
    cameras = _unicode(checked("cameras", cameras, (None,)))
    joints_3d = checked("joints_3d", joints_3d, (None, NUM_JOINTS, 3)).astype(np.float64)
    count = len(joints_3d)
    joints_2d = checked("joints_2d", joints_2d, (count, len(cameras), NUM_JOINTS, 2)).astype(np.float64)
    frames = checked("frames", frames, (count,)).astype(np.int64)
    return joints_3d, joints_2d, frames, cameras


def _unicode(values) -> np.ndarray:
    """Text as fixed-width unicode: ``np.load`` reads it without pickle (object arrays need pickle)."""
    return np.asarray(values).astype(str)


def _stored(array) -> np.ndarray:
    array = np.asarray(array)
    return _unicode(array) if array.dtype.kind in "OSU" else array


def write_npz(path, joints_3d, joints_2d, frames, cameras, root=None, **extra) -> str:
    """Write the predictions as one ``.npz`` (compressed) that ``np.load(path)`` opens without pickle.

    Stores ``joints_3d`` (T, 17, 3) float64 world mm (the calibration's frame and origin);
    ``joints_2d`` (T, V, 17, 2) float64 pixels of each full frame as the image shows them
    (distorted, pixel centres at integers); ``frames`` (T,) int64 frame indices in the videos;
    ``cameras`` (V,) camera names; ``root`` (T, 3) float64 world mm, the root the crops were cut
    around (left out when None); ``joint_names`` (17,) ``skeleton.JOINT_NAMES_17``; and every
    ``extra`` array as given (e.g. ``root_status`` (T,) str, ``subject`` / ``sequence`` (N,) str in
    test mode, ``fps`` ()). Text is stored as fixed-width unicode, never as objects. NaN marks a
    joint that could not be predicted. Returns ``path``.
    """
    joints_3d, joints_2d, frames, cameras = _predictions(joints_3d, joints_2d, frames, cameras)
    arrays = {"joints_3d": joints_3d, "joints_2d": joints_2d, "frames": frames, "cameras": cameras,
              "joint_names": _unicode(skeleton.JOINT_NAMES_17)}
    clashes = sorted(set(extra) & {*arrays, "root"})
    if clashes:
        raise ValueError(f"extra arrays {clashes} would replace the predictions' own; rename them")
    if root is not None:
        arrays["root"] = checked("root", root, (len(frames), 3)).astype(np.float64)
    arrays.update({name: _stored(value) for name, value in extra.items()})
    with open(path, "wb") as handle:  # a handle: np.savez would append ".npz" to a path without it
        np.savez_compressed(handle, **arrays)
    return str(path)


def _formatted(values: np.ndarray, decimals: int) -> np.ndarray:
    """Numbers as text with ``decimals`` decimals, same shape; a NaN (or inf) as an empty field."""
    text = np.char.mod(f"%.{decimals}f", values)
    return np.where(np.isfinite(values), text, "")


def write_csv(path, joints_3d, joints_2d, frames, cameras, subject=None, sequence=None) -> str:
    """Write the predictions as a CSV with a header row and a row per (frame, joint): T x 17 rows.

    Columns: [``subject``, ``sequence``,] ``frame``, ``joint`` (index 0..16), ``joint_name``,
    ``x_mm``, ``y_mm``, ``z_mm`` (world mm), then ``u_<camera>``, ``v_<camera>`` for every camera
    (full-frame pixels as the image shows them). Arrays as in ``write_npz``; ``subject`` and
    ``sequence`` (T,) name each row's recording (test mode), and their column is left out when
    None. Numbers have 3 decimals; a NaN is an empty field. Returns ``path``.
    """
    joints_3d, joints_2d, frames, cameras = _predictions(joints_3d, joints_2d, frames, cameras)
    labels = {name: _unicode(checked(name, values, (len(frames),)))
              for name, values in (("subject", subject), ("sequence", sequence)) if values is not None}
    xyz = _formatted(joints_3d, CSV_DECIMALS)
    # (T, V, 17, 2) -> (T, 17, V * 2): u, v of camera 0, then of camera 1, ...
    uv = _formatted(joints_2d, CSV_DECIMALS).transpose(0, 2, 1, 3).reshape(len(frames), NUM_JOINTS, -1)
    header = [*labels, "frame", "joint", "joint_name", "x_mm", "y_mm", "z_mm"]
    header += [f"{axis}_{camera}" for camera in cameras for axis in "uv"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for t, frame in enumerate(frames):
            leading = [values[t] for values in labels.values()] + [int(frame)]
            writer.writerows([*leading, joint, name, *xyz[t, joint], *uv[t, joint]]
                             for joint, name in enumerate(skeleton.JOINT_NAMES_17))
    return str(path)


def zup_to_yup(points: np.ndarray) -> np.ndarray:
    """(..., 3) Z-up -> Y-up as pose2sim turns them (``zup2yup``): (X, Y, Z) -> (Y, Z, X), a rotation."""
    return np.asarray(points)[..., [1, 2, 0]]


def write_trc(path, joints_3d, frames, fps: float) -> str:
    """Write the 3D joints as an OpenSim marker file (``.trc``), laid out as pose2sim writes it.

    joints_3d: (T, 17, 3) world mm; frames: (T,) increasing frame indices in the videos; fps: the
    videos' frame rate. The layout of pose2sim's ``make_trc`` (Pose2Sim/triangulation.py), tabs
    between fields::

        PathFileType  4  (X/Y/Z)  <file name>
        DataRate  CameraRate  NumFrames  NumMarkers  Units  OrigDataRate  OrigDataStartFrame  OrigNumFrames
        <rate>  <fps>  <T>  17  m  <fps>  <first frame>  <T>
        Frame#  Time  Hip  (two empty fields)  RHip  ...  RWrist  (two empty fields)
        (two empty fields)  X1  Y1  Z1  X2  ...  Z17
        <frame>  <frame / fps>  <X1>  <Y1>  <Z1>  ...          one line per frame

    Axes and units, converted as pose2sim converts its triangulation: the calibration's world
    frame in metres (our mm / 1000), with its Z-up axes renamed to OpenSim's Y-up by pose2sim's
    ``zup2yup``: X_trc = Y_world, Y_trc = Z_world, Z_trc = X_world (a rotation, no mirror), so a
    Z-up calibration (pose2sim's board on the floor, Human3.6M's) stands upright in OpenSim; a
    calibration whose up is another axis must be turned to Z-up first. Marker names are
    ``TRC_MARKER_NAMES``. Frame# is the video frame index and Time = frame / fps, as pose2sim
    writes them; DataRate is the rate of the rows (fps over the frame step, e.g. 10 for every 5th
    frame at 50 fps) and CameraRate / OrigDataRate the videos'. Numbers have 6 decimals (1 um); a
    NaN joint is left blank (pose2sim writes pandas' empty NaN), a missing marker to OpenSim.
    Returns ``path``.
    """
    joints_3d = checked("joints_3d", joints_3d, (None, NUM_JOINTS, 3)).astype(np.float64)
    frames = checked("frames", frames, (len(joints_3d),)).astype(np.int64)
    steps = np.diff(frames)
    if len(frames) == 0 or np.any(steps <= 0):
        raise ValueError("write_trc needs at least one frame, with increasing frame indices")
    data_rate = fps / (steps.min() if len(steps) else 1)
    coordinates = _formatted(zup_to_yup(joints_3d / 1000.0).reshape(len(frames), -1), TRC_DECIMALS)
    names = TRC_MARKER_NAMES
    header = [
        ["PathFileType", "4", "(X/Y/Z)", os.path.basename(str(path))],
        ["DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
         "OrigDataStartFrame", "OrigNumFrames"],
        [_number(data_rate), _number(fps), str(len(frames)), str(len(names)), "m", _number(fps),
         str(frames[0]), str(len(frames))],
        # a marker's name heads its X column; its Y and Z columns have none
        ["Frame#", "Time", *(field for name in names for field in (name, "", ""))],
        ["", "", *(f"{axis}{k}" for k in range(1, len(names) + 1) for axis in "XYZ")],
    ]
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for fields in header:
            handle.write("\t".join(fields) + "\n")
        for frame, row in zip(frames, coordinates):
            handle.write("\t".join([str(frame), f"{frame / fps:.{TRC_DECIMALS}f}", *row]) + "\n")
    return str(path)


def _number(value: float) -> str:
    """A rate as pose2sim prints it: ``50`` for a whole number, else the shortest exact text."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
