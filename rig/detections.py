"""The root from the 2D detections a user already has: OpenPose-format JSON, several people a view.

pose2sim, OpenPose, EasyMocap and RTMPose / rtmlib write one JSON file per camera and frame,
``{"people": [{"pose_keypoints_2d": [u0, v0, c0, u1, v1, c1, ...]}, ...]}``, in the pixels of
that camera's video, every person the detector saw, not associated across views. Here:

1. Reading (``load_detections``): one folder per camera under ``--detections DIR`` (named after the
   camera as ``naming`` allows: ``cam01_json`` is camera ``cam_01``), one file per frame whose
   last number is the 0-based video frame (``cam01.0012.json``, ``x_000000000012_keypoints.json``).
   The keypoint layout (``LAYOUTS``) comes from the keypoint count; 25 is BODY_25 or BODY_25B,
   told apart by where keypoint 8 lies (BODY_25's mid-hip, BODY_25B's right elbow) or named.
2. Association (``people_in_frame``): every pairing of one person (or none) per view, 2 views at
   least, is triangulated from its confident keypoints (``MIN_CONFIDENCE``) and reprojected; a
   pairing is consistent when every view's median keypoint error is under ``MAX_ERROR_SHARE`` of
   the image's longer side. The consistent pairing with the most views (then the smallest error)
   is a person; its detections leave the pool, and the next is sought.
3. Tracking (``follow``): people are linked from frame to frame by their mid-hip (a step at most
   ``MAX_SPEED_MM_S`` allows); the track seen in the most frames (then nearest the cameras'
   centre) is THE person.
4. The root: the mid-hip of the two hips, each triangulated from its confident detections in the
   person's views. Frames without it are interpolated or held and counted (``root_finder.fill_gaps``).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import re
import time

import numpy as np

from common import geometry
from common import rig_frame
from rig import naming


@dataclasses.dataclass(frozen=True)
class Layout:
    """A keypoint layout: its number of keypoints and the indices of its left and right hips."""

    count: int
    left_hip: int
    right_hip: int


LAYOUTS = {
    "BODY_25B": Layout(25, 11, 12),  # OpenPose's BODY_25B (pose2sim's default): COCO's first 17, then more
    "BODY_25": Layout(25, 12, 9),    # OpenPose's default: 8 is the mid-hip, 9 the right hip, 12 the left
    "COCO_17": Layout(17, 11, 12),
    "HALPE_26": Layout(26, 11, 12),  # RTMPose / AlphaPose: COCO's first 17, then head, neck, hip, feet
}
LAYOUT_FLAG = "--keypoint-layout"
# BODY_25's keypoint 8 (mid-hip) lies on the midpoint of 9 and 12 (the hips); BODY_25B's 8 (right
# elbow) does not lie on the midpoint of its 9 (left wrist) and 12 (right hip). The median distance,
# over the people seen, relative to each person's size, tells them apart.
MIDHIP_SHARE = (0.05, 0.15)  # below: BODY_25; above: BODY_25B; between: ask for the flag

MIN_CONFIDENCE = 0.3  # keypoints below it are left out (pose2sim's default likelihood threshold)
MAX_ERROR_SHARE = 0.02  # of the image's longer side: 38 px at 1920
MIN_KEYPOINTS = 4  # a view agrees with a pairing on at least this many triangulated keypoints
MAX_SPEED_MM_S = 3000.0  # the fastest a pelvis moves between two frames of one track
STEP_SLACK_MM = 100.0  # plus the triangulation's own scatter


@dataclasses.dataclass(frozen=True)
class Detections:
    """What the detector saw: ``people[v][frame]`` (P, K, 3) [u, v, confidence] per camera (None for a
    camera without detections) and video frame; ``layout`` its name; ``folder``; ``notes``."""

    people: tuple
    layout: str
    folder: str
    notes: tuple = ()


def frame_number(path: pathlib.Path) -> int:
    """The 0-based video frame of a detection file: the last number in its name."""
    numbers = re.findall(r"\d+", path.stem)
    if not numbers:
        raise ValueError(f"Detection file {path} has no frame number in its name (e.g. cam01.0012.json).")
    return int(numbers[-1])


def read_people(path: pathlib.Path) -> np.ndarray:
    """(P, K, 3) [u, v, confidence] of an OpenPose-format file; ValueError naming it when it is not one."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        people = [np.asarray(person["pose_keypoints_2d"], np.float64) for person in content["people"]]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"Detection file {path} is not OpenPose-format JSON ({error!r}); expected "
                         '{"people": [{"pose_keypoints_2d": [u, v, confidence, ...]}, ...]}.') from error
    sizes = {len(person) for person in people}
    if any(size % 3 for size in sizes) or len(sizes) > 1:
        raise ValueError(f"Detection file {path}: pose_keypoints_2d of {sorted(sizes)} numbers; every person "
                         "needs the same number of [u, v, confidence] triples.")
    return np.stack(people).reshape(len(people), -1, 3) if people else np.zeros((0, 0, 3))


