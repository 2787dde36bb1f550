"""When should the 3D (DLT) term start? The default warm-up, chosen on the validation split only.

    python benchmarks/tune_warmup_3d.py [--fractions 0 0.45 0.7] [--seeds 0 1] [--epochs 5] [--steps-per-epoch 100]

``tiny`` on the demo's synthetic set, the demo's recipe, once per fraction and seed: the 3D term's
weight is 0 for that fraction of the training steps, then ramps up (``--ramp-3d-steps``) to
``--weight-3d``. Each run keeps its epoch with the lowest validation MPJPE (held-out S7 trials); the
table gives that validation MPJPE per fraction (mean +- sd over seeds, and per seed), and each
fraction's paired difference to the default (``options.WARMUP_3D_FRACTION``) on the same
seed: a default should move only for a difference larger than the seeds' spread. Nothing here
looks at the test subject.
"""
from __future__ import annotations

import argparse

import numpy as np

from experiments import synthetic_runs

import model
from options import WARMUP_3D_FRACTION


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    synthetic_runs.add_arguments(parser)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.0, 0.45, 0.7],
                        help="fractions of the training steps with the 3D weight at 0")
    parser.set_defaults(seeds=[0, 1])
    options = parser.parse_args(argv)
    runs = synthetic_runs.SyntheticRuns(options)
    results = {}
    for fraction in options.fractions:
        steps = round(fraction * runs.total_steps)
        # The default fraction's runs are the plain "fusion" runs of the other ablations.
        variant = (synthetic_runs.Variant("fusion", model.CONFIGS["tiny"])
                   if np.isclose(fraction, WARMUP_3D_FRACTION) else
                   synthetic_runs.Variant(f"warmup3d-{fraction:g}", model.CONFIGS["tiny"], (("warmup_3d_steps", steps),)))
        for seed in options.seeds:
            runs.train(variant, seed)
        results[fraction] = [runs.validation_mpjpe(variant, seed) for seed in options.seeds]
    print(f"\nValidation MPJPE (mm, held-out S7 trials, the selected epoch) of tiny, {runs.total_steps} steps, "
          f"3D ramp {runs.settings.ramp_3d_steps} steps, seeds {options.seeds}:")
    print("| 3D warm-up (fraction of steps) | steps | val MPJPE | per seed |")
    print("|---|---|---|---|")
    for fraction, values in results.items():
        print(f"| {fraction:g} | {round(fraction * runs.total_steps)} | {synthetic_runs.mean_sd(values)} | "
              + ", ".join(f"{v:.1f}" for v in values) + " |")
    best = min(results, key=lambda fraction: np.mean(results[fraction]))
    print(f"Lowest mean validation MPJPE: warm-up fraction {best:g} (the default is "
          f"{WARMUP_3D_FRACTION:g}).")
    default = next((results[f] for f in results if np.isclose(f, WARMUP_3D_FRACTION)), None)
    if default is not None:
        for fraction, values in results.items():
            difference = np.subtract(values, default)
            print(f"  {fraction:g} minus the default, paired by seed: {difference.mean():+.1f} +- "
                  f"{difference.std():.1f} (per seed {', '.join(f'{d:+.1f}' for d in difference)})")


if __name__ == "__main__":
    main()
