"""What each view's 2D joints owe to the OTHER views, split by whether the view sees the joint.

    python -m experiments.view_reliance --data-dir DIR --work-dir W [--variants concat skip apart]
        [--seeds 0 1 2] [--epochs 8 --steps-per-epoch 125] [--test-root labels]

The runs are ``ablation_fusion``'s (same flags, same work folder: nothing is trained again when
they are on disk). Each is scored as there (BatchNorm re-estimated), on the held-out subject,
without refinements, as it is and then once per kept view k with the crops of every view but k
replaced by the same cameras' crops of the validation subject (another person, another moment:
real crops that say nothing about this sample; the cameras and crop matrices stay the sample's
own). Only view k's 2D error is counted, on joints it sees (visible) and on joints hidden from it.
The views kept apart are the control: their 2D joints cannot depend on the other views, so the
replacement changes nothing. A fusion that uses the other views only where view k is blind raises
the hidden joints' error and leaves the visible ones alone.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os

import numpy as np

from common import visibility
from experiments import ablation_fusion
from experiments import synthetic_runs

import model

DONOR_BATCHES = 50  # validation batches whose crops replace the other views, in turn


class OtherViewsReplaced:
    """``network`` with every view but ``kept_view`` replaced by the same views of donor samples:
    donors, (B', V, S, S, 3) image batches, taken in turn, one per call, from the first."""

    def __init__(self, network, kept_view: int, donors):
        self.network, self.kept_view, self.donors = network, kept_view, itertools.cycle(donors)

    def predict_on_batch(self, inputs: dict) -> dict:
        images, donor = np.array(inputs["images"]), next(self.donors)
        others = np.arange(images.shape[1]) != self.kept_view
        images[:, others] = donor[np.arange(len(images)) % len(donor)][:, others]
        return self.network.predict_on_batch({**inputs, "images": images})


def view_errors(predictions, image_size: int, view: int) -> dict:
    """{"visible": mean 2D px, "hidden": mean 2D px} of ``view``'s joints in ``predictions``."""
    hidden = visibility.hidden_joint_views(predictions.visible, predictions.kp2d_true, image_size)[:, view]
    error = np.linalg.norm(predictions.kp2d_pred - predictions.kp2d_true, axis=-1)[:, view]
    return {"visible": float(error[~hidden].mean()), "hidden": float(error[hidden].mean())}


def reliance(runs: synthetic_runs.SyntheticRuns, variant: synthetic_runs.Variant, seed: int) -> dict:
    """{"as_is" | "replaced": {"visible", "hidden"}: 2D px over the views}, cached beside the run."""
    import evaluation
    from train import splits
    from train import run
    path = os.path.join(runs.folder(variant, seed),
                        f"reliance-bn{runs.options.bn_batches}-{runs.options.test_root}.json")
    if os.path.isfile(path):
        return json.load(open(path))
    args = runs.args(variant, seed)
    network, config = runs.scoring_network(variant, seed, runs.train(variant, seed))
    sequences, cameras, _ = splits.load_split(args, args.test_subjects, "test")
    _, validation, validation_cameras, _ = splits.load_training_splits(args)
    donors = [np.asarray(inputs["images"]) for inputs, _ in run.dataset(
        args, validation, validation_cameras, config, args.batch_size, training=False, stride=args.val_stride,
        drop_remainder=True).take(DONOR_BATCHES)]

    def predicted(fed):
        return evaluation.predict(fed, sequences, cameras, stride=args.test_stride, refinements=0,
                                  image_size=config.image_size, box_mm=args.box_mm, root=runs.options.test_root,
                                  progress=False)
    as_is = predicted(network)
    if np.isnan(as_is.visible).any():
        raise SystemExit(f"{runs.root}: its test sequences store no per-joint visibility (Visibility/*.cdf, "
                         "which the synthetic sets write), so visible and hidden joints cannot be told apart.")
    views = range(as_is.kp2d_pred.shape[1])
    errors = {"as_is": [view_errors(as_is, config.image_size, view) for view in views],
              "replaced": [view_errors(predicted(OtherViewsReplaced(network, view, donors)), config.image_size, view)
                           for view in views]}
    result = {kind: {group: float(np.mean([e[group] for e in views])) for group in ("visible", "hidden")}
              for kind, views in errors.items()}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return result


def format_table(results: dict) -> str:
    """results: {variant: [reliance() per seed]} -> the table, mean +- sd over seeds."""
    lines = ["| variant | 2D visible | others replaced | rise | 2D hidden | others replaced | rise |",
             "|---" * 7 + "|"]
    for name, seeds in results.items():
        cells = []
        for group in ("visible", "hidden"):
            as_is = [result["as_is"][group] for result in seeds]
            replaced = [result["replaced"][group] for result in seeds]
            cells += [synthetic_runs.mean_sd(values, 2) for values in (as_is, replaced, np.subtract(replaced, as_is))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    synthetic_runs.add_arguments(parser)
    parser.add_argument("--variants", nargs="+", default=["concat", "skip", "apart"],
                        choices=ablation_fusion.VARIANT_NAMES)
    parser.add_argument("--config", default="tiny", choices=tuple(model.CONFIGS))
    parser.set_defaults(epochs=8, steps_per_epoch=125)  # the demo's budget, as ablation_fusion
    options = parser.parse_args(argv)
    runs = synthetic_runs.SyntheticRuns(options)
    chosen = ablation_fusion.variants(model.CONFIGS[options.config])
    results = {name: [reliance(runs, chosen[name], seed) for seed in options.seeds] for name in options.variants}
    print(f"\n{options.config} on {options.demo_dir}, {runs.total_steps} steps per run, seeds {options.seeds}; "
          f"2D error (crop px) of each view on the held-out subject, as it is and with the other views' crops "
          f"replaced by the validation subject's, --test-root {options.test_root}, no refinements; mean +- sd over seeds")
    print(format_table(results))


if __name__ == "__main__":
    main()
