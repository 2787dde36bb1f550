"""What the root is worth: MPJPE with crops around the labelled pelvis moved by a random offset, vs the root found in the videos.

    python benchmarks/root_leak.py --weights checkpoints/best.weights.h5 [--config tiny] [--offsets 0 50 100 200]

On the demo's held-out S11 (every 5th frame), with one set of weights:

* ``labels + E``: crops around the LABELLED pelvis moved by a random offset, uniform in +-E mm per
  axis, one per frame, the same in every view (E = 0 is ``--root labels``: the box the papers that
  crop with ground-truth boxes use, and the leak: the crop centres triangulate to the answer);
* ``estimated``: the root found in the videos (``root_finder``), then re-centred on the model's
  own pelvis 0, 1 and 2 times (``--refinements``; 2 is the default of ``--mode test``).

The table gives MPJPE, pelvis-relative MPJPE and the root error (mm, mean over actions).
"""
from __future__ import annotations

import argparse
import os

import numpy as np


import evaluation  # noqa: E402
from common import model_loading  # noqa: E402
from options import DEMO_DIR  # noqa: E402
from synthetic import demo  # noqa: E402
from train import splits  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--weights", required=True, help="trained weights (e.g. the demo's best.weights.h5)")
    parser.add_argument("--config", default="tiny", help="their config")
    parser.add_argument("--demo-dir", default=DEMO_DIR, help="the synthetic data set")
    parser.add_argument("--offsets", type=float, nargs="+", default=[0, 50, 100, 200], help="E, mm")
    parser.add_argument("--refinements", type=int, nargs="+", default=[0, 1, 2])
    options = parser.parse_args(argv)
    root = os.path.abspath(options.demo_dir)
    demo.ensure_synthetic_data(root)
    args = demo.recipe(root, config=options.config)
    sequences, cameras, _ = splits.load_split(args, args.test_subjects, "test")
    network, config, _ = model_loading.load_model(args, options.weights, 4, "test")

    def scores(**kwargs) -> dict:
        predictions = evaluation.predict(network, sequences, cameras, stride=args.test_stride,
                                         image_size=config.image_size, box_mm=args.box_mm, progress=False, **kwargs)
        return evaluation.summarize(predictions).over_actions

    rows = []
    for offset in options.offsets:
        rng = np.random.default_rng(0)
        rows.append((f"labels + U(-/+{offset:g} mm)", scores(root="labels", moved_labels=lambda pelvis: pelvis + rng.uniform(
            -offset, offset, pelvis.shape))))
    for refinements in options.refinements:
        rows.append((f"estimated, {refinements} refinement(s)", scores(root="estimated", refinements=refinements)))
    print(f"\n{config.name} weights {options.weights}; S11, frame stride {args.test_stride}; mean over actions, mm")
    print("| crops centred on | MPJPE | MPJPE rel. | root error |")
    print("|---|---|---|---|")
    for name, values in rows:
        print(f"| {name} | {values['mpjpe_mm']:.1f} | {values['mpjpe_relative_mm']:.1f} | {values['root_error_mm']:.1f} |")


if __name__ == "__main__":
    main()
