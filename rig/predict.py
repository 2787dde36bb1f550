"""``--mode predict`` (``command``): a trained model on a user's own calibrated cameras and videos, no labels.

    python train_and_test.py --mode predict --config tiny-mean --weights W.weights.h5 \\
        --videos DIR --calibration Calib.toml [--detections pose/] [--calibration-units m] [--output-dir OUT]

What it assumes (docs/INFERENCE.md): one person predicted, static calibrated cameras, synchronised
videos of one frame rate. It pairs each camera of the calibration with its video (``naming``),
scales a camera whose video is its image resized, finds the root first (``find_first_roots``:
from the user's 2D detections, the silhouettes or the cameras' centre; too few found stops the
run), builds the model, runs it (``inference``) and writes (``poses_to_files``), in OUT:
``predictions.npz`` / ``.csv`` / ``.trc`` (``exports``), ``summary.json`` (``run_summary``),
``overlay.mp4`` (2D joints over the tiled views) and ``skeleton_3d.mp4`` (the 3D skeleton over a
floor grid; ``renderings``). 3D joints are in MILLIMETRES in the
calibration's world frame, whatever unit the file used.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import pathlib
import time

import numpy as np

from options import UsageError
from rig import calibration
from rig import inference
from rig import naming
from rig import exports
from rig import renderings
from rig import root_finder
from rig import run_summary
from common import rig_frame
from common import video_io

# Containers OpenCV's FFmpeg reads; other files in the videos folder are ignored.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
FPS_TOLERANCE = 0.01  # frames per second: containers round their rates a little


def command(args) -> dict:
    """``--mode predict``: --videos + --calibration -> files in --output-dir; {output name: path}.
    The roots come first (from --detections or the videos), so a recording without a person fails
    fast, before the model is built."""
    from common import model_loading
    from rig import detections
    from rig import weights_origin
    rig = load_rig(args.calibration, args.videos, args.calibration_units, args.calibration_subject,
                   args.background_videos)
    if args.root_source == "detections" and not args.detections:
        raise UsageError("--root-source detections needs --detections DIR.")
    found = (detections.load_detections(args.detections, [camera.id for camera in rig.cameras], args.keypoint_layout,
                                        left_out=rig.left_out) if args.detections else None)
    first = find_first_roots(rig, stride=args.stride, root_source=args.root_source, detections=found,
                             progress=args.verbose > 0)
    network, config, info = model_loading.load_model(args, args.weights, len(rig.cameras), "predict")
    print(weights_origin.statement(info))
    return poses_to_files(network, config, rig, first, output_dir=args.output_dir, stride=args.stride,
                          box_mm=args.box_mm, batch_size=args.batch_size, refinements=args.refinements,
                          progress=args.verbose > 0, weights_info=info)


@dataclasses.dataclass(frozen=True)
class UserRig:
    """A calibrated rig and its videos: cameras (world, mm, sized from the videos), videos (V,)
    paths in the cameras' order, num_frames (the frames every video holds), fps, notes (what was
    left out, trimmed, paired or scaled, one sentence each), backgrounds: None (each camera's
    background from its own video, and the root finder warns when the person stays in place) or
    (V,) tuples of the videos each camera's background is learned from; left_out: names of the
    calibrated cameras without a video, not in ``cameras``."""

    cameras: tuple
    videos: tuple
    num_frames: int
    fps: float
    notes: tuple
    backgrounds: tuple
    left_out: tuple = ()


def match_videos(folder, names, what: str = "--videos", partial: bool = False) -> tuple[dict, tuple]:
    """({camera name: video path}, notes) for a folder holding one video per camera, paired by
    ``naming.pair_by_name``: ``cam01.mp4`` is camera ``cam_01`` (``Cam1``, ``cam-01``,
    ``trial3.cam_01.mp4`` too); names that do not match pair in sorted order when the counts agree
    (the notes say so). Two videos for one camera are an error; so is a camera without a video,
    unless ``partial`` (every video names a camera, at least 2 do): then it is not in the result."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} {folder}: no such folder. Put one video per camera in it.")
    videos = {p.name: str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES}
    return naming.pair_by_name(videos, list(names), f"{what} {folder}", VIDEO_SUFFIXES, partial=partial)


