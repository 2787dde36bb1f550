"""The root from the videos alone (root_finder) against the labelled pelvis, beside the quick baseline.

    python benchmarks/bench_root.py [--data DIR] [--subjects S11 S1] [--strides 5 1]
                                    [--backgrounds subject own] [--jitter-subjects S1 S5 S6 S7]

The default synthetic set (``synthetic_h36m.generate_dataset(DIR, seed=0)``: S1 S5 S6 S7 S11, 6
actions x 2 trials, 120 frames, 320 px) is generated into DIR (default under /tmp) unless it is
already there. ``root_finder.find_roots`` runs on every sequence of ``--subjects`` at every
``--strides`` frame stride, with each camera's background taken from:

* ``subject``: all the subject's videos of that camera (the room is the same in all of them, and
  the person stands elsewhere in most), as the test protocol can do;
* ``own``: the sequence's own video only, as a user with one recording has it (the person who
  stays in place for the whole 2.4 s is then partly in the background: see the warnings column).

Per subject and action (both trials together), then per subject and overall: the distance from
the labelled pelvis (mm: mean, median, 95th percentile, max), the share of frames found and
interpolated/held, the seconds per frame (background model included), the sequences warned about
(the person stays in place) and those in which no person was found at all (``find_roots`` raised:
their frames count as neither found nor filled, and are not scored); and the same distances for the quick baseline, the centre of the
silhouette's bounding box in each view, triangulated (same background, same silhouettes; scored
on the frames where >= 2 views have foreground, the share in its "found" column).

Last, the error the lead should jitter training crops' 3D root by: per rig axis (x, y horizontal,
z up) the mean offset and the standard deviation of ``root - pelvis`` on the TRAINING subjects
(``--jitter-subjects``), stride 5, subject backgrounds. Labels are read here, for scoring only.
"""
from __future__ import annotations

import argparse
import dataclasses
import pathlib
import sys
import time

import numpy as np

import h36m_utils  # noqa: E402
from common import skeleton
from common import rig_frame  # noqa: E402
from rig import root_finder  # noqa: E402
from synthetic import synthetic_h36m  # noqa: E402
from common import video_io  # noqa: E402

DEFAULT_DATA = "/tmp/bench_root_synthetic"


@dataclasses.dataclass(frozen=True)
class Scored:
    """One sequence run: its subject and action, errors (N,) mm, status (N,), seconds, the
    baseline's errors (M,) mm on its M usable frames, and whether the track carries a warning."""

    subject: str
    action: str
    errors: np.ndarray
    status: np.ndarray
    seconds: float
    baseline: np.ndarray
    warned: bool


def dataset(folder: pathlib.Path) -> pathlib.Path:
    if not (folder / "Labels" / "camera-parameters.json").is_file():
        print(f"Generating the default synthetic set into {folder} ...", flush=True)
        synthetic_h36m.generate_dataset(folder, seed=0, progress=False)
    return folder


def bounding_box_baseline(videos, cameras, frames, background_videos) -> np.ndarray:
    """(T, 3) rig mm, NaN where < 2 views have foreground: each view's foreground bounding-box
    centre, triangulated; root_finder's background model and silhouettes."""
    settings = root_finder.Settings()
    views = [root_finder.make_view(paths, camera, settings) for paths, camera in zip(background_videos, cameras)]
    roots = []
    for images in zip(*[video_io.stream_frames(path, frames) for path in videos]):
        centres, seen_by = [], []
        for image, view in zip(images, views):
            rows, columns = np.nonzero(root_finder.silhouette(image, view))
            if len(rows):
                centres.append(np.array([columns.min() + columns.max(), rows.min() + rows.max()]) / 2.0)
                seen_by.append(view.camera)
        roots.append(root_finder.triangulate(centres, seen_by) if len(centres) >= 2 else np.full(3, np.nan))
    return np.array(roots)


def background_videos(sequence, sequences, background: str) -> list:
    """Per camera, the videos its background comes from: the subject's videos, or the sequence's own."""
    if background == "own":
        return [[sequence.videos[c]] for c in h36m_utils.CAMERA_IDS]
    return [[s.videos[c] for s in sequences if s.subject == sequence.subject and c in s.videos]
            for c in h36m_utils.CAMERA_IDS]


def track_and_pelvis(sequence, cameras, frame, sequences, stride: int, background: str):
    """(RootTrack of every ``stride``-th frame, (N, 3) labelled pelvis in the rig frame)."""
    frames = np.arange(0, sequence.num_frames, stride)
    # "own": no background_videos, so that find_roots takes each video's own frames and may warn
    track = root_finder.find_roots([sequence.videos[c] for c in h36m_utils.CAMERA_IDS], cameras, frames,
                                   progress=False,
                                   background_videos=background_videos(sequence, sequences, background)
                                   if background == "subject" else None)
    return track, frame.to_rig(h36m_utils.read_poses(sequence.d3_path)[frames, skeleton.PELVIS])


