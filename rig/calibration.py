"""Calibration files as the field writes them -> the repo's cameras (``geometry.Camera``, mm).

    rig = load_calibration("Calib.toml")                           # pose2sim / anipose
    rig = load_calibration("calibration/")                         # EasyMocap intri.yml + extri.yml
    rig = load_calibration("Calib.qca.txt")                        # Qualisys
    rig = load_calibration("camera-parameters.json", subject="S1")  # the repo's camera JSON
    rig = with_image_sizes(rig, {"cam_01": (1088, 1920), ...})      # the videos' sizes

The format comes from the path:

* ``.toml``, pose2sim / anipose: one table per camera (``[cam_01]``) with ``name``, ``size``
  [width, height], ``matrix`` 3x3, ``distortions`` [k1, k2, p1, p2] or [k1, k2, p1, p2, k3],
  ``rotation`` (Rodrigues vector, world->camera), ``translation``. ``[metadata]`` is ignored;
  ``fisheye = true`` is refused. Default unit: METRES (what both tools write).
* a folder holding ``intri.yml`` + ``extri.yml`` (or either file), EasyMocap's OpenCV
  FileStorage pair: ``names``, ``K_<name>``, ``dist_<name>`` 1x5 [k1, k2, p1, p2, k3] in
  intri.yml; ``names``, ``R_<name>`` (Rodrigues 3x1) and/or ``Rot_<name>`` (3x3), ``T_<name>``
  3x1 in extri.yml. Only cameras in both files are used (``Rig.notes`` names the others). No
  image size: width = height = 0 until ``with_image_sizes``. Default unit: METRES.
* ``.qca.txt`` (or ``.qca``), a Qualisys calibration (XML): per ``<camera serial=...>``, ``transform``
  holds the camera centre ``x, y, z`` and a rotation ``r11 .. r33`` in Qualisys' camera axes (y up,
  looking along -z: OpenCV's camera axes are these with y and z flipped, ``R = diag(1, -1, -1) Q``);
  ``intrinsic`` holds ``focalLengthU/V`` and ``centerPointU/V`` in sensor units of 1/64 pixel and
  the lens terms ``radialDistortion1..3``, ``tangentalDistortion1..2``, read as pose2sim reads them
  (divided by 64, what its ``Calib.toml`` holds); the image size from ``fov_video``. Default unit:
  MILLIMETRES (the centre).
* ``.json``, the repo's camera file (``h36m_utils.load_cameras``), ONE rig = one subject key
  under ``extrinsics`` (``subject=`` picks one of several). Default unit: MILLIMETRES.

Cameras of the first two formats use OpenCV's lens model exactly (``distortion_model="opencv"``;
its tangential terms are not Human3.6M's). Rational and thin-prism coefficients (8 or more) are
accepted only when the extra ones are zero. Translations are converted to millimetres from the
format's default unit or ``units``; a rig whose cameras are not a capture room apart in that unit
(0.2 to 50 m) is refused with the unit that would fit and the ``--calibration-units`` flag.

The writers (``write_toml``, ``write_easymocap``, ``write_json``) produce the same layouts, so a
rig converts between them; floats are written exactly.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import pathlib
import re
import tomllib
from xml.etree import ElementTree

import cv2
import numpy as np

import h36m_utils
from common import geometry

UNIT_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0}
UNIT_NAMES = {"mm": "millimetres", "cm": "centimetres", "m": "metres"}
DEFAULT_UNIT = {"toml": "m", "easymocap": "m", "qualisys": "mm", "json": "mm"}
FORMAT_NAMES = {"toml": "pose2sim / anipose TOML", "easymocap": "EasyMocap intri.yml + extri.yml",
                "qualisys": "Qualisys .qca.txt", "json": "the repo's camera JSON"}
FORMATS_HELP = ("a pose2sim / anipose .toml file, EasyMocap's intri.yml + extri.yml (their folder or "
                "either file), a Qualisys .qca.txt, or the repo's camera .json")
# Qualisys writes focal lengths, principal points and lens terms in sensor units of 1/64 pixel.
QUALISYS_SUBPIXELS = 64.0
# Qualisys' camera axes (y up, looking along -z) -> OpenCV's (y down, looking along +z).
QUALISYS_TO_OPENCV = np.diag([1.0, -1.0, -1.0])
UNITS_FLAG = "--calibration-units"
# The typical distance between two cameras of a capture room, mm: a desk rig to a sports hall.
PLAUSIBLE_SPACING_MM = (200.0, 50_000.0)
TYPICAL_SPACING_MM = 3000.0
# How far EasyMocap's two rotations (R_ Rodrigues, Rot_ matrix) may differ, per matrix entry:
# both are written with 6 decimals, so they agree to about 1e-6 when they are the same rotation.
ROTATION_AGREEMENT = 1e-4
EASYMOCAP_FILES = ("intri.yml", "extri.yml")


@dataclasses.dataclass(frozen=True)
class Rig:
    """The cameras of one calibration file, in the file's order.

    cameras: tuple of ``geometry.Camera`` (``t`` in mm; width = height = 0 where the file holds
    no image size); source: the path read; format: "toml" | "easymocap" | "qualisys" | "json"; unit: the unit
    the file's translations were read in; notes: what was left out, one sentence each.
    """

    cameras: tuple
    source: str
    format: str
    unit: str
    notes: tuple = ()

    @property
    def names(self) -> tuple:
        return tuple(camera.id for camera in self.cameras)


# --------------------------------------------------------------------------- reading

def load_calibration(path, units: str | None = None, subject: str | None = None) -> Rig:
    """Read a calibration file (format from the path, see the module doc) into a ``Rig`` in mm.

    units: "mm", "cm" or "m", the unit of the file's translations (default: the format's);
    subject: which rig of a camera JSON holding several. Raises ValueError naming the file on
    anything it cannot read exactly, and when the rig's scale contradicts the unit.
    """
    if units is not None and units not in UNIT_TO_MM:
        raise ValueError(f"Unknown calibration unit {units!r}; choose one of {', '.join(UNIT_TO_MM)}.")
    format_, files = detect_format(path)
    if subject is not None and format_ != "json":
        raise ValueError(f"subject={subject!r} only picks a rig of the repo's camera JSON; "
                         f"{path} is {FORMAT_NAMES[format_]}.")
    unit = units or DEFAULT_UNIT[format_]
    if format_ == "toml":
        cameras, notes = _read_toml(files[0]), ()
    elif format_ == "easymocap":
        cameras, notes = _read_easymocap(*files)
    elif format_ == "qualisys":
        cameras, notes = _read_qualisys(files[0]), ()
    else:
        cameras, notes = _read_json(files[0], subject), ()
    cameras = [dataclasses.replace(camera, t=camera.t * UNIT_TO_MM[unit]) for camera in cameras]
    source = str(path)
    repeated = sorted(name for name, count in collections.Counter(c.id for c in cameras).items() if count > 1)
    if repeated:  # videos are matched to cameras by name
        raise ValueError(f"Calibration {source} names several cameras {', '.join(repeated)}: give each "
                         "camera its own name.")
    check_scale(cameras, source, unit)
    return Rig(cameras=tuple(cameras), source=source, format=format_, unit=unit, notes=tuple(notes))


def detect_format(path) -> tuple[str, tuple]:
    """(format, the file paths to read) for a calibration path; clear errors for anything else."""
    path = pathlib.Path(path)
    if path.is_dir():
        intri, extri = (path / name for name in EASYMOCAP_FILES)
        if intri.is_file() and extri.is_file():
            return "easymocap", (intri, extri)
        raise ValueError(f"Calibration folder {path} does not hold EasyMocap's intri.yml + extri.yml. "
                         f"Pass {FORMATS_HELP}.")
    if not path.is_file():
        raise FileNotFoundError(f"Calibration file not found: {path}. Pass {FORMATS_HELP}.")
    if path.name in EASYMOCAP_FILES:
        intri, extri = (path.with_name(name) for name in EASYMOCAP_FILES)
        partner = extri if path == intri else intri
        if not partner.is_file():
            raise FileNotFoundError(f"{path} is half of an EasyMocap calibration: {partner} is missing "
                                    "(EasyMocap keeps intri.yml and extri.yml side by side).")
        return "easymocap", (intri, extri)
    if path.name.lower().endswith((".qca.txt", ".qca")):
        return "qualisys", (path,)
    suffix = path.suffix.lower()
    if suffix in (".toml", ".json"):
        return suffix[1:], (path,)
    raise ValueError(f"Calibration file {path}: unknown format ({suffix or 'no extension'}). "
                     f"Pass {FORMATS_HELP}.")


def _read_toml(path: pathlib.Path) -> list:
    """The cameras of a pose2sim / anipose TOML file, translations as written."""
    try:
        with open(path, "rb") as handle:
            content = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"Calibration file {path} is not valid TOML ({error}).") from error
    cameras = [_toml_camera(key, table, path) for key, table in content.items()
               if key != "metadata" and isinstance(table, dict)]
    if not cameras:
        raise ValueError(f"Calibration file {path} holds no camera table ([cam_1] with name, size, "
                         "matrix, distortions, rotation, translation).")
    return cameras


def _toml_camera(key: str, table: dict, path: pathlib.Path) -> geometry.Camera:
    where = f"{path}, camera [{key}]"
    if table.get("fisheye", False):
        raise ValueError(f"{where} is a fisheye camera (fisheye = true): only OpenCV's pinhole lens "
                         "model is supported. Calibrate it with the pinhole model, or undistort its "
                         "videos first.")
    missing = [field for field in ("size", "matrix", "distortions", "rotation", "translation")
               if field not in table]
    if missing:
        raise ValueError(f"{where} has no {', '.join(missing)}: a pose2sim / anipose camera needs "
                         "name, size, matrix, distortions, rotation and translation.")
    return opencv_camera(str(table.get("name", key)), table["matrix"], table["distortions"],
                         _rodrigues(table["rotation"], where), table["translation"],
                         _image_size(table["size"], where), where)


def _read_qualisys(path: pathlib.Path) -> list:
    """The active cameras of a Qualisys ``.qca.txt`` (XML), translations in the file's unit."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"Calibration file {path} is not valid XML ({error}): not a Qualisys .qca.txt.") from error
    cameras = [_qualisys_camera(node, node.get("serial") or f"camera{index + 1}", path)
               for index, node in enumerate(root.iter("camera")) if node.get("active", "1") != "0"]
    if not cameras:
        raise ValueError(f"Calibration file {path} holds no active <camera> (Qualisys: <cameras><camera serial=... "
                         "active=\"1\"> with <transform> and <intrinsic>).")
    return cameras


