"""Does training through the DLT help? 2D-only vs 2D+3D fine-tuning, the 3D term tuned on validation.

    python benchmarks/finetune_3d.py [--base-steps 900] [--steps 200] [--weights-3d 1e-4 1e-3]
                                     [--tune-seeds 0 1] [--seeds 0 1 2 3 4]

On the demo's synthetic set (training S1 S5 S6 S7 minus the last trial of every action of S7,
which is the validation split; S11 held out for the test):

1. a base model is trained with the 2D loss alone (``--base-steps``);
2. tuning, on the validation split only: from the base, ``--steps`` of fine-tuning with
   ``--loss 2d`` and with ``--loss 2d+3d`` at every ``--weights-3d`` x ``--warmups-3d`` (steps with
   the 3D weight at 0 before a linear ramp over the same number of steps), once per
   ``--tune-seeds``; each scored by its final validation MPJPE (``val_kp3d_mpjpe``);
3. the test: the 2D-only and the best 2D+3D setting, once per ``--seeds``, each tested on S11;
   printed per seed, as mean and standard deviation, and as paired differences.

Every run starts from the same weights with the same data and steps; only the loss differs.
A table row is a setting; nothing in step 2 looks at S11.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np


import train_and_test  # noqa: E402
from options import DEMO_DIR  # noqa: E402
from synthetic import demo  # noqa: E402

METRICS = ("mpjpe_mm", "mpjpe_relative_mm", "p_mpjpe_mm", "error_2d_px")


def run(argv: list[str]) -> None:
    code = train_and_test.main(argv)
    if code != 0:
        raise SystemExit(f"train_and_test.py {' '.join(argv)} failed with exit code {code}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--demo-dir", default=DEMO_DIR, help="the synthetic data set")
    parser.add_argument("--work-dir", default="outputs/finetune_3d", help="checkpoints and metrics of the runs")
    parser.add_argument("--base-steps", type=int, default=900, help="steps of 2D training for the base")
    parser.add_argument("--steps", type=int, default=200, help="fine-tuning steps of every run")
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning peak learning rate")
    parser.add_argument("--weights-3d", type=float, nargs="+", default=[1e-4, 1e-3],
                        help="3D-term weights tried on the validation split")
    parser.add_argument("--warmups-3d", type=int, nargs="+", default=[0, 100],
                        help="3D warm-up (= ramp) steps tried on the validation split")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0, 1], help="seeds of the tuning runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds of the test runs")
    parser.add_argument("--test-stride", type=int, default=5, help="test on every n-th held-out frame")
    return parser.parse_args(argv)


class Runner:
    """Fine-tunings from one base on the demo set; every run in its own folder under the work dir."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        root = os.path.abspath(options.demo_dir)
        demo.ensure_synthetic_data(root)
        settings = demo.recipe(root)
        self.data = ["--data-dir", settings.data_dir, "--labels-dir", settings.labels_dir,
                     "--cameras", settings.cameras, "--train-subjects", *settings.train_subjects,
                     "--test-subjects", *settings.test_subjects, "--config", "tiny",
                     "--batch-size", str(settings.batch_size), "--loss-2d", settings.loss_2d,
                     "--train-stride", str(settings.train_stride),
                     "--val-stride", str(settings.val_stride), "--verbose", "2"]
        self.settings = settings

    def folder(self, name: str) -> str:
        return os.path.join(self.options.work_dir, name)

    def train_base(self) -> str:
        out = self.folder("base")
        weights = os.path.join(out, "last.weights.h5")
        if not os.path.isfile(weights):
            run(["--mode", "train", *self.data, "--loss", "2d", "--epochs", "1", "--steps-per-epoch",
                 str(self.options.base_steps), "--lr", str(self.settings.lr),
                 "--checkpoint-dir", out, "--log-dir", os.path.join(out, "logs")])
        return weights

    def fine_tune(self, name: str, base: str, loss: str, weight_3d: float, warmup: int, seed: int) -> str:
        """Fine-tune from ``base``; returns the run's folder (its log holds the validation MPJPE)."""
        out = self.folder(name)
        if not os.path.isfile(os.path.join(out, "last.weights.h5")):
            run(["--mode", "train", *self.data, "--loss", loss, "--weights", base, "--epochs", "1",
                 "--steps-per-epoch", str(self.options.steps), "--lr", str(self.options.lr), "--lr-warmup-steps",
                 "0", "--weight-3d", str(weight_3d), "--warmup-3d-steps", str(warmup), "--ramp-3d-steps",
                 str(warmup), "--seed", str(seed), "--checkpoint-dir", out, "--log-dir", os.path.join(out, "logs")])
        return out

    def test(self, out: str, weights: str) -> dict:
        metrics_path = os.path.join(out, "metrics.json")
        if not os.path.isfile(metrics_path):
            run(["--mode", "test", *self.data, "--weights", weights, "--test-stride", str(self.options.test_stride),
                 "--output-dir", out, "--images-dir", os.path.join(out, "imgs")])
        with open(metrics_path, encoding="utf-8") as handle:
            return json.load(handle)