def load_rig(calibration_path, videos_folder, units: str | None = None, subject: str | None = None,
             background_folder=None) -> UserRig:
    """The calibration's cameras paired with their videos, sized from them, over the common frames.

    A camera without a video in ``videos_folder`` is left out (a note names it), as long as every
    video names a camera and 2 cameras remain: a lab often calibrates more cameras than a trial used.
    background_folder: videos of the same cameras (named as the videos) that the background is
    learned from too, e.g. of the empty scene, for a person who stays in one place."""
    rig = calibration.load_calibration(calibration_path, units, subject)
    videos, pairing = match_videos(videos_folder, rig.names, partial=True)
    left_out = [name for name in rig.names if name not in videos]
    if left_out:
        rig = dataclasses.replace(rig, cameras=tuple(camera for camera in rig.cameras if camera.id in videos),
                                  notes=(*rig.notes, f"--videos {videos_folder} holds no video for camera(s) "
                                         f"{', '.join(left_out)}: left out; predicting from the {len(videos)} "
                                         f"cameras that have one ({', '.join(videos)})."))
    extra, extra_pairing = (match_backgrounds(background_folder, rig.names, calibrated=(*rig.names, *left_out))
                            if background_folder else ({}, ()))
    properties = {name: video_io.video_properties(path) for name, path in videos.items()}
    rates = {name: p.fps for name, p in properties.items()}
    if max(rates.values()) - min(rates.values()) > FPS_TOLERANCE:
        raise ValueError("The videos have different frame rates (" + ", ".join(
            f"{name} {fps:g}" for name, fps in rates.items()) + " fps): they must be synchronised recordings of "
            "one rate. Convert them to one rate first (e.g. ffmpeg -r).")
    rig = calibration.with_image_sizes(rig, {name: (p.width, p.height) for name, p in properties.items()})
    counts = {name: p.frame_count for name, p in properties.items()}
    common = min(counts.values())
    if common < 1:
        raise ValueError(f"Video(s) {', '.join(n for n, c in counts.items() if c < 1)} hold no frames.")
    notes = [*pairing, *extra_pairing, *rig.notes]
    if max(counts.values()) != common:
        notes.append(f"Using the {common} frames every video holds; longer: " + ", ".join(
            f"{name} {count}" for name, count in counts.items() if count != common) + ".")
    return UserRig(cameras=rig.cameras, videos=tuple(videos[name] for name in rig.names), num_frames=common,
                   fps=float(np.median(list(rates.values()))), notes=tuple(notes),
                   backgrounds=tuple((videos[name], extra[name]) for name in rig.names) if extra else None,
                   left_out=tuple(left_out))


def match_backgrounds(folder, names, calibrated) -> tuple[dict, tuple]:
    """({camera name: video path}, notes): a background video for each of ``names``, from a folder
    that may also hold videos of the ``calibrated`` cameras left out of the run."""
    extra, notes = match_videos(folder, calibrated, "--background-videos", partial=True)
    missing = [name for name in names if name not in extra]
    if missing:
        raise ValueError(f"--background-videos {folder}: no video for camera(s) {', '.join(missing)}. Give one "
                         f"for every camera the run predicts from ({', '.join(names)}), named after it.")
    return {name: extra[name] for name in names}, notes


@dataclasses.dataclass(frozen=True)
class FirstRoots:
    """The roots a run starts from: track (``root_finder.RootTrack``, rig frame), frames (T,) the
    video frames predicted, warnings (what the user should know about them)."""

    track: object
    frames: np.ndarray
    warnings: tuple


def find_first_roots(rig: UserRig, *, stride: int = 1, root_source: str | None = None, detections=None,
                     progress: bool = True) -> FirstRoots:
    """The root of every ``stride``-th frame, found before any model is built, so that a run whose
    roots are mostly guessed stops at once (``run_summary.check_roots`` raises ValueError).

    root_source: "detections" (needs ``detections``, a ``detections.Detections``), "silhouettes"
    or "centre" (``inference.find_root_track``); None: detections when given, else silhouettes.
    Prints the notes of the rig and the detections, and the root finder's warnings.
    """
    for note in (*rig.notes, *(detections.notes if detections is not None else ())):
        print(f"Note: {note}")
    frames = np.arange(0, rig.num_frames, stride)
    source = root_source or ("detections" if detections is not None else "silhouettes")
    print(f"Finding the root of {len(frames)} frames (frame stride {stride}, of {rig.num_frames}) from the {source}.")
    try:
        track = inference.find_root_track(rig.cameras, rig.videos, frames, source=source, detections=detections,
                                          fps=rig.fps, background_videos=rig.backgrounds, progress=progress)
    except root_finder.NoPersonFound as error:  # the remedies as this command's flags
        raise ValueError(f"{error.finding} Pass {run_summary.HELP}.") from None
    for warning in track.warnings:  # before a possible error: they say why the root was not found
        print(warning)
    return FirstRoots(track=track, frames=frames, warnings=(*track.warnings, *run_summary.check_roots(track)))