def _qualisys_camera(node, name: str, path: pathlib.Path) -> geometry.Camera:
    where = f"{path}, camera {name}"
    transform, intrinsic, view = node.find("transform"), node.find("intrinsic"), node.find("fov_video")
    if transform is None or intrinsic is None or view is None:
        raise ValueError(f"{where} lacks <transform>, <intrinsic> or <fov_video>: not a Qualisys camera.")

    def numbers(element, keys):
        try:
            return np.array([float(element.attrib[key]) for key in keys])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{where}: <{element.tag}> has no number {error}.") from error

    rotation = _as_rotation(QUALISYS_TO_OPENCV @ numbers(transform, [f"r{i}{j}" for i in "123" for j in "123"])
                            .reshape(3, 3), where)
    centre = numbers(transform, "xyz")
    fx, fy, cx, cy = numbers(intrinsic, ["focalLengthU", "focalLengthV", "centerPointU", "centerPointV"]) / QUALISYS_SUBPIXELS
    k1, k2, k3, p1, p2 = numbers(intrinsic, ["radialDistortion1", "radialDistortion2", "radialDistortion3",
                                             "tangentalDistortion1", "tangentalDistortion2"]) / QUALISYS_SUBPIXELS
    left, top, right, bottom = numbers(view, ["left", "top", "right", "bottom"])
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return opencv_camera(name, K, [k1, k2, p1, p2, k3], rotation, -rotation @ centre,
                         _image_size([right - left + 1, bottom - top + 1], where), where)


