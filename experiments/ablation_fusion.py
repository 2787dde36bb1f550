"""Does canonical fusion help? tiny with fusion, with the views kept apart, and with a ReLU last fusion layer.

    python benchmarks/ablation_fusion.py [--seeds 0 1 2] [--epochs 5] [--steps-per-epoch 100]

The paper's central claim is that fusing the views' canonical codes beats processing each view
on its own. On the demo's synthetic set (whose bodies occlude themselves in some views), three
variants of ``tiny``, each trained with the same budget, data and recipe once per seed:

* ``fusion`` (the default): the views' canonical codes concatenated and fused by 1x1 convs,
  the last one linear;
* ``apart``: ``fusion_layers=0``, each view's code goes back through the FTL alone (the DLT is
  the only place where views meet);
* ``relu-last``: the fusion with BN + ReLU after its last layer (the canonical points forced
  into the positive orthant, as this repo had it before).

Each run keeps the epoch with the lowest validation MPJPE (held-out S7 trials); the table gives
that validation MPJPE and the test on S11 (root found in the videos), per variant as mean and
standard deviation over seeds, and the paired differences to ``fusion`` (same seed).
"""
from __future__ import annotations

import argparse
import dataclasses

from experiments import synthetic_runs

import model

METRICS = (("mpjpe_mm", "MPJPE"), ("mpjpe_relative_mm", "MPJPE rel."), ("p_mpjpe_mm", "P-MPJPE"),
           ("error_2d_px", "2D px"))


def variants() -> list:
    tiny = model.CONFIGS["tiny"]
    return [synthetic_runs.Variant("fusion", tiny),
            synthetic_runs.Variant("apart", dataclasses.replace(tiny, fusion_layers=0, name="tiny-apart")),
            synthetic_runs.Variant("relu-last", dataclasses.replace(tiny, fusion_last_relu=True, name="tiny-relu-last"))]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    synthetic_runs.add_arguments(parser)
    options = parser.parse_args(argv)
    runs = synthetic_runs.SyntheticRuns(options)
    seeds, table = options.seeds, {}
    for variant in variants():
        for seed in seeds:
            runs.train(variant, seed)
        table[variant.name] = {"val": [runs.validation_mpjpe(variant, seed) for seed in seeds],
                               **{key: [runs.test(variant, seed)[key] for seed in seeds] for key, _ in METRICS}}
    print(f"\ntiny on the synthetic set, {runs.total_steps} steps per run, seeds {seeds}; val = validation MPJPE of "
          "the selected epoch (held-out S7 trials); test on S11 with the root found in the videos; mean +- sd over seeds")
    print("| variant | val MPJPE | " + " | ".join(f"test {title}" for _, title in METRICS) + " |")
    print("|---" * (2 + len(METRICS)) + "|")
    for name, values in table.items():
        print(f"| {name} | {synthetic_runs.mean_sd(values['val'])} | "
              + " | ".join(synthetic_runs.mean_sd(values[key]) for key, _ in METRICS) + " |")
    for key, title in (("val", "val MPJPE"), *METRICS):
        differences = synthetic_runs.paired({name: values[key] for name, values in table.items()}, "fusion")
        print(f"{title}, minus fusion's (paired by seed): " + "; ".join(
            f"{name} {mean:+.1f} +- {sd:.1f} (per seed "
            + ", ".join(f"{v - b:+.1f}" for v, b in zip(table[name][key], table["fusion"][key])) + ")"
            for name, (mean, sd) in differences.items()))


if __name__ == "__main__":
    main()
