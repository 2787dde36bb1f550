"""Human3.6M without the download: a small synthetic data set in the exact official layout.

    python synthetic_h36m.py --out DIR [--subjects S1 S5 ...] [--trials N] [--frames N] [--size W]
                             [--seed S]

writes, under DIR::

    Data/<S>/Videos/<Action[ N]>.<camera>.mp4                         50 fps, mp4v
    Labels/<S>/MyPoseFeatures/D3_Positions/<Action[ N]>.cdf           Pose (1, N, 96), world mm
    Labels/<S>/MyPoseFeatures/D2_Positions/<Action[ N]>.<camera>.cdf  Pose (1, N, 64), pixels
    Labels/camera-parameters.json                                     layout of the shared real file

A 32-joint skeleton with human bone lengths (scaled per subject) is animated procedurally per
action (gait, waving, pointing, sitting down, turning, ...) and filmed by a rig like the real
one: 4 cameras about 5 m from the centre, 1.5 m high, f about 1145 px per 1000 px of width and
real-sized lens distortion. Each frame is rendered by projecting 3D limb outlines and joint
balls through ``geometry.project`` (official distortion), so the pixels agree with the D2
labels, which are ``project(D3)``. Every body part has its own colour (left and right differ);
the 17 standard joints carry white balls. The parts live in modules of their own: ``motion``
(the skeleton and its actions), ``rigs`` (the cameras), ``render`` (the pictures and videos),
``label_files`` (CDF), ``seeds`` (the random streams); this module plans and writes the set.

Like the real set, every action is recorded twice per subject by default (``trials``): each
trial is another motion of the same kind (its own random stream), by the same skeleton in
front of the same cameras, named as the real files are (``Directions 1`` and ``Directions``,
``SittingDown 2`` and ``SittingDown``, ``Photo`` and ``Photo 2``; see ``trial_names``).

With ``quirks=True`` the set has the real set's quirks (see ``plan_sequences``). Everything is
a function of the seed: labels are identical bit for bit for the same arguments, and a
subject's labels do not depend on which other subjects or actions are generated.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pathlib
import sys
import time

import numpy as np

import h36m_utils
from common import geometry
from h36m_utils import CAMERA_IDS
from common.skeleton import J17
from synthetic import label_files, motion, render, rigs, seeds
from synthetic.props import place_props

DEFAULT_SUBJECTS = ("S1", "S5", "S6", "S7", "S11")  # four training subjects, one held out
DEFAULT_FRAMES = 120
DEFAULT_SIZE = 320
DEFAULT_TRIALS = 2  # the real set has two trials of every action per subject
# One action of each kind of motion: pointing, waving, hands at the face, sitting down,
# leaning on a leash, walking.
DEFAULT_ACTIONS = ("Directions", "Greeting", "Photo", "SittingDown", "WalkDog", "Walking")
_S1_NAMES = {action: alias for alias, action in h36m_utils.ACTION_ALIASES.items()}
HARD_PROPS = 2  # props per sequence of --hard
_MIN_FRAMES = 16  # room for the quirks (labels shorter by up to 8 frames)


@dataclasses.dataclass(frozen=True)
class SyntheticDataset:
    """Where a generated set lies: pass ``data_dir``/``labels_dir`` to ``find_sequences``."""

    root: pathlib.Path
    data_dir: pathlib.Path
    labels_dir: pathlib.Path
    cameras_path: pathlib.Path
    subjects: tuple


# --------------------------------------------------------------------------- the set

@dataclasses.dataclass(frozen=True)
class SequencePlan:
    """One sequence to write: ``video_frames[camera]`` is None for a missing video and
    ``label_frames`` is 0 for a sequence without labels (``_ALL``)."""

    subject: str
    action: str
    name: str
    video_frames: dict
    label_frames: int
    motion_key: tuple  # which random stream animates it (``_motion_key``)


def _first_trial_number(subject: str, action: str) -> int | None:
    """The number in the name of a subject's first trial of an action (None: unnumbered)."""
    if action == "SittingDown":
        return 2        # numbering starts at 2, as in the real S1
    if action == "Directions":
        return 1        # "Directions 1" then "Directions", as for most real subjects
    return 1 if (seeds.subject_number(subject) + h36m_utils.ACTIONS.index(action)) % 2 else None