def _read_easymocap(intri_path: pathlib.Path, extri_path: pathlib.Path) -> tuple[list, list]:
    """(the cameras in both files, in intri.yml's order, translations as written; notes)."""
    intri, extri = _open_filestorage(intri_path), _open_filestorage(extri_path)
    try:
        intri_names, extri_names = _names(intri, intri_path), _names(extri, extri_path)
        cameras = [_easymocap_camera(name, intri, extri, intri_path, extri_path)
                   for name in intri_names if name in extri_names]
    finally:
        intri.release()
        extri.release()
    notes = []
    for names, other, has, lacks in ((intri_names, extri_names, "intrinsics", "extri.yml"),
                                     (extri_names, intri_names, "extrinsics", "intri.yml")):
        left_out = [name for name in names if name not in other]
        if left_out:
            notes.append(f"camera(s) {', '.join(left_out)} have {has} but are not in {lacks}: left out")
    if not cameras:
        raise ValueError(f"EasyMocap calibration {intri_path} + {extri_path}: no camera is named in "
                         "both files.")
    return cameras, notes


def _open_filestorage(path: pathlib.Path) -> cv2.FileStorage:
    try:
        storage = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except cv2.error as error:
        raise ValueError(f"{path} is not an OpenCV FileStorage file ({error}).") from error
    if not storage.isOpened():
        raise ValueError(f"{path} could not be opened as an OpenCV FileStorage file.")
    return storage