def poses_to_files(network, config, rig: UserRig, first: FirstRoots, *, output_dir: str, stride: int = 1,
        box_mm: float = 2000.0, batch_size: int = 8, refinements: int | None = None, progress: bool = True,
        weights_info: dict | None = None) -> dict:
    """Predict the frames of ``first`` (``find_first_roots`` with the same ``stride``) and write every
    output into ``output_dir``. Returns {output name: path}. weights_info: the weights' sidecar, for
    summary.json."""
    os.makedirs(output_dir, exist_ok=True)
    names = [camera.id for camera in rig.cameras]
    frames, track = first.frames, first.track
    refinements = inference.DEFAULT_REFINEMENTS if refinements is None else refinements
    print(f"Predicting {len(frames)} frames of {len(names)} cameras ({', '.join(names)}) with {config.name}.")
    started = time.perf_counter()
    overlay_path = os.path.join(output_dir, "overlay.mp4")
    with renderings.OverlayVideoWriter(overlay_path, names, [(c.width, c.height) for c in rig.cameras],
                                               rig.fps / stride) as overlay, \
            concurrent.futures.ThreadPoolExecutor(max_workers=1) as drawer:
        pending = []  # the chunk being drawn: one at a time, so that at most two chunks are in memory

        def draw_chunk(tiles, chunk, joints_2d):
            for view_tiles, frame, joints in zip(tiles, chunk, joints_2d):
                overlay.add(view_tiles, joints, label=f"frame {frame}")

        def draw(tiles, chunk, joints_2d, _):
            # Drawn on another thread while the model runs on the next chunk (OpenCV releases the GIL).
            if pending:
                pending.pop().result()
            pending.append(drawer.submit(draw_chunk, tiles, chunk, joints_2d))

        predicted = inference.poses_from_videos(
            network, rig.cameras, rig.videos, frames, image_size=config.image_size, box_mm=box_mm,
            refinements=refinements, batch_size=batch_size, on_chunk=draw, thumbnail=overlay.shrink,
            progress=progress, track=track)
        for job in pending:
            job.result()  # raises what the drawing raised
    seconds = time.perf_counter() - started + track.seconds
    print(predicted.root_report)
    used = 0 if track.source == "detections" else refinements
    if used:
        print(f"Refinement: the model's own pelvis became the root in {int(predicted.refined.sum())} of "
              f"{len(predicted.frames)} frames; elsewhere it was not consistent across views and the first root was "
              "kept.")
    for warning in first.warnings[len(track.warnings):]:
        print(warning)
    paths = write_outputs(output_dir, predicted, rig, names, stride)
    paths["overlay"] = overlay_path
    paths["summary"] = run_summary.write_summary(output_dir, run_summary.summary(
        predicted, seconds=seconds, warnings=first.warnings, notes=(*rig.notes, *predicted.notes),
        weights=weights_info, refinements=used))
    print(f"Predicted {len(frames)} frames in {seconds:.1f} s ({len(frames) / max(seconds, 1e-9):.1f} frames/s, "
          f"root finding, decoding and drawing included). Wrote {', '.join(paths.values())}.")
    return paths


def write_outputs(output_dir: str, predicted: inference.VideoPrediction, rig: UserRig, names, stride: int) -> dict:
    """predictions.npz / .csv / .trc and skeleton_3d.mp4 of a finished prediction."""
    arrays = dict(joints_3d=predicted.joints_3d, joints_2d=predicted.joints_2d, frames=predicted.frames, cameras=names)
    paths = {
        "npz": exports.write_npz(os.path.join(output_dir, "predictions.npz"), **arrays,
                                            root=predicted.root, root_status=predicted.root_status,
                                            first_root=predicted.first_root, fps=rig.fps),
        "csv": exports.write_csv(os.path.join(output_dir, "predictions.csv"), **arrays),
        "trc": exports.write_trc(os.path.join(output_dir, "predictions.trc"), predicted.joints_3d,
                                            predicted.frames, rig.fps),
    }
    up = rig_frame.rig_frame(rig.cameras).rotation[2]  # the rig frame's up, in world coordinates
    skeleton = os.path.join(output_dir, "skeleton_3d.mp4")
    with renderings.SkeletonVideoWriter.from_track(skeleton, predicted.joints_3d, rig.fps / stride, up) as video:
        for frame, joints in zip(predicted.frames, predicted.joints_3d):
            video.add(joints, label=f"frame {frame}")
    paths["skeleton"] = skeleton
    return paths
