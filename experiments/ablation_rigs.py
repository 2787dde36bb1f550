"""Any rig: the paper's concat fusion vs the order-free mean fusion, with and without the rig augmentations.

    python benchmarks/ablation_rigs.py [--seeds 0 1 2] [--epochs 5] [--steps-per-epoch 100] [--frames 60]

Four variants of ``tiny``, each trained on the demo's synthetic set (Human3.6M's rig) with the same
budget once per seed: ``concat`` and ``mean`` fusion, each with and without ``--augment-rig``
(crops turned as by a camera roll, box scaled, the world turned about the vertical and moved,
and for ``mean`` random subsets of 2..4 views in random order). Each is then tested (S11 with the
root found in the videos; the other rigs with crops around the labelled pelvis, so that the
fusion is compared, not the root finder):

* on the held-out S11 with its 4 cameras; ``mean`` also on the first 3 and the first 2 of them;
  ``concat`` also with the 4 views given in another order;
* on the synthetic S11 person filmed by the REAL cameras of other people's rigs: the pose2sim
  demo's 4 (portrait 1088 x 1920, 3 m away, looking down; rendered at ``--pose2sim-scale``) and
  4, 6 and 11 of the EasyMocap sample's 11 (1920 x 1080, rendered at ``--easymocap-scale``);
  ``concat`` only where the rig has 4 cameras (it runs on the number it was trained with).

The table gives MPJPE (mm, mean over actions for S11, over frames for the rigs) as mean +- sd over
seeds, and the paired difference of each variant to ``concat`` on the same seed.
"""
from __future__ import annotations

import argparse
import itertools
import os

import numpy as np

from experiments import synthetic_runs

from rig import calibration
import h36m_utils
from common import metrics
from rig import inference
import model
from synthetic import synthetic_rig
from common import model_loading

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir, "shared",
                       "calibration_samples")
RIG_ACTIONS = ("Walking", "SittingDown")
EASYMOCAP_SUBSETS = {4: ("11", "15", "25", "31"), 6: ("11", "13", "17", "25", "27", "9"), 11: None}


def variants() -> list:
    tiny = model.CONFIGS["tiny"]
    mean = model.get_config("tiny", "mean")
    augmented = (("augment_rig", True),)
    return [synthetic_runs.Variant("fusion", tiny),  # concat: shared with ablation_fusion.py
            synthetic_runs.Variant("mean", mean),
            synthetic_runs.Variant("fusion-augment", tiny, augmented),
            synthetic_runs.Variant("mean-augment", mean, augmented)]


def render_rigs(options) -> dict:
    """{rig name: [recordings, one per action]}: the synthetic S11 person through the real rigs."""
    pose2sim = calibration.load_calibration(os.path.join(SAMPLES, "pose2sim", "Calib.toml"))
    easymocap = calibration.load_calibration(os.path.join(SAMPLES, "easymocap"))
    easymocap = calibration.with_image_sizes(easymocap, {name: (1920, 1080) for name in easymocap.names})
    rigs = {"pose2sim (4)": synthetic_rig.scale_images(pose2sim.cameras, options.pose2sim_scale)}
    all_eleven = synthetic_rig.scale_images(easymocap.cameras, options.easymocap_scale)
    for count, names in EASYMOCAP_SUBSETS.items():
        rigs[f"EasyMocap ({count})"] = [c for c in all_eleven if names is None or c.id in names]
    recordings = {}
    for name, cameras in rigs.items():
        folder = os.path.join(options.work_dir, "rigs", name.replace(" ", "").replace("(", "-").replace(")", ""))
        recordings[name] = []
        for action in RIG_ACTIONS:
            out = os.path.join(folder, action)
            if not os.path.isfile(os.path.join(out, synthetic_rig.GROUND_TRUTH_FILE)):
                synthetic_rig.render_rig(cameras, out, frames=options.frames, action=action, subject="S11")
            truth = np.load(os.path.join(out, synthetic_rig.GROUND_TRUTH_FILE))
            recordings[name].append((cameras, [os.path.join(out, f"{c.id}.mp4") for c in cameras], truth["joints_3d"]))
    return recordings