def _names(storage: cv2.FileStorage, path: pathlib.Path) -> list:
    """The camera names of an EasyMocap file's ``names`` list (strings, numbers allowed)."""
    node = storage.getNode("names")
    if node.empty() or not node.isSeq():
        raise ValueError(f"{path} has no 'names' list: not an EasyMocap intri.yml / extri.yml.")
    items = [node.at(index) for index in range(node.size())]
    return [item.string() if item.isString() else str(int(item.real())) for item in items]


def _matrix_node(storage: cv2.FileStorage, key: str, path: pathlib.Path, required: bool = True):
    matrix = storage.getNode(key).mat()
    if matrix is None and required:
        raise ValueError(f"{path} has no {key} (EasyMocap's layout: names, K_<name>, dist_<name> in "
                         "intri.yml; names, R_<name> or Rot_<name>, T_<name> in extri.yml).")
    return matrix


def _easymocap_camera(name: str, intri, extri, intri_path, extri_path) -> geometry.Camera:
    where = f"{extri_path}, camera {name}"
    rodrigues = _matrix_node(extri, f"R_{name}", extri_path, required=False)
    matrix = _matrix_node(extri, f"Rot_{name}", extri_path, required=False)
    if rodrigues is None and matrix is None:
        raise ValueError(f"{where} has neither R_{name} (Rodrigues) nor Rot_{name} (matrix).")
    rotation = _rodrigues(rodrigues, where) if rodrigues is not None else _as_rotation(matrix, where)
    if rodrigues is not None and matrix is not None:
        difference = np.abs(rotation - _fixed_size(matrix, (3, 3), f"Rot_{name}", where)).max()
        if difference > ROTATION_AGREEMENT:
            raise ValueError(f"{where}: R_{name} and Rot_{name} are different rotations (entries differ "
                             f"by up to {difference:.3g}). Fix or delete the wrong one.")
    return opencv_camera(name, _matrix_node(intri, f"K_{name}", intri_path),
                         _matrix_node(intri, f"dist_{name}", intri_path), rotation,
                         _matrix_node(extri, f"T_{name}", extri_path), (0, 0), where)


# --------------------------------------------------------------------------- values

