"""Does canonical fusion help, and where? Fusion variants trained side by side, split by per-joint visibility.

    python -m experiments.ablation_fusion [--variants concat skip apart] [--seeds 0 1 2]
        [--epochs 8 --steps-per-epoch 125] [--data-dir DIR] [--config tiny|resnet50|paper]

The paper's central claim is that fusing the views' canonical codes beats processing each view
on its own, because a view that cannot see a joint learns where it is from the others. Each
variant of ``--config`` is trained with the same budget, data and recipe (the demo's) once per
seed; runs on disk are reused, so the tool resumes where it stopped:

* ``concat``: the paper's fusion: the views' canonical codes side by side, 1x1 convs, last linear;
* ``skip``: ``concat`` plus a per-view skip: each view's decoder also gets its own code beside the
  fused code mapped back into the view, so fusion can only add information;
* ``mean``: the order-free fusion (shared 1x1 layer per view, mean over views);
* ``apart``: ``fusion_layers=0``, each view's code goes back through the FTL alone (the DLT is
  the only place where views meet);
* ``paper-ratios``: ``concat`` with the paper's capacity ratios: per-view code 300/2048 of the
  encoder's channels (3N), decoder input as wide as the encoder (2048/2048);
* ``relu-last``: ``concat`` with BN + ReLU after its last layer.

Each run keeps the epoch with the lowest validation MPJPE; before it is scored its BatchNorm
statistics are re-estimated on ``--bn-batches`` training batches (``synthetic_runs.evaluate``).
The table gives validation MPJPE and the test (S11, root found in the videos) per variant as mean
+- sd over seeds, with the errors on visible and hidden joints where the data set stores
visibility (the synthetic sets do: ``python -m synthetic.synthetic_h36m --out DIR --hard`` makes
one where views are often blind), then the paired differences to the first variant with their
sign per seed. Variants run seed by seed, so an interrupted tool leaves paired runs behind.
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from experiments import synthetic_runs

import model

# (key, column title): validation, the test's means over actions, then the visibility split.
COLUMNS = (("val_mpjpe_mm", "val MPJPE"), ("mpjpe_mm", "test MPJPE"), ("p_mpjpe_mm", "test P-MPJPE"),
           ("error_2d_px", "2D px"), ("error_2d_visible_px", "2D visible"), ("error_2d_hidden_px", "2D hidden"),
           ("mpjpe_seen_by_all_mm", "MPJPE seen by all"), ("mpjpe_partly_hidden_mm", "partly hidden"),
           ("mpjpe_fully_hidden_mm", "fully hidden"))
PAPER_CODE_RATIO = 300 / 2048      # the paper's per-view code (3N = 300) over its encoder's 2048 channels


def _encoder_channels(config: model.ModelConfig) -> int:
    return config.encoder_filters[-1] if config.backbone == "tiny" else 2048


def variants(base: model.ModelConfig) -> dict:
    """{name: synthetic_runs.Variant} of ``base`` (a concat config), in the order of the docstring."""
    channels = _encoder_channels(base)
    configs = {
        "concat": base,
        "skip": dataclasses.replace(base, view_skip=True),
        "mean": dataclasses.replace(base, fusion="mean"),
        "apart": dataclasses.replace(base, fusion_layers=0),
        "paper-ratios": dataclasses.replace(base, latent_points=max(1, round(channels * PAPER_CODE_RATIO / 3)),
                                            decoder_input_filters=channels),
        "relu-last": dataclasses.replace(base, fusion_last_relu=True),
    }
    return {name: synthetic_runs.Variant(name, dataclasses.replace(config, name=f"{base.name}-{name}"))
            for name, config in configs.items()}


VARIANT_NAMES = tuple(variants(model.CONFIGS["tiny"]))


def table_values(result: dict) -> dict:
    """{column key: value} of one run's ``synthetic_runs.evaluate`` result."""
    return {key: result.get(key, result["visibility"].get(key)) for key, _ in COLUMNS}


def format_report(table: dict, seeds: list, baseline: str) -> str:
    """The table (mean +- sd over seeds) and the paired differences to ``baseline``, sign per seed.

    table: {variant: {column key: [value per seed]}} (NaN where the data has no visibility)."""
    lines = ["| variant | " + " | ".join(title for _, title in COLUMNS) + " |", "|---" * (1 + len(COLUMNS)) + "|"]
    lines += [f"| {name} | " + " | ".join(synthetic_runs.mean_sd(values[key]) for key, _ in COLUMNS) + " |"
              for name, values in table.items()]
    for key, title in COLUMNS:
        if len(table) < 2 or baseline not in table or all(np.isnan(table[baseline][key])):
            continue
        differences = synthetic_runs.paired({name: values[key] for name, values in table.items()}, baseline)
        lines.append(f"{title} minus {baseline}'s (paired by seed {seeds}): " + "; ".join(
            f"{name} {mean:+.2f} +- {sd:.2f} (per seed "
            + ", ".join(f"{v - b:+.2f}" for v, b in zip(table[name][key], table[baseline][key]))
            + f"; lower in {sum(v < b for v, b in zip(table[name][key], table[baseline][key]))}/{len(seeds)})"
            for name, (mean, sd) in differences.items()))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    synthetic_runs.add_arguments(parser)
    parser.add_argument("--variants", nargs="+", default=["concat", "skip", "apart", "mean", "paper-ratios"],
                        choices=VARIANT_NAMES, help="variants to train and compare; the first is the baseline")
    parser.add_argument("--config", default="tiny", choices=tuple(model.CONFIGS),
                        help="the model the variants change (paper: ResNet-152 at 256 px, for a GPU)")
    parser.add_argument("--partial", action="store_true",
                        help="train nothing: score each unfinished run at the last epoch it saved (the header "
                             "says which), to report interrupted runs")
    parser.set_defaults(epochs=8, steps_per_epoch=125)  # the demo's budget
    options = parser.parse_args(argv)
    runs = synthetic_runs.SyntheticRuns(options)
    chosen = variants(model.CONFIGS[options.config])
    results, epochs = {name: [] for name in options.variants}, []
    for seed in options.seeds:
        for name in options.variants:
            result = runs.evaluate(chosen[name], seed, partial=options.partial)
            results[name].append(table_values(result))
            epochs.append(f"{name}/{seed}: {result['epoch']}")
    table = {name: {key: [values[key] for values in rows] for key, _ in COLUMNS} for name, rows in results.items()}
    print(f"\n{options.config} on {options.demo_dir}, {runs.total_steps} steps per run, seeds {options.seeds}; "
          f"BatchNorm re-estimated on {options.bn_batches} training batches; val = validation MPJPE of the selected "
          f"epoch; test on the held-out subject, --test-root {options.test_root} (mean over actions; the "
          "visibility split over frames); mm and crop px; mean +- sd over seeds")
    print(f"Epoch scored per run ({options.steps_per_epoch} steps each): {', '.join(epochs)}")
    print(format_report(table, options.seeds, options.variants[0]))


if __name__ == "__main__":
    main()
