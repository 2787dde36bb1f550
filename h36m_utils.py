"""Human3.6M's facts: its ids and subjects, its files, the index and its quirks, the splits,
the CDF labels and its camera files.

The camera and lens model live in ``common/geometry.py``, the skeleton in ``common/skeleton.py``
and the metrics in ``common/metrics.py``. Cameras come in the fixed order ``CAMERA_IDS``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import xml.etree.ElementTree as ElementTree

import numpy as np

from common import video_io
from common.geometry import Camera

# --------------------------------------------------------------------------- constants

CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
SUBJECTS = ("S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9", "S10", "S11")
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")

# --------------------------------------------------------------------------- cameras

def image_size(subject: str, camera_id: str) -> tuple[int, int]:
    """(width, height) a subject's video from this camera usually has: a rule of thumb, not a fact.

    1000 wide; 1002 high for cameras 54138969 and 60457274, and for all four cameras of
    S4, S7 and S10; 1000 high otherwise. Only a fallback for ``Camera.width`` / ``height`` when the
    camera file gives no size: crops are cut from the frames as the videos decode them, whatever
    their size.
    """
    tall = camera_id in ("54138969", "60457274") or subject in ("S4", "S7", "S10")
    return 1000, 1002 if tall else 1000


def load_cameras(path: str) -> dict[str, dict[str, Camera]]:
    """Read a camera file: ``cameras[subject][camera_id] -> Camera``.

    Accepts the JSON layout of karfly/human36m-camera-parameters and the official
    ``metadata.xml`` of the Human3.6M code release. A JSON camera may carry an optional
    ``intrinsics[cam].image_size = [width, height]`` (the synthetic set writes it); without it
    the usual video sizes of ``image_size`` are assumed for Human3.6M's cameras (the videos' own
    sizes rule wherever frames are read), and 0 x 0 (unknown: take it from the videos) for any
    other camera id; and an optional
    ``intrinsics[cam].distortion_model`` (``"h36m"``, the default, or ``"opencv"``).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Camera file not found: {path}. Put camera-parameters.json (or the official "
            "metadata.xml) there, or pass its path with --cameras.")
    try:
        if path.lower().endswith(".xml"):
            return _cameras_from_metadata_xml(path)
        with open(path, encoding="utf-8") as handle:
            return _cameras_from_json(json.load(handle))
    except (KeyError, ValueError, TypeError, IndexError, ElementTree.ParseError) as error:
        raise ValueError(
            f"Camera file {path} is not in a known layout ({type(error).__name__}: {error}). "
            "Expected the camera-parameters.json layout (intrinsics/extrinsics) or the "
            "official metadata.xml.") from error


def _cameras_from_json(content: dict) -> dict[str, dict[str, Camera]]:
    cameras = {}
    for subject, per_camera in content["extrinsics"].items():
        cameras[subject] = {}
        for camera_id, extrinsic in per_camera.items():
            intrinsic = content["intrinsics"][camera_id]
            k1, k2, p1, p2, k3 = (float(v) for v in intrinsic["distortion"])
            width, height = intrinsic.get("image_size") or (
                image_size(subject, camera_id) if camera_id in CAMERA_IDS else (0, 0))
            cameras[subject][camera_id] = Camera(
                R=np.asarray(extrinsic["R"], np.float64).reshape(3, 3),
                t=np.asarray(extrinsic["t"], np.float64).reshape(3),
                K=np.asarray(intrinsic["calibration_matrix"], np.float64).reshape(3, 3),
                k=np.array([k1, k2, k3]), p=np.array([p1, p2]),
                width=int(width), height=int(height), id=camera_id,
                distortion_model=intrinsic.get("distortion_model", "h36m"))
    return cameras


def cameras_json(cameras: dict) -> dict:
    """{subject: {camera id: Camera}} -> the layout of the shared camera-parameters.json, as
    ``load_cameras`` reads it back (a dict for ``json.dump``).

    Intrinsics are per camera (shared by subjects: the first subject's are written), with
    ``distortion`` ordered [k1, k2, p1, p2, k3], the extra ``image_size`` [width, height] and, for
    a non-Human3.6M lens, ``distortion_model``; extrinsics per subject, ``t`` in mm.
    """
    first = next(iter(cameras.values()))
    intrinsics = {camera_id: {"calibration_matrix": camera.K.tolist(),
                              "distortion": [*camera.k[:2], *camera.p, camera.k[2]],
                              "image_size": [camera.width, camera.height],
                              **({} if camera.distortion_model == "h36m" else
                                 {"distortion_model": camera.distortion_model})}
                  for camera_id, camera in first.items()}
    extrinsics = {subject: {camera_id: {"R": camera.R.tolist(), "t": camera.t[:, None].tolist()}
                            for camera_id, camera in per_camera.items()}
                  for subject, per_camera in cameras.items()}
    return {"intrinsics": intrinsics, "extrinsics": extrinsics}