def read_camera(folder: pathlib.Path) -> dict:
    """{video frame: (P, K, 3)} of one camera's folder of JSON files."""
    frames, names = {}, {}
    for path in sorted(folder.glob("*.json")):
        number = frame_number(path)
        if number in frames:
            raise ValueError(f"Detections {folder}: {names[number]} and {path.name} are both frame {number}. "
                             "Keep one file per frame.")
        frames[number], names[number] = read_people(path), path.name
    if not frames:
        raise ValueError(f"Detections {folder} holds no .json file.")
    return frames


def load_detections(folder, cameras, layout: str | None = None, left_out=()) -> Detections:
    """The detections of every camera (``cameras``: the calibration's names, in order) under ``folder``.

    A camera without a folder has no detections (a note says so; at least 2 cameras need them).
    layout: one of ``LAYOUTS``, or None to detect it from the keypoint count. left_out: names of
    calibrated cameras the run does not use, whose folders may be there and are ignored.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--detections {folder}: no such folder. Give the folder that holds one folder "
                                "of OpenPose-format JSON files per camera (pose2sim's pose/).")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"{LAYOUT_FLAG} {layout}: unknown; choose one of {', '.join(LAYOUTS)}.")
    subfolders = {p.name: p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.json"))}
    paired, notes = naming.pair_by_name(subfolders, [*cameras, *left_out], f"--detections {folder}", partial=True)
    paired = {camera: path for camera, path in paired.items() if camera in cameras}
    if len(paired) < len(cameras):
        notes += (f"--detections {folder}: no detections for camera(s) "
                  f"{', '.join(c for c in cameras if c not in paired)}: the root is triangulated from the others.",)
    people = [read_camera(paired[camera]) if camera in paired else None for camera in cameras]
    counts = {people_.shape[1] for frames in people if frames for people_ in frames.values() if len(people_)}
    if len(counts) != 1:
        raise ValueError(f"--detections {folder}: " + (f"files with {sorted(counts)} keypoints per person; one "
                         "detector's output has one layout." if counts else "no person in any file."))
    chosen, note = choose_layout(counts.pop(), people, layout, folder)
    return Detections(people=tuple(people), layout=chosen, folder=str(folder), notes=(*notes, *note))


def choose_layout(count: int, people, layout: str | None, folder) -> tuple[str, tuple]:
    """(layout name, notes) for people of ``count`` keypoints; ValueError when the count fits none
    or contradicts the named layout, or when BODY_25 / BODY_25B cannot be told apart."""
    fitting = [name for name, value in LAYOUTS.items() if value.count == count]
    if layout is not None:
        if layout not in fitting:
            raise ValueError(f"{LAYOUT_FLAG} {layout} has {LAYOUTS[layout].count} keypoints, but the files of "
                             f"--detections {folder} hold {count}.")
        return layout, ()
    if not fitting:
        raise ValueError(f"--detections {folder}: {count} keypoints per person fit no known layout "
                         f"({', '.join(f'{n} {v.count}' for n, v in LAYOUTS.items())}).")
    if len(fitting) == 1:
        return fitting[0], ()
    share = midhip_share([p for frames in people if frames for p in frames.values()])
    if MIDHIP_SHARE[0] <= share <= MIDHIP_SHARE[1]:
        raise ValueError(f"--detections {folder}: 25 keypoints is BODY_25 or BODY_25B and the keypoints do not "
                         f"say which (keypoint 8 is {share:.2f} of a person's size from the midpoint of 9 and "
                         f"12). Name it: {LAYOUT_FLAG} BODY_25 or {LAYOUT_FLAG} BODY_25B.")
    chosen = "BODY_25" if share < MIDHIP_SHARE[0] else "BODY_25B"
    return chosen, (f"--detections {folder}: 25 keypoints read as {chosen} (keypoint 8 lies {share:.2f} of a "
                    f"person's size from the midpoint of 9 and 12); if wrong, pass {LAYOUT_FLAG}.",)


def midhip_share(frames) -> float:
    """The median over people of |kp8 - (kp9 + kp12) / 2| / the person's size (their confident
    keypoints' bounding-box diagonal); frames: (P, 25, 3) arrays."""
    shares = []
    for people in frames:
        for person in people:
            confident = person[:, 2] >= MIN_CONFIDENCE
            if confident[[8, 9, 12]].all():
                size = np.linalg.norm(np.ptp(person[confident, :2], axis=0))
                shares.append(np.linalg.norm(person[8, :2] - (person[9, :2] + person[12, :2]) / 2) / max(size, 1e-9))
    return float(np.median(shares)) if shares else float("nan")


