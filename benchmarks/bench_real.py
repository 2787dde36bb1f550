"""--mode predict on the REAL recording (../shared/real_recordings/pose2sim_balancing, see its README),
for every root source: the root against the TRC's pelvis, the share found, and predict's speed
against a plain forward decode of the same four videos, measured in one run.

    python -m benchmarks.bench_real [--weights W.weights.h5 --config tiny] [--sources detections centre]

For each root source (``--detections`` the recording's JSON; ``silhouettes`` background
subtraction; ``centre`` the point the cameras look at) the table gives the FIRST root's error (mm,
mean / median / p95 over the 100 frames, against the midpoint of the TRC's RHip and LHip, in the
calibration's world: x = Z_trc, y = X_trc, z = Y_trc) and its share found; then ``--mode predict``
is run as a user would run it (the CLI, model building included) and the table gives the FINAL
root's error (after the model's refinements, where they apply), the pose error of the 12 limb joints
named alike in both skeletons (hips, knees, ankles, shoulders, elbows, wrists: Human3.6M's joint
centres and OpenPose's keypoints differ by a few cm even when both are right), frames per second
and the ratio of predict's wall time to the decode's, the decode timed just before and just after
that run (their mean: on a shared machine the load changes from minute to minute). A source whose
roots stop the run (none or fewer than half found) says so in its row. Without ``--weights`` a random-weight tiny-mean
model runs: its speed is the path's, its pose error means nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import tempfile
import time

import numpy as np

from common import devices
from common import rig_frame
from common import skeleton
from common import video_io
from rig import detections
from rig import inference
from rig import predict
from rig import root_finder
from rig import run_summary
import train_and_test

RECORDING = pathlib.Path(__file__).resolve().parents[2] / "shared" / "real_recordings" / "pose2sim_balancing"
TRC = "pose-3d/S00_P00_T01_BalancingTrial_0-100.trc"
LIMBS = {"right_hip": "RHip", "right_knee": "RKnee", "right_ankle": "RAnkle", "left_hip": "LHip",
         "left_knee": "LKnee", "left_ankle": "LAnkle", "left_shoulder": "LShoulder", "left_elbow": "LElbow",
         "left_wrist": "LWrist", "right_shoulder": "RShoulder", "right_elbow": "RElbow", "right_wrist": "RWrist"}


def trc_markers(folder: pathlib.Path) -> dict:
    """{marker name: (T, 3) world mm} of the recording's TRC (y-up metres -> the calibration's z-up mm)."""
    lines = (folder / TRC).read_text().splitlines()
    names = lines[3].split("\t")[2::3]
    markers = np.loadtxt(folder / TRC, skiprows=5)[:, 2:].reshape(-1, len(names), 3)
    return {name: 1000.0 * markers[:, index][:, [2, 0, 1]] for index, name in enumerate(names)}


def decode_seconds(videos) -> float:
    """Wall time of a plain forward decode of every frame of every video, one after the other."""
    started = time.perf_counter()
    for path in videos:
        capture = video_io.open_video(path)
        while capture.read()[0]:
            pass
        capture.release()
    return time.perf_counter() - started


def statistics(errors: np.ndarray) -> str:
    """mean median p95 of (T,) errors, or dashes where no frame has one."""
    if not np.isfinite(errors).any():
        return f"{'-':>6s} {'-':>6s} {'-':>6s}"
    return f"{errors.mean():6.0f} {np.median(errors):6.0f} {np.percentile(errors, 95):6.0f}"


def random_weights(folder: str) -> str:
    import keras
    import model
    from common import weights_files
    keras.utils.set_random_seed(0)
    config = model.get_config("tiny-mean")
    path = os.path.join(folder, "random.weights.h5")
    weights_files.save_weights(model.build_model(config, num_views=4), path, {"config": config.name})
    return path


def run_source(source: str, rig, found, reference: dict, options, folder: str) -> dict:
    """One row: the first root's errors (found before any model), then the CLI's run, timed."""
    pelvis = (reference["RHip"] + reference["LHip"]) / 2
    row = {"source": source, "refused": ""}
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            track = inference.find_root_track(rig.cameras, rig.videos, np.arange(rig.num_frames), source=source,
                                              detections=found, fps=rig.fps, progress=False)
    except root_finder.NoPersonFound:  # predict refuses it too: a row, not the end of the table
        row.update(refused="no person found in any frame", root_seconds=time.perf_counter() - started,
                   first=np.full(rig.num_frames, np.nan), found=0.0)
        return row
    try:
        run_summary.check_roots(track)
    except ValueError as error:
        row["refused"] = str(error).split(":")[0]
    world = rig_frame.rig_frame(rig.cameras).to_world(track.roots)
    row["first"] = np.linalg.norm(world - pelvis[:len(world)], axis=1)
    row["found"] = float(np.mean(track.status == "found"))
    row["root_seconds"] = track.seconds
    if row["refused"]:
        return row
    out = os.path.join(folder, source)
    flags = ["--detections", str(options.recording / "pose")] if source == "detections" else ["--root-source", source]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = train_and_test.main(["--mode", "predict", "--config", options.config, "--weights", options.weights,
                                    "--videos", str(options.recording / "videos"), "--calibration",
                                    str(options.recording / "Calib.toml"), "--output-dir", out, "--verbose", "0",
                                    *flags])
    row["seconds"] = time.perf_counter() - started
    if code:
        row["refused"] = f"exit {code}"
        return row
    with np.load(os.path.join(out, "predictions.npz")) as saved:
        row["final"] = np.linalg.norm(saved["root"] - pelvis[saved["frames"]], axis=1)
        names = list(skeleton.JOINT_NAMES_17)
        ours = saved["joints_3d"][:, [names.index(name) for name in LIMBS]]
        theirs = np.stack([reference[marker][saved["frames"]] for marker in LIMBS.values()], 1)
        row["pose"] = np.linalg.norm(ours - theirs, axis=-1).mean(1)
        row["frames"] = len(saved["frames"])
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as handle:
        refinement = json.load(handle)["refinement"]
    row["refined"] = (f"  model's pelvis used in {refinement['model_pelvis_used']} of {row['frames']} frames"
                      if refinement["refinements"] else "")
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recording", type=pathlib.Path, default=RECORDING)
    parser.add_argument("--weights", default=None, help="default: a random-weight tiny-mean model (speed only)")
    parser.add_argument("--config", default="tiny-mean")
    parser.add_argument("--sources", nargs="+", default=list(run_summary.ROOT_SOURCES),
                        choices=run_summary.ROOT_SOURCES)
    options = parser.parse_args(argv)
    if not (options.recording / "Calib.toml").is_file():
        raise SystemExit(f"The real recording is not at {options.recording} (see ../shared/real_recordings/README.md).")
    devices.import_tensorflow_quietly()
    folder = tempfile.mkdtemp(prefix="bench_real_")
    if options.weights is None:
        options.weights, options.config = random_weights(folder), "tiny-mean"
    rig = predict.load_rig(options.recording / "Calib.toml", options.recording / "videos")
    found = detections.load_detections(options.recording / "pose", [camera.id for camera in rig.cameras])
    reference = trc_markers(options.recording)
    decode_seconds(rig.videos)  # the videos into the page cache, as for predict's runs after the first
    print(f"Weights {options.weights} ({options.config}). Errors in mm against the TRC (mean median p95).")
    print(f"{'source':12s} {'first root':>20s} {'found':>6s} {'final root':>20s} {'12 limb joints':>20s} "
          f"{'frames/s':>8s} {'x decode':>8s} {'decode s':>8s}")
    for source in options.sources:
        before = decode_seconds(rig.videos)
        row = run_source(source, rig, found if source == "detections" else None, reference, options, folder)
        decode = (before + decode_seconds(rig.videos)) / 2
        first = f"{statistics(row['first'])} {100 * row['found']:5.0f}%"
        if row["refused"]:
            print(f"{source:12s} {first}  predict refused: {row['refused']} (after {row['root_seconds']:.1f} s of "
                  "root finding)")
            continue
        print(f"{source:12s} {first} {statistics(row['final'])} {statistics(row['pose'])} "
              f"{row['frames'] / row['seconds']:8.1f} {row['seconds'] / decode:8.1f} {decode:8.1f}{row['refined']}")


if __name__ == "__main__":
    main()