def rotation_from_angles(a: float, b: float, c: float) -> np.ndarray:
    """(3, 3) world->camera ``R = Rx(a) @ Ry(b) @ Rz(c)`` from the official release's angles.

    Textbook right-handed elementary rotations; checked against the published JSON (S1,
    camera 54138969) to 1e-13.
    """
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rx @ ry @ rz


def _cameras_from_metadata_xml(path: str) -> dict[str, dict[str, Camera]]:
    w0_text = ElementTree.parse(path).getroot().findtext(".//w0")
    if w0_text is None:
        raise ValueError("no <w0> element")
    w0 = np.array([float(v) for v in w0_text.strip().strip("[]").split()])
    if w0.size != 300:
        raise ValueError(f"<w0> holds {w0.size} numbers, expected 300")
    cameras = {}
    for subject_index, subject in enumerate(SUBJECTS):
        cameras[subject] = {}
        for camera_index, camera_id in enumerate(CAMERA_IDS):
            start = 6 * (camera_index * 11 + subject_index)
            angles, centre = w0[start:start + 3], w0[start + 3:start + 6]
            fx, fy, cx, cy, k1, k2, k3, p1, p2 = w0[264 + 9 * camera_index:264 + 9 * camera_index + 9]
            R = rotation_from_angles(*angles)
            width, height = image_size(subject, camera_id)
            cameras[subject][camera_id] = Camera(
                R=R, t=-R @ centre, K=np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]),
                k=np.array([k1, k2, k3]), p=np.array([p1, p2]),
                width=width, height=height, id=camera_id)
    return cameras


# --------------------------------------------------------------------------- labels

def read_poses(path: str) -> np.ndarray:
    """Read a Human3.6M pose CDF: ``(N, 32, 3)`` world mm (D3) or ``(N, 32, 2)`` pixels (D2).

    Raises ValueError naming the file when it is not a CDF, has no ``Pose`` variable, or its
    width is neither 96 (D3) nor 64 (D2).
    """
    pose = _read_pose_variable(path)
    if pose.ndim == 3 and pose.shape[0] == 1:
        pose = pose[0]
    if pose.ndim != 2 or pose.shape[1] not in (64, 96):
        raise ValueError(
            f"{path}: variable 'Pose' has shape {pose.shape}; expected (1, N, 96) for D3_Positions "
            "or (1, N, 64) for D2_Positions. Is this a Human3.6M pose file?")
    return pose.reshape(len(pose), 32, pose.shape[1] // 32).astype(np.float64)


def pose_length(path: str) -> int:
    """Number of frames in a pose CDF (reads it fully, so a broken file fails here, early)."""
    return len(read_poses(path))


def _read_pose_variable(path: str) -> np.ndarray:
    import cdflib  # imported here: only label reading needs it

    try:
        cdf = cdflib.CDF(path)
    except Exception as error:  # cdflib raises several types for a non-CDF file
        raise ValueError(f"{path}: not a readable CDF file ({error}). Re-extract it from the "
                         "Human3.6M pose archive.") from error
    variables = cdf.cdf_info().zVariables + cdf.cdf_info().rVariables
    if "Pose" not in variables:
        raise ValueError(f"{path}: CDF has no variable 'Pose' (found {variables}). "
                         "Expected a Human3.6M D2_Positions or D3_Positions file.")
    return np.asarray(cdf.varget("Pose"))


# --------------------------------------------------------------------------- data set index

ACTIONS = ("Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing",
           "Purchases", "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking",
           "WalkTogether")
# S1's files use other names for two actions.
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}
# Videos of the official release that are present but damaged, as (subject, file stem, camera). Public
# loaders drop this one by name: anibali/h36m-fetch (process_all.py) blacklists S11, action 2
# (Directions), subaction 2, camera 54138969 ("Video file is corrupted"), and the preprocessing of
# karfly/learnable-triangulation-pytorch maps S11 "Directions-2" to the file stem "Directions" and
# expects that one view to be absent. S11's other trial, "Directions 1", is whole.
DAMAGED_VIDEOS = frozenset({("S11", "Directions", "54138969")})
DEFAULT_S9_LIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "S9_training_vids.txt")