# --------------------------------------------------------------------------- association

@dataclasses.dataclass(frozen=True)
class Person:
    """One person of one frame, consistent across views: members (V,) the person index in each
    view (-1: not seen there); points (K, 3) triangulated keypoints (NaN where fewer than 2 views
    saw one); error: the largest per-view median reprojection error, px; root (3,) the mid-hip or
    None."""

    members: tuple
    points: np.ndarray
    error: float
    root: np.ndarray | None


def triangulate_batch(points: np.ndarray, weights: np.ndarray, projections: np.ndarray) -> np.ndarray:
    """Least-squares points of many pairings at once.

    points (C, V, K, 2) undistorted pixels, weights (C, V, K) 0 / 1, projections (V, 3, 4) ->
    (C, K, 3); NaN where fewer than 2 views weigh in.
    """
    rows = points[..., None] * projections[None, :, None, 2:3, :] - projections[None, :, None, :2, :]
    rows = rows / np.linalg.norm(rows[..., :3], axis=-1, keepdims=True)  # each row: a distance in mm
    rows = rows * weights[..., None, None]
    count, views, keypoints = weights.shape
    system = np.moveaxis(rows, 2, 1).reshape(count, keypoints, 2 * views, 4)
    solution = np.linalg.svd(system)[2][..., -1, :]
    solved = solution[..., :3] / solution[..., 3:]
    return np.where((weights.sum(1) >= 2)[..., None], solved, np.nan)


def people_in_frame(views: list, cameras, layout: Layout) -> list:
    """The people of one frame, consistent across views, best first.

    views: per camera (P, K, 3) detections ([u, v, c], distorted pixels) or None (no detections);
    cameras: the matching ``geometry.Camera`` (any world frame: the points come back in it).
    """
    views = [np.zeros((0, layout.count, 3)) if v is None or not len(v) else v for v in views]
    projections = np.stack([geometry.projection_matrix(camera) for camera in cameras])
    undistorted = [geometry.undistort_points(v[..., :2], camera) for v, camera in zip(views, cameras)]
    limits = [MAX_ERROR_SHARE * max(camera.width, camera.height) for camera in cameras]
    pairings = [c for c in itertools.product(*[range(-1, len(v)) for v in views]) if sum(i >= 0 for i in c) >= 2]
    people, used = [], [set() for _ in views]
    while pairings:
        choice = np.array(pairings)  # (C, V)
        chosen = choice >= 0
        index = np.where(chosen, choice, 0)
        points = np.stack([undistorted[v][index[:, v]] if len(views[v]) else np.zeros((len(choice), layout.count, 2))
                           for v in range(len(views))], 1)
        detected = np.stack([views[v][index[:, v]] if len(views[v]) else np.zeros((len(choice), layout.count, 3))
                             for v in range(len(views))], 1)
        weights = (chosen[..., None] & (detected[..., 2] >= MIN_CONFIDENCE)).astype(np.float64)
        solved = triangulate_batch(points, weights, projections)  # (C, K, 3)
        errors = view_errors(solved, detected[..., :2], weights, cameras)  # (C, V)
        consistent = np.all(np.where(chosen, errors <= np.array(limits), True), axis=1)
        if not consistent.any():
            break
        score = np.where(consistent, chosen.sum(1) * 1e6 - np.nanmax(np.where(chosen, errors, np.nan), 1), -np.inf)
        best = int(np.argmax(score))
        members = tuple(int(i) for i in choice[best])
        people.append(Person(members=members, points=solved[best], error=float(np.max(errors[best][chosen[best]])),
                             root=mid_hip(solved[best], layout)))
        for v, i in enumerate(members):
            if i >= 0:
                used[v].add(i)
        pairings = [c for c in pairings if all(i < 0 or i not in used[v] for v, i in enumerate(c))]
    return people