def opencv_camera(name: str, K, dist, R: np.ndarray, t, size: tuple, where: str) -> geometry.Camera:
    """A Camera with OpenCV's lens model; t in the file's unit; ``where`` names it in errors."""
    k, p = split_opencv_distortion(dist, where)
    return geometry.Camera(R=R, t=_fixed_size(t, (3,), "translation", where),
                             K=_fixed_size(K, (3, 3), "camera matrix", where), k=k, p=p,
                             width=size[0], height=size[1], id=name, distortion_model="opencv")


def split_opencv_distortion(dist, where: str) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's coefficients [k1, k2, p1, p2(, k3(, k4, k5, k6(, s1..s4(, tx, ty))))] -> (k (3,), p (2,)).

    Raises ValueError when the coefficients beyond k3 are not all zero (models not supported).
    """
    values = np.asarray(dist, np.float64).ravel()
    if values.size not in (4, 5, 8, 12, 14):
        raise ValueError(f"{where}: {values.size} distortion coefficients; OpenCV's lens model has 4, 5, "
                         "8, 12 or 14 ([k1, k2, p1, p2, k3, ...]).")
    extra = values[5:]
    if np.any(extra != 0):
        raise ValueError(f"{where}: distortion coefficients beyond k3 are not zero ({extra.tolist()}): "
                         "OpenCV's rational / thin-prism / tilted models are not supported. Calibrate "
                         "with [k1, k2, p1, p2, k3], or undistort the videos first.")
    k3 = values[4] if values.size > 4 else 0.0
    return np.array([values[0], values[1], k3]), values[2:4].copy()


def _fixed_size(value, shape: tuple, what: str, where: str) -> np.ndarray:
    array = np.asarray(value, np.float64)
    if array.size != math.prod(shape):
        raise ValueError(f"{where}: the {what} has {array.size} numbers, expected {shape}.")
    return array.reshape(shape)


def _rodrigues(rotation_vector, where: str) -> np.ndarray:
    """(3, 3) rotation matrix of a Rodrigues vector (3 numbers, any shape)."""
    return cv2.Rodrigues(_fixed_size(rotation_vector, (3, 1), "rotation vector", where))[0]


def _as_rotation(matrix, where: str) -> np.ndarray:
    rotation = _fixed_size(matrix, (3, 3), "rotation matrix", where)
    if np.abs(rotation @ rotation.T - np.eye(3)).max() > ROTATION_AGREEMENT or np.linalg.det(rotation) < 0:
        raise ValueError(f"{where}: the rotation matrix is not a rotation (not orthonormal, or a mirror).")
    return rotation


def _image_size(size, where: str) -> tuple[int, int]:
    values = np.asarray(size, np.float64).ravel()
    if values.size != 2 or np.any(values != np.round(values)) or np.any(values < 0):
        raise ValueError(f"{where}: size {size} is not [width, height] in whole pixels.")
    return int(values[0]), int(values[1])


def _read_json(path: pathlib.Path, subject: str | None) -> list:
    rigs = h36m_utils.load_cameras(str(path))
    if subject is None and len(rigs) != 1:
        raise ValueError(f"Camera file {path} holds {len(rigs)} rigs (subjects {', '.join(rigs) or 'none'}); "
                         "a calibration is one of them: pick it with subject=.")
    if subject is not None and subject not in rigs:
        raise ValueError(f"Camera file {path} has no subject {subject!r}; it holds {', '.join(rigs)}.")
    return list(rigs[subject or next(iter(rigs))].values())


# --------------------------------------------------------------------------- checks

def camera_spacing_mm(cameras) -> float:
    """The median distance between two camera centres, mm (0 for a single camera)."""
    centres = np.array([camera.center for camera in cameras])
    pairs = np.triu_indices(len(centres), 1)
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)[pairs]
    return float(np.median(distances)) if distances.size else 0.0


def check_scale(cameras, source: str, unit: str) -> None:
    """Raise ValueError when the cameras (t in mm, read in ``unit``) are not a room apart.

    The message names the file, the unit assumed, the spacing found, the unit that would make
    it plausible and the ``--calibration-units`` flag. A single camera is not checked.
    """
    spacing = camera_spacing_mm(cameras)
    low, high = PLAUSIBLE_SPACING_MM
    if len(cameras) < 2 or low <= spacing <= high:
        return
    as_written = spacing / UNIT_TO_MM[unit]
    fitting = sorted((other for other in UNIT_TO_MM if low <= as_written * UNIT_TO_MM[other] <= high),
                     key=lambda other: abs(math.log(as_written * UNIT_TO_MM[other] / TYPICAL_SPACING_MM)))
    if fitting:
        best = fitting[0]
        advice = (f"Read in {UNIT_NAMES[best]} they would be {as_written * UNIT_TO_MM[best] / 1000:.3g} m "
                  f"apart: pass {UNITS_FLAG} {best} (units={best!r} in code).")
    else:
        advice = f"No unit ({', '.join(UNIT_TO_MM)}) makes that a capture room: check the translations."
    raise ValueError(
        f"Calibration {source}: read in {UNIT_NAMES[unit]} ({unit}), its cameras are typically "
        f"{as_written:.4g} {unit} = {spacing / 1000:.4g} m apart, not a capture room's {low / 1000:g} to "
        f"{high / 1000:g} m. {advice}")


# A video may be its calibration's image resized (some tools export 1080 wide from a 1088-wide sensor):
# its aspect ratio may differ from the calibration's by at most this share; more is a crop or another camera.
ASPECT_TOLERANCE = 0.03


def resize_factors(calibrated: tuple, actual: tuple, where: str) -> tuple[float, float]:
    """(sx, sy): the width and height ratios of an ``actual`` (width, height) image to the
    ``calibrated`` one; ValueError naming ``where`` when the aspect ratio changes by more than
    ASPECT_TOLERANCE (not a resize of the calibrated image)."""
    sx, sy = actual[0] / calibrated[0], actual[1] / calibrated[1]
    if abs(sx / sy - 1.0) > ASPECT_TOLERANCE:
        raise ValueError(f"{where} is {actual[0]} x {actual[1]} px, but the calibration is for {calibrated[0]} x "
                         f"{calibrated[1]} px images: the aspect ratio differs by {100 * abs(sx / sy - 1):.1f}% (more "
                         f"than {100 * ASPECT_TOLERANCE:g}%), so it is not a resize of the calibrated image. Use the "
                         "videos the calibration was made for, or calibrate the cameras at this size.")
    return sx, sy


def scaled_camera(camera: geometry.Camera, size: tuple[int, int]) -> geometry.Camera:
    """The camera of its image resized to ``size`` (width, height): fx, cx by the width ratio, fy, cy
    by the height ratio, pixel centres kept at integer coordinates (``u' = sx (u + 0.5) - 0.5``)."""
    sx, sy = size[0] / camera.width, size[1] / camera.height
    resize = np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])
    return dataclasses.replace(camera, K=resize @ camera.K, width=int(size[0]), height=int(size[1]))