@dataclasses.dataclass(frozen=True)
class Sequence:
    """One recorded sequence: all camera videos and labels of one subject's trial.

    ``name`` is the file stem (``"Directions 1"``), ``action`` the canonical action
    (``"Directions"``); ``videos`` / ``d2_paths`` map camera id -> path in ``CAMERA_IDS``
    order; ``num_frames`` is the common prefix usable in every video and label file.
    """

    subject: str
    action: str
    name: str
    videos: dict
    d3_path: str
    d2_paths: dict
    num_frames: int


REPORT_KINDS = ("missing", "unusable", "skipped", "trimmed", "renamed")
PROBLEM_KINDS = ("missing", "unusable")


@dataclasses.dataclass(frozen=True)
class ReportEntry:
    """One thing the index did to the data: ``kind`` is one of ``REPORT_KINDS``.

    missing: a subject with no file at all; unusable: a sequence with files missing or a video that
    cannot be read (both are holes in the data: ``PROBLEM_KINDS``); skipped: left out by design (an
    ``_ALL`` recording, the S9 list, a video known to be damaged in the release, an action not
    asked for); trimmed: files of different lengths, the common frames used; renamed: an action's
    other name.
    """

    kind: str
    subject: str
    sequence: str
    reason: str


@dataclasses.dataclass
class IndexReport:
    """What ``find_sequences`` found, skipped and trimmed, for the caller to print."""

    entries: list
    num_sequences: int = 0
    num_frames: int = 0

    def of_kind(self, kind: str) -> list:
        return [entry for entry in self.entries if entry.kind == kind]

    def problems(self) -> list:
        """The holes in the data: subjects without files, sequences that cannot be used."""
        return [entry for entry in self.entries if entry.kind in PROBLEM_KINDS]

    def __str__(self) -> str:
        lines = [f"Human3.6M index: {self.num_sequences} sequences, {self.num_frames} frames."]
        for kind in REPORT_KINDS:
            entries = self.of_kind(kind)
            if entries:
                lines.append(f"  {kind} ({len(entries)}):")
                lines += [f"    {e.subject} {e.sequence}: {e.reason}" for e in entries]
        return "\n".join(lines)


def canonical_action(stem: str) -> str:
    """File stem -> canonical action: ``"TakingPhoto 1"`` -> ``"Photo"``."""
    base = stem.rsplit(" ", 1)[0] if stem.rsplit(" ", 1)[-1].isdigit() else stem
    return ACTION_ALIASES.get(base, base)


def _subject_of(path: str) -> str | None:
    """The innermost folder named like a subject (``S1``..``S11``) on the path, if any."""
    for part in reversed(os.path.normpath(path).split(os.sep)[:-1]):
        if part in SUBJECTS:
            return part
    return None


def _walk_files(root: str, suffix: str):
    for folder, _, files in os.walk(root, followlinks=True):
        for file_name in sorted(files):
            if file_name.lower().endswith(suffix):
                yield os.path.join(folder, file_name)


def _index_files(data_dir: str, labels_dir: str):
    """Map (subject, stem) -> {"videos": {cam: path}, "d2": {cam: path}, "d3": path}."""
    found: dict = {}

    def slot(subject, stem):
        return found.setdefault((subject, stem), {"videos": {}, "d2": {}, "d3": None})

    def add(table, key, path):
        if key in table and table[key] != path:
            raise ValueError(f"Two files for the same data: {table[key]} and {path}. "
                             "Remove one copy from the data folders.")
        table[key] = path

    for path in _walk_files(data_dir, ".mp4"):
        subject, parts = _subject_of(path), os.path.basename(path)[:-4].rsplit(".", 1)
        if subject and len(parts) == 2 and parts[1] in CAMERA_IDS:
            add(slot(subject, parts[0])["videos"], parts[1], path)
    for path in _walk_files(labels_dir, ".cdf"):
        subject, kind = _subject_of(path), os.path.basename(os.path.dirname(path))
        stem = os.path.basename(path)[:-4]
        if subject and kind == "D3_Positions":
            entry = slot(subject, stem)
            if entry["d3"] not in (None, path):
                raise ValueError(f"Two files for the same data: {entry['d3']} and {path}. "
                                 "Remove one copy from the label folders.")
            entry["d3"] = path
        elif subject and kind == "D2_Positions" and stem.rsplit(".", 1)[-1] in CAMERA_IDS:
            stem, camera_id = stem.rsplit(".", 1)
            add(slot(subject, stem)["d2"], camera_id, path)
    return found