def view_errors(solved: np.ndarray, detected: np.ndarray, weights: np.ndarray, cameras) -> np.ndarray:
    """(C, V) per view median reprojection error (px) of the triangulated (C, K, 3) points against
    the (C, V, K, 2) distorted detections it used; inf where fewer than MIN_KEYPOINTS are compared."""
    errors = np.full(weights.shape[:2], np.inf)
    for v, camera in enumerate(cameras):
        projected = geometry.project(np.nan_to_num(solved), camera)
        distance = np.linalg.norm(projected - detected[:, v], axis=-1)
        compared = (weights[:, v] > 0) & np.isfinite(solved[..., 0])
        enough = compared.sum(1) >= MIN_KEYPOINTS
        errors[enough, v] = np.nanmedian(np.where(compared, distance, np.nan)[enough], axis=1)
    return errors


def mid_hip(points: np.ndarray, layout: Layout) -> np.ndarray | None:
    """(3,) the midpoint of the triangulated hips, None when either was not triangulated."""
    hips = points[[layout.left_hip, layout.right_hip]]
    return hips.mean(0) if np.isfinite(hips).all() else None


# --------------------------------------------------------------------------- over time

def follow(frames: np.ndarray, candidates: list, fps: float, centre: np.ndarray) -> list:
    """THE person of every frame: a list of ``Person`` or None (not seen).

    candidates: per frame a list of ``Person`` with a root. Each joins the track whose last root is
    within a step a pelvis can make (``MAX_SPEED_MM_S``) or starts a new track; the track of most
    frames, then the one nearest ``centre`` (3,) on average, is returned.
    """
    tracks = []  # each: {frame position: Person}
    for position, people in enumerate(candidates):
        free = list(range(len(tracks)))
        for person in people:
            reach = []
            for t in free:
                last = max(tracks[t])
                distance = np.linalg.norm(person.root - tracks[t][last].root)
                if distance <= STEP_SLACK_MM + MAX_SPEED_MM_S * (frames[position] - frames[last]) / fps:
                    reach.append((distance, t))
            if reach:
                track = min(reach)[1]
                tracks[track][position] = person
                free.remove(track)
            else:
                tracks.append({position: person})
    if not tracks:
        return [None] * len(frames)
    best = min(tracks, key=lambda t: (-len(t), np.mean([np.linalg.norm(p.root - centre) for p in t.values()])))
    return [best.get(position) for position in range(len(frames))]


def find_roots(detections: Detections, cameras, frames, fps: float):
    """The root of every one of ``frames`` from ``detections`` (cameras: the calibration's, in its
    order, sized from the videos; any world frame: the roots come back in it). Frames without a
    consistent person are interpolated or held (``status``); ValueError when no frame has one.
    Returns a ``root_finder.RootTrack`` of source "detections"."""
    from rig import root_finder  # OpenCV and SciPy: not needed to read the layouts (the CLI's --help)
    started = time.perf_counter()
    frames = np.asarray(frames, np.int64)
    layout = LAYOUTS[detections.layout]
    candidates = []
    for frame in frames:
        seen = [None if per_camera is None else per_camera.get(int(frame)) for per_camera in detections.people]
        candidates.append([person for person in people_in_frame(seen, cameras, layout) if person.root is not None])
    chosen = follow(frames, candidates, fps, rig_frame.nearest_point_to_axes(cameras))
    if all(person is None for person in chosen):
        raise ValueError(f"--detections {detections.folder}: no person is consistent across 2 or more views in any "
                         f"of the {len(frames)} frames (hips seen with confidence >= {MIN_CONFIDENCE}, reprojection "
                         f"within {100 * MAX_ERROR_SHARE:g}% of the image). Check that the detections belong to these "
                         "videos and cameras (same names, same pixels) and their layout.")
    track = np.array([person.root if person is not None else [np.nan] * 3 for person in chosen])
    views = np.array([np.array(person.members) >= 0 if person is not None else np.zeros(len(cameras), bool)
                      for person in chosen])
    roots, status = root_finder.fill_gaps(frames, track)
    return root_finder.RootTrack(frames=frames, roots=roots, status=status, views=views,
                                 seconds=time.perf_counter() - started, source="detections")