def run_sequence(sequence, cameras, frame, sequences, stride: int, background: str, baseline: bool) -> Scored:
    """Scored run; a sequence in which find_roots finds no person at all scores no frame (status "none")."""
    try:
        track, pelvis = track_and_pelvis(sequence, cameras, frame, sequences, stride, background)
    except ValueError as error:
        if "No person found" not in str(error):
            raise
        count = len(range(0, sequence.num_frames, stride))
        return Scored(sequence.subject, sequence.action, np.zeros(0), np.full(count, "none"), 0.0, np.zeros(0), False)
    baseline_errors = np.zeros(0)
    if baseline:
        base = bounding_box_baseline([sequence.videos[c] for c in h36m_utils.CAMERA_IDS], cameras, track.frames,
                                     background_videos(sequence, sequences, background))
        usable = ~np.isnan(base[:, 0])
        baseline_errors = np.linalg.norm(base[usable] - pelvis[usable], axis=1)
    return Scored(sequence.subject, sequence.action, np.linalg.norm(track.roots - pelvis, axis=1), track.status,
                  track.seconds, baseline_errors, bool(track.warnings))


def offsets(sequence, cameras, frame, sequences) -> np.ndarray:
    """(N, 3) root - labelled pelvis, rig mm, at stride 5 with subject backgrounds."""
    track, pelvis = track_and_pelvis(sequence, cameras, frame, sequences, 5, "subject")
    return track.roots - pelvis


def distances(errors: np.ndarray) -> str:
    if not len(errors):
        return " | ".join(["-"] * 4)
    return " | ".join(f"{value:6.0f}" for value in (errors.mean(), np.median(errors), np.percentile(errors, 95),
                                                     errors.max()))


def table_row(label: str, runs: list) -> str:
    errors = np.concatenate([run.errors for run in runs])
    status = np.concatenate([run.status for run in runs])
    rooted = status != "none"
    seconds_per_frame = sum(run.seconds for run in runs) / max(rooted.sum(), 1)
    baseline = np.concatenate([run.baseline for run in runs])
    baseline_found = len(baseline) / max(rooted.sum(), 1)
    failed = sum(not run.status.size or run.status[0] == "none" for run in runs)
    return (f"| {label:<22} | {len(status):5d} | {distances(errors)} | {100 * np.mean(status == 'found'):5.1f} | "
            f"{100 * np.mean(rooted & (status != 'found')):5.1f} | {seconds_per_frame:6.3f} | "
            f"{sum(r.warned for r in runs):2d} / {failed:2d} / {len(runs):<2d} | {distances(baseline)} | "
            f"{100 * baseline_found:5.1f} |")


HEADER = ("| subject / action       | frames |   mean | median |    p95 |    max | found | gaps % | s/frame | "
          "warned / no root / runs | base mean | median | p95 | max | found |")


def print_table(runs: list, subjects, background: str, stride: int) -> None:
    print(f"\nBackground: {background}; stride {stride}. Distance (mm) from the labelled pelvis; root_finder, then "
          "the bounding-box baseline.")
    print(HEADER)
    print("|---" * (HEADER.count("|") - 1) + "|")
    for subject in subjects:
        own = [run for run in runs if run.subject == subject]
        for action in sorted({run.action for run in own}):
            print(table_row(f"{subject} {action}", [run for run in own if run.action == action]))
        print(table_row(f"{subject} all", own))
    print(table_row("all", runs))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder of the synthetic set (generated if missing)")
    parser.add_argument("--subjects", nargs="+", default=["S11", "S1"], help="subjects to score")
    parser.add_argument("--strides", nargs="+", type=int, default=[5, 1], help="frame strides")
    parser.add_argument("--backgrounds", nargs="+", choices=("subject", "own"), default=["subject", "own"],
                        help="where each camera's background comes from")
    parser.add_argument("--jitter-subjects", nargs="*", default=["S1", "S5", "S6", "S7"],
                        help="training subjects for the jitter statistics (none: skip)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bounding-box baseline")
    args = parser.parse_args(argv)
    root = dataset(pathlib.Path(args.data))
    every = sorted(set(args.subjects) | set(args.jitter_subjects))
    sequences, _ = h36m_utils.find_sequences(str(root / "Data"), str(root / "Labels"), every)
    world = h36m_utils.load_cameras(str(root / "Labels" / "camera-parameters.json"))
    rigs = {subject: rig_frame.cameras_in_rig_frame([world[subject][c] for c in h36m_utils.CAMERA_IDS])
            for subject in every}
    started = time.perf_counter()
    for background in args.backgrounds:
        for stride in args.strides:
            runs = [run_sequence(s, *rigs[s.subject], sequences, stride, background, not args.no_baseline)
                    for s in sequences if s.subject in args.subjects]
            print_table(runs, args.subjects, background, stride)
    if args.jitter_subjects:
        found = np.concatenate([offsets(s, *rigs[s.subject], sequences) for s in sequences
                                if s.subject in args.jitter_subjects])
        print(f"\nroot - pelvis on {' '.join(args.jitter_subjects)} ({len(found)} frames, stride 5, subject "
              "backgrounds), rig frame (x, y horizontal, z up), mm:")
        print("| axis | mean | std | p95 of |offset| |\n|---|---|---|---|")
        for axis, name in enumerate("xyz"):
            print(f"| {name} | {found[:, axis].mean():6.1f} | {found[:, axis].std():6.1f} | "
                  f"{np.percentile(np.abs(found[:, axis]), 95):6.1f} |")
        horizontal = np.linalg.norm(found[:, :2], axis=1)
        print(f"horizontal distance: mean {horizontal.mean():.1f}, p95 {np.percentile(horizontal, 95):.1f}; "
              f"3D: mean {np.linalg.norm(found, axis=1).mean():.1f} mm")
    print(f"\n{time.perf_counter() - started:.0f} s in all.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