def read_s9_list(path: str) -> set:
    """The S9 video file names whose labels are usable, one a line."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"S9 video list not found: {path}. It ships with the repo as "
                                "S9_training_vids.txt; pass s9_list=None to use every S9 video.")
    with open(path, encoding="utf-8") as handle:
        return {line.strip() for line in handle if line.strip()}


def find_sequences(data_dir: str, labels_dir: str, subjects, actions=None,
                   s9_list: str | None = DEFAULT_S9_LIST) -> tuple[list, IndexReport]:
    """Index the Human3.6M sequences of ``subjects`` under ``data_dir`` and ``labels_dir``.

    Files are found at any depth (flat ``S1/Videos/...`` or the archives' ``Videos_S1/S1/...``).
    Returns ``(sequences, report)``: the usable sequences, sorted by subject and name, and an
    ``IndexReport`` of everything skipped, trimmed or renamed, with the reason. Nothing is
    dropped without an entry in the report. ``actions`` (canonical names) restricts the actions.
    """
    for folder, what in ((data_dir, "videos"), (labels_dir, "labels")):
        if not os.path.isdir(folder):
            raise FileNotFoundError(
                f"The {what} folder {folder} does not exist. Put the Human3.6M {what} there "
                "(see its README.md), or run `python train_and_test.py --mode demo`, which needs "
                "no download.")
    s9_usable = read_s9_list(s9_list) if s9_list and "S9" in subjects else None
    found = _index_files(data_dir, labels_dir)
    report = IndexReport(entries=[])
    sequences = []
    for subject in subjects:
        stems = sorted(stem for found_subject, stem in found if found_subject == subject)
        if not stems:
            report.entries.append(ReportEntry(
                "missing", subject, "-", f"no videos or labels found under {data_dir} and "
                f"{labels_dir}; download and unpack this subject, or leave it out"))
        for stem in stems:
            sequence = _check_sequence(subject, stem, found[(subject, stem)], actions,
                                       s9_usable, report)
            if sequence is not None:
                sequences.append(sequence)
    report.num_sequences = len(sequences)
    report.num_frames = sum(sequence.num_frames for sequence in sequences)
    return sequences, report


def _check_sequence(subject, stem, files, actions, s9_usable, report):
    """A Sequence for one (subject, stem), or None with the reason added to ``report``."""
    def skip(reason):
        report.entries.append(ReportEntry("skipped", subject, stem, reason))

    def unusable(reason):
        report.entries.append(ReportEntry("unusable", subject, stem, reason))

    if "_ALL" in stem:  # also "Directions_ALL 1"-style names
        return skip("an '_ALL' recording is not an action")
    action = canonical_action(stem)
    if actions is not None and action not in actions:
        return skip(f"action {action} not among the requested actions")
    if action not in ACTIONS:
        return skip(f"unknown action name '{action}' (known: {', '.join(ACTIONS)})")
    if action != stem.split(" ")[0]:
        report.entries.append(ReportEntry("renamed", subject, stem,
                                          f"file name says {stem.split(' ')[0]}, used as {action}"))
    damaged = [c for c in CAMERA_IDS if (subject, stem, c) in DAMAGED_VIDEOS]
    if damaged:  # whether the file is there or not: no protocol uses it
        return skip(f"video of camera {', '.join(damaged)} is damaged in the official release (public "
                    "loaders drop it by name); all 4 views are needed")
    if s9_usable is not None and subject == "S9":
        unlisted = [f"{stem}.{c}.mp4" for c in CAMERA_IDS if f"{stem}.{c}.mp4" not in s9_usable]
        if unlisted:
            return skip(f"not in S9_training_vids.txt (known wrong labels): {', '.join(unlisted)}")
    missing = ([f"video of camera {c}" for c in CAMERA_IDS if c not in files["videos"]]
               + ([] if files["d3"] else ["D3_Positions label"])
               + [f"D2_Positions label of camera {c}" for c in CAMERA_IDS if c not in files["d2"]])
    if missing:
        return unusable(f"missing {', '.join(missing)}; all 4 views and their labels are needed: "
                        "download and unpack them")
    videos = {camera_id: files["videos"][camera_id] for camera_id in CAMERA_IDS}
    lengths = {f"video {c}": video_io.video_frame_count(path) for c, path in videos.items()}
    broken = [videos[name.split()[1]] for name, length in lengths.items() if length <= 0]
    if broken:
        return unusable(f"unreadable video {', '.join(broken)}: re-extract it from the archive")
    lengths["D3 labels"] = pose_length(files["d3"])
    lengths.update({f"D2 labels {c}": pose_length(files["d2"][c]) for c in CAMERA_IDS})
    num_frames = min(lengths.values())
    if max(lengths.values()) != num_frames:
        longer = ", ".join(f"{name} {n}" for name, n in lengths.items() if n != num_frames)
        report.entries.append(ReportEntry(
            "trimmed", subject, stem, f"using the common {num_frames} frames; longer: {longer}"))
    return Sequence(subject, action, stem, videos, files["d3"],
                    {c: files["d2"][c] for c in CAMERA_IDS}, num_frames)


class IncompleteDataError(ValueError):
    """A sequence a run needs is missing or cannot be read (and ``--allow-partial`` was not given)."""


def require_complete(reports, what: str, allow_partial: bool) -> None:
    """Raise ``IncompleteDataError`` naming every hole in ``reports`` (``IndexReport``s) and the fixes,
    unless ``allow_partial``; ``what``: the run, e.g. "the test" or "training"."""
    problems = [entry for report in reports for entry in report.problems()]
    if not problems or allow_partial:
        return
    lines = "\n".join(f"  {e.subject} {e.sequence}: {e.reason}" for e in problems)
    raise IncompleteDataError(
        f"{len(problems)} sequence(s) or subject(s) that {what} needs cannot be used:\n{lines}\nFix the files "
        "(download, unpack or re-extract them), or name only the subjects you have (--train-subjects / "
        "--val-subjects / --test-subjects), or pass --allow-partial to run on the rest: the results then "
        "say what was left out.")


def _names_by_subject(sequences) -> str:
    subjects = dict.fromkeys(sequence.subject for sequence in sequences)
    return "; ".join(f"{subject}: " + ", ".join(s.name for s in sequences if s.subject == subject)
                     for subject in subjects)


def describe_sequences(used: dict, reports) -> str:
    """One block: the sequences each purpose uses (``used``: {purpose: [Sequence]}, e.g. training and
    validation) and everything the index left out, trimmed or renamed (``reports``), with the reasons."""
    lines = ["Human3.6M index: the sequences used and left out, and why"]
    for purpose, sequences in used.items():
        frames = sum(sequence.num_frames for sequence in sequences)
        lines.append(f"  {purpose}: {len(sequences)} sequences, {frames} frames"
                     + (f" ({_names_by_subject(sequences)})" if sequences else ""))
    entries = [entry for report in reports for entry in report.entries]
    titles = {"missing": "left out, subject not found", "unusable": "left out, files missing or unreadable",
              "skipped": "left out by design", "trimmed": "trimmed", "renamed": "renamed"}
    for kind in REPORT_KINDS:
        chosen = [entry for entry in entries if entry.kind == kind]
        if chosen:
            lines.append(f"  {titles[kind]} ({len(chosen)}):")
            lines += [f"    {e.subject} {e.sequence}: {e.reason}" for e in chosen]
    return "\n".join(lines)


def trial_number(name: str) -> int:
    """The trial number at the end of a sequence name (``"Directions 2"`` -> 2); 0 when there is none."""
    last = name.rsplit(" ", 1)[-1]
    return int(last) if " " in name and last.isdigit() else 0


def hold_out_last_trials(sequences, subjects) -> tuple[list, list]:
    """Split ``sequences`` into (kept, held out): of each subject in ``subjects``, the last trial
    of every action (by trial number) is held out; every other sequence is kept.

    With Human3.6M's two trials per action this holds out half of a subject's recordings: whole
    sequences the model never trains on, for validation without touching the test subjects.
    """
    last = {}
    for sequence in sequences:
        if sequence.subject in subjects:
            key = (sequence.subject, sequence.action)
            if key not in last or trial_number(sequence.name) > trial_number(last[key].name):
                last[key] = sequence
    held_out = set(id(sequence) for sequence in last.values())
    return ([s for s in sequences if id(s) not in held_out], [s for s in sequences if id(s) in held_out])


def check_cameras(cameras: dict, subjects, cameras_path: str) -> None:
    """Raise ValueError naming the camera file when a subject or camera is missing from it."""
    for subject in subjects:
        missing = [c for c in CAMERA_IDS if c not in cameras.get(subject, {})]
        if missing:
            raise ValueError(f"Camera file {cameras_path} has no calibration for {subject} "
                             f"camera(s) {', '.join(missing)}. Use a complete camera file "
                             "(camera-parameters.json or metadata.xml) for every subject.")

