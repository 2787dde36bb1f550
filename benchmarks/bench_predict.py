"""Predict on rigs the model never saw: MPJPE with the root found in the videos vs the labelled root, and speed.

    python benchmarks/bench_predict.py --weights checkpoints/best.weights.h5 --config tiny [--frames 100]

The synthetic S11 person (held out of training) is filmed, for each of ``--actions``, by

* a Human3.6M-like synthetic rig not seen in training: the training rig's layout and camera order
  from another seed, 480 px images, cameras renamed, OpenCV's lens model;
* a synthetic rig unlike Human3.6M's: cameras in angular order 3 to 6 m away, 1.2 to 2.5 m high,
  480 x 360 images, OpenCV's lens model (a ``concat`` model trained on Human3.6M's camera order
  is not expected to work there; ``mean`` with ``--augment-rig`` is what it is for);

  each synthetic rig in a world frame turned by 40 degrees and moved by 1.7 m, its calibration
  written as a pose2sim TOML (m), an EasyMocap pair (m) and the repo's JSON (mm), and
  ``--mode predict`` run on each (the 3D joints must agree across the formats);
* the REAL cameras of the pose2sim demo (``../shared/calibration_samples/pose2sim/Calib.toml``,
  portrait 1088 x 1920, rendered at ``--pose2sim-scale``), when that folder is there.

For each rig the table gives MPJPE (mm, every frame, the calibration's world frame) of
``--mode predict`` (the root found in the videos, refined by the model), and of the same model on
the same frames with crops around the LABELLED pelvis (``inference.poses_from_videos(roots=...)``),
the root error (mm), and predict's frames per second (everything: root finding, decoding, model,
drawing and writing the outputs, on this machine).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time

import numpy as np


from rig import calibration  # noqa: E402
from common import metrics
from rig import inference  # noqa: E402
from synthetic import rigs  # noqa: E402
from synthetic import synthetic_rig  # noqa: E402
import options as run_options  # noqa: E402
import train_and_test  # noqa: E402
from common import model_loading  # noqa: E402

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared",
                       "calibration_samples")
TURN_DEG, SHIFT_MM = 40.0, (1400.0, -900.0, 250.0)


def turned(cameras):
    """The rig in a world frame turned by TURN_DEG about z and moved by SHIFT_MM, and the map of points."""
    angle = np.radians(TURN_DEG)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    moved, _ = synthetic_rig.transform_world(cameras, np.zeros((1, 3)), rotation, SHIFT_MM)
    return moved, lambda points: points @ rotation.T + np.asarray(SHIFT_MM)


def record(cameras, folder, options) -> list:
    """[(videos folder, ground truth joints (T, 17, 3) in the rendering's world)] per action."""
    recordings = []
    for action in options.actions:
        out = os.path.join(folder, action)
        truth = os.path.join(out, synthetic_rig.GROUND_TRUTH_FILE)
        if not os.path.isfile(truth):
            try:
                synthetic_rig.render_rig(cameras, out, frames=options.frames, action=action, subject="S11", seed=3)
            except RuntimeError as error:  # the action's reach leaves a view of this rig: said, not hidden
                print(f"{action} left out on the rig of {', '.join(c.id for c in cameras)}: {error}", flush=True)
                continue
        recordings.append((out, np.load(truth)["joints_3d"]))
    return recordings


def predict_mpjpe(options, videos, calibration_path, truth, output_dir) -> tuple[float, float, float, np.ndarray]:
    """(MPJPE mm, root error mm, frames/s, joints (T, 17, 3)) of ``--mode predict`` on one recording."""
    argv = ["--mode", "predict", "--config", options.config, "--weights", options.weights, "--videos", videos,
            "--calibration", calibration_path, "--output-dir", output_dir, "--verbose", "0"]
    started = time.perf_counter()
    if train_and_test.main(argv) != 0:
        raise SystemExit(f"--mode predict failed: {' '.join(argv)}")
    seconds = time.perf_counter() - started
    content = np.load(os.path.join(output_dir, "predictions.npz"))
    joints, root = content["joints_3d"], content["root"]
    return (float(metrics.mpjpe(joints, truth).mean()), float(np.linalg.norm(root - truth[:, 0], axis=1).mean()),
            len(joints) / seconds, joints)


def labelled_root_mpjpe(options, cameras, videos_folder, truth) -> float:
    """MPJPE (mm) of the same model on the same frames, crops around the labelled pelvis."""
    args = run_options.namespace(config=options.config, weights=options.weights, verbose=0)
    network, config, _ = model_loading.load_model(args, options.weights, len(cameras), "predict")
    videos = [os.path.join(videos_folder, f"{camera.id}.mp4") for camera in cameras]
    predicted = inference.poses_from_videos(network, cameras, videos, np.arange(len(truth)), image_size=config.image_size,
                                         box_mm=2000.0, roots=truth[:, 0], progress=False)
    return float(metrics.mpjpe(predicted.joints_3d, truth).mean())


def formats_rows(options, title: str, rig, folder: str) -> list:
    """Table rows of ``rig`` in a turned and moved world, its calibration in each format."""
    world_cameras, to_world = turned(rig)
    os.makedirs(folder, exist_ok=True)
    formats = {"json (mm)": os.path.join(folder, "rig.json"), "toml (m)": os.path.join(folder, "Calib.toml"),
               "easymocap (m)": os.path.join(folder, "easymocap")}
    calibration.write_json(world_cameras, formats["json (mm)"])
    calibration.write_toml(world_cameras, formats["toml (m)"])
    calibration.write_easymocap(world_cameras, formats["easymocap (m)"])
    rows = []
    for videos, truth in record(rig, folder, options):
        truth_world = to_world(truth)
        joints_by_format = []
        for name, path in formats.items():
            mpjpe, root_error, fps, joints = predict_mpjpe(options, videos, path, truth_world,
                                                           os.path.join(videos, f"predicted-{name.split()[0]}"))
            joints_by_format.append(joints)
            rows.append((f"{title}, {os.path.basename(videos)}, {name}", mpjpe,
                         labelled_root_mpjpe(options, world_cameras, videos, truth_world), root_error, fps))
        spread = max(np.abs(j - joints_by_format[0]).max() for j in joints_by_format)
        print(f"{os.path.basename(videos)}: the formats' 3D joints differ by at most {spread:.4f} mm", flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--weights", required=True, help="trained weights (e.g. the demo's best.weights.h5)")
    parser.add_argument("--config", default="tiny", help="their config")
    parser.add_argument("--work-dir", default="outputs/bench_predict", help="rendered rigs and predictions")
    parser.add_argument("--frames", type=int, default=100, help="frames per action")
    parser.add_argument("--actions", nargs="+", default=["Walking", "Directions", "SittingDown"])
    parser.add_argument("--pose2sim-scale", type=float, default=0.5, help="render the pose2sim rig at this scale")
    options = parser.parse_args(argv)
    rows = []

    h36m_like = rigs.make_cameras("S11", rigs.make_intrinsics(480, seed=11), seed=11)
    # OpenCV's lens model, so that every calibration format can hold it.
    h36m_like = [dataclasses.replace(camera, id=name, distortion_model="opencv") for camera, name in
                 zip(h36m_like.values(), ("front_left", "back_right", "front_right", "back_left"))]
    rows += formats_rows(options, "Human3.6M-like rig", h36m_like, os.path.join(options.work_dir, "h36m_like_rig"))
    unlike = synthetic_rig.make_rig(4, seed=11, width=480, height=360, names=["north", "east", "south", "west"])
    rows += formats_rows(options, "rig unlike Human3.6M's", unlike, os.path.join(options.work_dir, "synthetic_rig"))

    pose2sim = os.path.join(SAMPLES, "pose2sim", "Calib.toml")
    if os.path.isfile(pose2sim):
        cameras = synthetic_rig.scale_images(calibration.load_calibration(pose2sim).cameras, options.pose2sim_scale)
        folder = os.path.join(options.work_dir, "pose2sim_rig")
        os.makedirs(folder, exist_ok=True)
        calibration.write_json(cameras, os.path.join(folder, "rig.json"))
        for videos, truth in record(cameras, folder, options):
            mpjpe, root_error, fps, _ = predict_mpjpe(options, videos, os.path.join(folder, "rig.json"), truth,
                                                      os.path.join(videos, "predicted"))
            rows.append((f"pose2sim cameras, {os.path.basename(videos)}", mpjpe,
                         labelled_root_mpjpe(options, cameras, videos, truth), root_error, fps))
    else:
        print(f"{pose2sim} not found: the pose2sim rig is left out.")

    print(f"\n{options.config} weights {options.weights}; {options.frames} frames per action, every frame")
    print("| rig, action, calibration | MPJPE, predict (root from the videos) | MPJPE, labelled root | "
          "root error | predict frames/s |")
    print("|---|---|---|---|---|")
    for name, mpjpe, labelled, root_error, fps in rows:
        print(f"| {name} | {mpjpe:.1f} | {labelled:.1f} | {root_error:.1f} | {fps:.1f} |")


if __name__ == "__main__":
    main()