def rig_mpjpe(runs, variant, seed, recordings) -> float | None:
    """MPJPE (mm, over every frame of every action) of a run on a rendered rig; None where a concat
    model cannot run (another number of cameras)."""
    cameras = recordings[0][0]
    if variant.config.fusion == "concat" and len(cameras) != len(h36m_utils.CAMERA_IDS):
        return None
    args = runs.args(variant, seed)
    network, config, _ = model_loading.load_model(args, runs.train(variant, seed), len(cameras), "predict",
                                                  config=variant.config)
    errors = []
    for cameras, videos, truth in recordings:
        # Crops around the labelled pelvis: the fusion is compared here, not the root finder (which
        # bench_predict.py measures on other rigs).
        predicted = inference.poses_from_videos(network, cameras, videos, np.arange(len(truth)),
                                             image_size=config.image_size, box_mm=args.box_mm, roots=truth[:, 0],
                                             progress=False)
        errors.append(metrics.mpjpe(predicted.joints_3d, truth[:len(predicted.frames)]))
    return float(np.mean(np.concatenate(errors)))


def evaluations(runs, variant, seed, recordings) -> dict:
    """{column: MPJPE} of one run."""
    ids = h36m_utils.CAMERA_IDS
    row = {"S11, 4 views": runs.test(variant, seed)["mpjpe_mm"]}
    if variant.config.fusion == "mean":
        for count in (3, 2):
            subsets = list(itertools.combinations(ids, count))[:1]  # the first cameras: a triple, a pair
            row[f"S11, {count} views"] = float(np.mean([runs.test(variant, seed, camera_ids=subset)["mpjpe_mm"]
                                                        for subset in subsets]))
    else:
        row["S11, views permuted"] = runs.test(variant, seed, camera_ids=(ids[1], ids[0], ids[3], ids[2]))["mpjpe_mm"]
    for name, rig in recordings.items():
        row[name] = rig_mpjpe(runs, variant, seed, rig)
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    synthetic_runs.add_arguments(parser)
    parser.add_argument("--frames", type=int, default=60, help="frames per action (Walking, SittingDown) rendered "
                                                               "through each real rig")
    parser.add_argument("--pose2sim-scale", type=float, default=0.5, help="render the pose2sim rig at this scale")
    parser.add_argument("--easymocap-scale", type=float, default=0.25, help="render the EasyMocap rig at this scale")
    options = parser.parse_args(argv)
    runs = synthetic_runs.SyntheticRuns(options)
    recordings = render_rigs(options)
    rows = {variant.name: [evaluations(runs, variant, seed, recordings) for seed in options.seeds]
            for variant in variants()}
    columns = list(dict.fromkeys(column for per_seed in rows.values() for column in per_seed[0]))
    print(f"\nMPJPE (mm), tiny, {runs.total_steps} steps per run, seeds {options.seeds}, S11 with the root found in the videos, other rigs around the labelled pelvis; "
          "mean +- sd over seeds; '-': the model cannot run there")
    print("| variant | " + " | ".join(columns) + " |")
    print("|---" * (1 + len(columns)) + "|")
    for name, per_seed in rows.items():
        cells = []
        for column in columns:
            values = [row.get(column) for row in per_seed]
            cells.append("-" if any(v is None for v in values) else synthetic_runs.mean_sd(values))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nMinus concat ('fusion') on the same seed:")
    for name, per_seed in rows.items():
        if name == "fusion":
            continue
        parts = []
        for column in columns:
            base = [row.get(column) for row in rows["fusion"]]
            mine = [row.get(column) for row in per_seed]
            if None not in base and None not in mine:
                difference = np.subtract(mine, base)
                parts.append(f"{column} {difference.mean():+.1f} +- {difference.std():.1f}")
        print(f"  {name}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