def trial_names(subject: str, action: str, trials: int, quirks: bool) -> list:
    """The file stems of a subject's ``trials`` trials of an action, in trial order.

    Without quirks: ``<Action> 1``, ``<Action> 2``, ... With quirks, the real set's naming
    habits: S1's action names; ``<Action> 1`` then ``<Action>``, or ``<Action>`` then
    ``<Action> 2``, or ``SittingDown 2`` then ``SittingDown`` (no ``SittingDown 1``, as in the
    real S1); further trials count on. The first trial's name does not depend on ``trials``.
    """
    if not quirks:
        return [f"{action} {trial}" for trial in range(1, trials + 1)]
    base = _S1_NAMES.get(action, action) if subject == "S1" else action
    first = _first_trial_number(subject, action)
    # After the first number and the unnumbered name, count on (from 2 when the first is None).
    numbers = itertools.chain([first, None] if first else [None], itertools.count((first or 1) + 1))
    return [f"{base} {number}" if number else base for number in itertools.islice(numbers, trials)]


def _motion_key(action: str, trial: int) -> tuple:
    """The random stream of an action's trial (0-based): the first trial's stream is the same
    whatever ``trials`` is; the others add the trial index (never a trailing 0: numpy seeds
    ``[k]`` and ``[k, 0]`` alike)."""
    index = h36m_utils.ACTIONS.index(action)
    return (index, trial) if trial else (index,)