def with_image_sizes(rig: Rig, sizes: dict) -> Rig:
    """The rig with every camera's image size from ``sizes`` {camera name: (width, height)} px.

    Fills the sizes a file does not hold (0 x 0, EasyMocap). A camera whose file holds another size
    is scaled to the given one when that is a resize of its image (``resize_factors``; ``notes``
    gains one line per scaled camera with its factors); any other size is a ValueError naming both.
    """
    missing = [name for name in rig.names if name not in sizes]
    if missing:
        raise ValueError(f"No image size for camera(s) {', '.join(missing)} of {rig.source}: give one "
                         "video per camera of the calibration.")
    cameras, notes = [], list(rig.notes)
    for camera in rig.cameras:
        width, height = (int(value) for value in sizes[camera.id])
        if (camera.width, camera.height) in ((0, 0), (width, height)):
            cameras.append(dataclasses.replace(camera, width=width, height=height))
            continue
        sx, sy = resize_factors((camera.width, camera.height), (width, height),
                                f"The video of camera {camera.id} (calibration {rig.source})")
        notes.append(f"Camera {camera.id}: its video is {width} x {height} px, the calibration's image "
                     f"{camera.width} x {camera.height}: the camera is scaled to the video, fx and cx by {sx:.4f}, "
                     f"fy and cy by {sy:.4f}.")
        cameras.append(scaled_camera(camera, (width, height)))
    return dataclasses.replace(rig, cameras=tuple(cameras), notes=tuple(notes))