def validation_mpjpe(out: str) -> float:
    with open(os.path.join(out, "logs", "training.csv"), encoding="utf-8") as handle:
        return float(list(csv.DictReader(handle))[-1]["val_kp3d_mpjpe"])


def settings_to_try(options) -> list[tuple[str, float, int]]:
    """(loss, weight_3d, warm-up) of every tuning setting, 2D-only first."""
    return [("2d", 0.0, 0)] + [("2d+3d", weight, warmup) for weight in options.weights_3d
                               for warmup in options.warmups_3d]


def label(loss: str, weight: float, warmup: int) -> str:
    return "2d" if loss == "2d" else f"2d+3d w={weight:g} warm-up={warmup}"


def main(argv=None) -> int:
    options = parse_args(argv)
    runner = Runner(options)
    base = runner.train_base()
    tuning = {}
    for loss, weight, warmup in settings_to_try(options):
        scores = [validation_mpjpe(runner.fine_tune(f"tune_{loss}_{weight:g}_{warmup}_seed{seed}".replace("+", "_"),
                                                    base, loss, weight, warmup, seed))
                  for seed in options.tune_seeds]
        tuning[loss, weight, warmup] = scores
    best = min((key for key in tuning if key[0] == "2d+3d"), key=lambda key: np.mean(tuning[key]))
    results = {}
    for name, (loss, weight, warmup) in (("2d", ("2d", 0.0, 0)), ("2d+3d", best)):
        for seed in options.seeds:
            out = runner.fine_tune(f"test_{name}_seed{seed}".replace("+", "_"), base, loss, weight, warmup, seed)
            results[name, seed] = runner.test(out, os.path.join(out, "last.weights.h5"))
    start = runner.test(runner.folder("base_test"), base)
    print_tables(options, tuning, best, results, start)
    return 0


def print_tables(options, tuning, best, results, start) -> None:
    print(f"\nTuning on the validation split (last trial of every action of S7, never trained on), "
          f"{options.steps} fine-tuning steps from a {options.base_steps}-step 2D base; final val MPJPE (mm) "
          f"per seed {options.tune_seeds}:")
    print("| setting | val MPJPE, mean | per seed |\n| --- | ---: | --- |")
    for (loss, weight, warmup), scores in tuning.items():
        chosen = " (chosen)" if (loss, weight, warmup) == best else ""
        print(f"| {label(loss, weight, warmup)}{chosen} | {np.mean(scores):.1f} | "
              f"{', '.join(f'{s:.1f}' for s in scores)} |")
    print(f"\nTest on held-out S11 (frame stride {options.test_stride}, {start['num_frames']} frames), "
          f"seeds {options.seeds}: mean +- standard deviation over seeds")
    print("| variant | MPJPE | MPJPE rel. | P-MPJPE | 2D err (px) |\n| --- | ---: | ---: | ---: | ---: |")
    print("| start (2D base) | " + " | ".join(f"{start[m]:.1f}" for m in METRICS) + " |")
    for name in ("2d", "2d+3d"):
        values = np.array([[results[name, seed][m] for m in METRICS] for seed in options.seeds])
        title = "2D only" if name == "2d" else f"2D + 3D ({label(*best)})"
        print(f"| {title} | " + " | ".join(f"{m:.1f} +- {s:.1f}" for m, s in
                                         zip(values.mean(axis=0), values.std(axis=0, ddof=1))) + " |")
    differences = np.array([[results["2d+3d", s][m] - results["2d", s][m] for m in METRICS] for s in options.seeds])
    print("| 2D + 3D minus 2D only (paired) | " + " | ".join(
        f"{m:+.1f} +- {s:.1f}" for m, s in zip(differences.mean(axis=0), differences.std(axis=0, ddof=1))) + " |")
    print("MPJPE difference per seed (mm): " + ", ".join(f"{d:+.1f}" for d in differences[:, 0]))


if __name__ == "__main__":
    sys.exit(main())