def plan_sequences(subjects, actions, frames: int, quirks: bool, seed: int,
                   trials: int = DEFAULT_TRIALS) -> list:
    """The sequences of the set: ``trials`` trials of every action per subject, each another
    motion of the same kind (``_motion_key``); with ``quirks`` those of the real data set:

    * the first subject's last action, last trial: one camera video 2 to 7 frames longer;
    * the first subject's first action, first trial: labels 3 to 8 frames shorter than videos;
    * S11 (else the last subject), first action, last trial: camera 54138969's video missing
      (the real set lacks it for S11 ``Directions``, the trial after ``Directions 1``);
    * the first subject: a short ``<first action>_ALL`` recording (videos only);
    * S1 says TakingPhoto / WalkingDog; trial numbers are irregular (``trial_names``).
    """
    rng = seeds.stream(seed, 100)
    longer_by, shorter_by = int(rng.integers(2, 8)), int(rng.integers(3, 9))
    missing_subject = "S11" if "S11" in subjects else subjects[-1]
    # (subject, action index, trial index) of each quirk's sequence
    longer = (subjects[0], len(actions) - 1, trials - 1) if quirks else None
    shorter = (subjects[0], 0, 0) if quirks else None
    missing = (missing_subject, 0, trials - 1) if quirks else None
    plans = []
    for subject in subjects:
        for index, action in enumerate(actions):
            for trial, name in enumerate(trial_names(subject, action, trials, quirks)):
                where, videos = (subject, index, trial), dict.fromkeys(CAMERA_IDS, frames)
                if where == longer:
                    videos[CAMERA_IDS[2]] += longer_by
                if where == missing:
                    videos[CAMERA_IDS[0]] = None
                labels = frames - shorter_by if where == shorter else frames
                plans.append(SequencePlan(subject, action, name, videos, labels,
                                          _motion_key(action, trial)))
        if quirks and subject == subjects[0]:
            plans.append(SequencePlan(subject, actions[0], f"{actions[0]}_ALL",
                                      dict.fromkeys(CAMERA_IDS, max(8, frames // 4)), 0, (99,)))
    return plans


def _check_arguments(subjects, actions, trials: int, frames: int, size: int) -> None:
    unknown = [s for s in subjects if s not in h36m_utils.SUBJECTS]
    if unknown or not subjects:
        raise ValueError(f"Unknown subjects {unknown or '(none given)'}; choose from "
                         f"{', '.join(h36m_utils.SUBJECTS)}.")
    unknown = [a for a in actions if a not in motion.ACTION_MOTIONS]
    if unknown or not actions:
        raise ValueError(f"Unknown actions {unknown or '(none given)'}; choose from "
                         f"{', '.join(h36m_utils.ACTIONS)} (canonical names).")
    if trials < 1:
        raise ValueError(f"trials={trials}: every action needs at least 1 trial.")
    if frames < _MIN_FRAMES:
        raise ValueError(f"frames={frames} is too short: use at least {_MIN_FRAMES} (the quirks "
                         "shorten some labels by up to 8 frames).")
    if size < 64 or size % 2:
        raise ValueError(f"size={size}: the image width must be even and at least 64 pixels.")


def write_sequence(plan: SequencePlan, root: pathlib.Path, cameras: dict, backgrounds: dict,
                   offsets: np.ndarray, seed: int, look: render.Look = render.Look(), props: int = 0) -> None:
    """Animate, label and film one sequence (its videos and CDF files under ``root``), with
    ``props`` boxes on the floor (``synthetic.props``) and the person drawn as ``look`` says.

    Besides the 3D and 2D labels, ``Visibility/<name>.<camera>.cdf`` says which of the 17 joints
    each labelled frame shows (``render.visible_joints``)."""
    rng = seeds.stream(seed, seeds.subject_number(plan.subject), 1, *plan.motion_key)
    length = max(n for n in plan.video_frames.values() if n is not None)
    poses = motion.keep_in_view(motion.animate(plan.action, offsets, length, rng), cameras.values())
    scene = place_props(poses, cameras.values(), props,
                        seeds.stream(seed, seeds.subject_number(plan.subject), 4, *plan.motion_key)) if props else ()
    labels = root / "Labels" / plan.subject / "MyPoseFeatures"
    if plan.label_frames:
        label_files.write_pose_cdf(labels / "D3_Positions" / f"{plan.name}.cdf", poses[:plan.label_frames])
    for camera_id, camera in cameras.items():
        shapes = render.body_draw_list(poses, camera, look, scene)
        if plan.label_frames:
            joints_px = geometry.project(poses[:plan.label_frames], camera)
            label_files.write_pose_cdf(labels / "D2_Positions" / f"{plan.name}.{camera_id}.cdf", joints_px)
            label_files.write_visibility_cdf(
                labels / label_files.VISIBILITY_FOLDER / f"{plan.name}.{camera_id}.cdf",
                render.visible_joints(shapes, joints_px[:, list(J17)], (camera.width, camera.height)))
        if plan.video_frames[camera_id] is not None:
            render.write_video(root / "Data" / plan.subject / "Videos" / f"{plan.name}.{camera_id}.mp4",
                               backgrounds[camera_id], shapes, plan.video_frames[camera_id])


def generate_dataset(out_dir, subjects=DEFAULT_SUBJECTS, frames: int = DEFAULT_FRAMES,
                     size: int = DEFAULT_SIZE, seed: int = 0, actions=None, quirks: bool = True,
                     progress: bool = True, trials: int = DEFAULT_TRIALS, look: render.Look = render.Look(),
                     props: int = 0) -> SyntheticDataset:
    """Write a synthetic Human3.6M set under ``out_dir`` and say where its parts are.

    subjects: subject names (``S1`` ... ``S11``); actions: canonical action names (default
    ``DEFAULT_ACTIONS``); trials: trials of every action per subject, each another motion of
    the same kind (the real set has 2); frames: label frames per sequence (50 fps); size:
    image width in pixels (cameras 54138969 and 60457274 are 2 rows taller, like the real
    1000 x 1002 videos); quirks: include the real set's quirks (``plan_sequences``); progress:
    print a line per sequence; look: how the person is drawn (``render.Look``); props: boxes on the
    floor per sequence (``synthetic.props``). Existing files of the same names are overwritten.
    """
    subjects, actions = tuple(subjects), tuple(DEFAULT_ACTIONS if actions is None else actions)
    _check_arguments(subjects, actions, trials, frames, size)
    root = pathlib.Path(out_dir)
    for subject in subjects:
        (root / "Data" / subject / "Videos").mkdir(parents=True, exist_ok=True)
        for kind in ("D3_Positions", "D2_Positions", label_files.VISIBILITY_FOLDER):
            (root / "Labels" / subject / "MyPoseFeatures" / kind).mkdir(parents=True, exist_ok=True)
    intrinsics = rigs.make_intrinsics(size, seed)
    cameras = {subject: rigs.make_cameras(subject, intrinsics, seed) for subject in subjects}
    cameras_path = root / "Labels" / "camera-parameters.json"
    cameras_path.write_text(json.dumps(h36m_utils.cameras_json(cameras), indent=1))

    plans = plan_sequences(subjects, actions, frames, quirks, seed, trials)
    for subject in subjects:
        offsets = motion.subject_offsets(seeds.stream(seed, seeds.subject_number(subject), 2))
        backgrounds = {
            camera_id: render.render_background(camera, seeds.stream(seed, seeds.subject_number(subject), 3, i))
            for i, (camera_id, camera) in enumerate(cameras[subject].items())}
        for plan in (plan for plan in plans if plan.subject == subject):
            started = time.perf_counter()
            write_sequence(plan, root, cameras[subject], backgrounds, offsets, seed, look, props)
            if progress:
                lengths = sorted({n for n in plan.video_frames.values() if n is not None})
                missing = [c for c, n in plan.video_frames.items() if n is None]
                note = f" (no video from {missing[0]})" if missing else ""
                print(f"{subject:>3} {plan.name:<18} videos {'/'.join(map(str, lengths))} frames"
                      f"{note}, labels {plan.label_frames}  "
                      f"[{time.perf_counter() - started:.1f} s]", flush=True)
    return SyntheticDataset(root=root, data_dir=root / "Data", labels_dir=root / "Labels",
                            cameras_path=cameras_path, subjects=subjects)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a synthetic data set in the exact Human3.6M layout (mp4 videos, CDF "
                    "labels, camera-parameters.json).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write Data/ and Labels/ into")
    parser.add_argument("--subjects", nargs="+", default=list(DEFAULT_SUBJECTS), help="subjects")
    parser.add_argument("--actions", nargs="+", default=list(DEFAULT_ACTIONS),
                        help=f"canonical actions, from: {' '.join(h36m_utils.ACTIONS)}")
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                        help="trials of every action per subject, each a different motion; the "
                             "real set has 2")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help="labelled frames per sequence (50 fps)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="image width in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--no-quirks", action="store_true", help="leave out the real set's quirks")
    parser.add_argument("--props", type=int, default=0,
                        help="boxes on the floor per sequence, each between the person and one camera")
    parser.add_argument("--alike-sides", action="store_true",
                        help="right limbs in their left twins' colours (left/right look alike)")
    parser.add_argument("--no-joint-balls", action="store_true", help="no white balls on the joints")
    parser.add_argument("--hard", action="store_true",
                        help=f"the set where one view is not enough: --props {HARD_PROPS} --alike-sides "
                             "--no-joint-balls")
    args = parser.parse_args(argv)
    if args.hard:
        args.props, args.alike_sides, args.no_joint_balls = max(args.props, HARD_PROPS), True, True
    look = render.Look(joint_balls=not args.no_joint_balls, alike_sides=args.alike_sides)
    started = time.perf_counter()
    try:
        dataset = generate_dataset(args.out, args.subjects, args.frames, args.size, args.seed,
                                   args.actions, quirks=not args.no_quirks, trials=args.trials,
                                   look=look, props=args.props)
    except ValueError as error:
        parser.error(str(error))
    videos = sorted(dataset.data_dir.rglob("*.mp4"))
    cdf_files = list(dataset.labels_dir.rglob("*.cdf"))
    visibility = [path for path in cdf_files if path.parent.name == label_files.VISIBILITY_FOLDER]
    print(f"Wrote {len(videos)} videos, {len(cdf_files) - len(visibility)} label files and {len(visibility)} "
          f"visibility files for {', '.join(dataset.subjects)} under {dataset.root} in "
          f"{time.perf_counter() - started:.1f} s.\nCameras: {dataset.cameras_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