# --------------------------------------------------------------------------- writing

def opencv_distortion(camera: geometry.Camera) -> list:
    """[k1, k2, p1, p2, k3] of a camera, in OpenCV's order; ValueError if OpenCV cannot say it.

    Human3.6M's lens model equals OpenCV's only without tangential terms.
    """
    if camera.distortion_model != "opencv" and np.any(camera.p != 0):
        raise ValueError(f"Camera {camera.id} has Human3.6M's tangential distortion, which OpenCV's "
                         "model cannot express: write it with write_json.")
    return [float(camera.k[0]), float(camera.k[1]), float(camera.p[0]), float(camera.p[1]),
            float(camera.k[2])]


def write_toml(cameras, path, unit: str = "m") -> None:
    """Write ``cameras`` (t in mm) as a pose2sim / anipose TOML file, translations in ``unit``.

    Every camera needs its image size (pose2sim reads it). Floats are written by ``repr``, so
    reading the file back gives the same numbers.
    """
    lines = []
    for camera in cameras:
        if not camera.width or not camera.height:
            raise ValueError(f"Camera {camera.id} has no image size; a TOML calibration needs one "
                             "(fill it with with_image_sizes).")
        rotation = cv2.Rodrigues(camera.R)[0].ravel()
        lines += [f"[{_toml_key(camera.id)}]",
                  f"name = {json.dumps(camera.id)}",
                  f"size = {_toml_value([camera.width, camera.height])}",
                  f"matrix = {_toml_value(camera.K.tolist())}",
                  f"distortions = {_toml_value(opencv_distortion(camera))}",
                  f"rotation = {_toml_value(rotation.tolist())}",
                  f"translation = {_toml_value((camera.t / UNIT_TO_MM[unit]).tolist())}",
                  "fisheye = false", ""]
    lines += ["[metadata]", "adjusted = false", "error = 0.0", ""]
    pathlib.Path(path).write_text("\n".join(lines), encoding="utf-8")


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _toml_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[ " + ", ".join(_toml_value(item) for item in value) + " ]"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return repr(float(value))  # shortest exact form; inf / nan are TOML too


def write_easymocap(cameras, folder, unit: str = "m") -> None:
    """Write ``cameras`` (t in mm) as EasyMocap's ``intri.yml`` + ``extri.yml`` in ``folder``.

    intri.yml: names, K_<name> 3x3, dist_<name> 1x5 [k1, k2, p1, p2, k3]; extri.yml: names,
    R_<name> Rodrigues 3x1, Rot_<name> 3x3, T_<name> 3x1 in ``unit``. No image size (the format
    has none).
    """
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    intri, extri = (cv2.FileStorage(str(folder / name), cv2.FILE_STORAGE_WRITE) for name in EASYMOCAP_FILES)
    try:
        for storage in (intri, extri):
            storage.startWriteStruct("names", cv2.FileNode_SEQ)
            for camera in cameras:
                storage.write("", camera.id)
            storage.endWriteStruct()
        for camera in cameras:
            intri.write(f"K_{camera.id}", camera.K)
            intri.write(f"dist_{camera.id}", np.array([opencv_distortion(camera)]))
            extri.write(f"R_{camera.id}", cv2.Rodrigues(camera.R)[0])
            extri.write(f"Rot_{camera.id}", camera.R)
            extri.write(f"T_{camera.id}", camera.t[:, None] / UNIT_TO_MM[unit])
    finally:
        intri.release()
        extri.release()


def write_json(cameras, path, subject: str = "rig") -> None:
    """Write ``cameras`` (t in mm) as the repo's camera JSON, one rig under the key ``subject``."""
    content = h36m_utils.cameras_json({subject: {camera.id: camera for camera in cameras}})
    pathlib.Path(path).write_text(json.dumps(content, indent=1), encoding="utf-8")
