"""Does the 3D (DLT) term help? Fine-tune one 2D-trained tiny model for the same number of
steps with ``--loss 2d`` and with ``--loss 2d+3d``, and test both on the held-out synthetic subject.

    python benchmarks/finetune_3d.py [--base-weights checkpoints/last.weights.h5] [--steps 300]

Without --base-weights, a base model is first trained with the 2D loss alone (--base-steps).
Both fine-tunings start from the same weights, with the same seed, data, learning rate and
number of steps; only the loss differs. The data order is not deterministic (parallel
interleaving), so one run per variant cannot tell a 1-2 mm effect from noise: --seeds repeats
each fine-tuning once per seed and prints every run, the means and the paired differences.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import train_and_test  # noqa: E402


def run(argv: list[str]) -> None:
    code = train_and_test.main(argv)
    if code != 0:
        raise SystemExit(f"train_and_test.py {' '.join(argv)} failed with exit code {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--demo-dir", default=train_and_test.DEMO_DIR, help="the synthetic data set")
    parser.add_argument("--work-dir", default="outputs/finetune_3d", help="checkpoints and metrics of the runs")
    parser.add_argument("--base-weights", default=None, help="2D-trained tiny weights to start from")
    parser.add_argument("--base-steps", type=int, default=600, help="steps of 2D training for the base")
    parser.add_argument("--steps", type=int, default=300, help="fine-tuning steps of each variant")
    parser.add_argument("--lr", type=float, default=5e-4, help="fine-tuning peak learning rate")
    parser.add_argument("--weight-3d", type=float, default=1e-4, help="3D-term weight of the 2d+3d variant")
    parser.add_argument("--test-stride", type=int, default=5, help="test on every n-th held-out frame")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="one fine-tuning of each variant per seed")
    options = parser.parse_args()

    root = os.path.abspath(options.demo_dir)
    train_and_test.ensure_synthetic_data(root)
    settings = train_and_test.demo_args(train_and_test.parse_args(["--demo-dir", root]))
    data = ["--data-dir", settings.data_dir, "--labels-dir", settings.labels_dir,
            "--cameras", settings.cameras, "--train-subjects", *settings.train_subjects,
            "--test-subjects", *settings.test_subjects, "--config", "tiny",
            "--batch-size", str(settings.batch_size), "--verbose", "2"]
    base = options.base_weights
    if base is None:
        base_dir = os.path.join(options.work_dir, "base")
        run(["--mode", "train", *data, "--loss", "2d", "--epochs", "1", "--steps-per-epoch",
             str(options.base_steps), "--lr", str(settings.lr), "--val-stride", "0",
             "--checkpoint-dir", base_dir, "--log-dir", os.path.join(base_dir, "logs")])
        base = os.path.join(base_dir, "last.weights.h5")

    results = {}  # (loss, seed) -> metrics.json content plus training seconds
    for seed in options.seeds:
        for loss in ("2d", "2d+3d"):
            out = os.path.join(options.work_dir, f"{loss.replace('+', '_')}_seed{seed}")
            start = time.time()
            run(["--mode", "train", *data, "--loss", loss, "--weights", base, "--epochs", "1",
                 "--steps-per-epoch", str(options.steps), "--lr", str(options.lr),
                 "--lr-warmup-steps", "0", "--weight-3d", str(options.weight_3d), "--val-stride", "0",
                 "--seed", str(seed), "--checkpoint-dir", out, "--log-dir", os.path.join(out, "logs")])
            seconds = time.time() - start
            run(["--mode", "test", *data, "--weights", os.path.join(out, "last.weights.h5"),
                 "--test-stride", str(options.test_stride), "--output-dir", out,
                 "--images-dir", os.path.join(out, "imgs")])
            with open(os.path.join(out, "metrics.json"), encoding="utf-8") as handle:
                results[loss, seed] = {**json.load(handle), "seconds": seconds}
    run(["--mode", "test", *data, "--weights", base, "--test-stride", str(options.test_stride),
         "--output-dir", os.path.join(options.work_dir, "base_test"),
         "--images-dir", os.path.join(options.work_dir, "base_test", "imgs")])
    with open(os.path.join(options.work_dir, "base_test", "metrics.json"), encoding="utf-8") as handle:
        base_metrics = json.load(handle)

    print(f"\nFine-tuning {options.steps} steps from {base} (SYNTHETIC data, held-out subject "
          f"{', '.join(settings.test_subjects)}, frame stride {options.test_stride}, "
          f"{base_metrics['num_frames']} frames):")
    columns = ("mpjpe_mm", "mpjpe_relative_mm", "p_mpjpe_mm", "error_2d_px")
    print(f"{'variant':<30}{'MPJPE':>9}{'MPJPE rel.':>12}{'P-MPJPE':>10}{'2D err (px)':>13}{'train s':>9}")

    def row(name, values, seconds=None):
        print(f"{name:<30}{values[0]:>9.1f}{values[1]:>12.1f}{values[2]:>10.1f}{values[3]:>13.2f}"
              f"{'' if seconds is None else f'{seconds:.0f}':>9}")

    row("start (2D-trained)", [base_metrics[c] for c in columns])
    for (loss, seed), metrics in results.items():
        row(f"+{options.steps} steps {loss}, seed {seed}", [metrics[c] for c in columns], metrics["seconds"])
    means = {loss: np.mean([[results[loss, s][c] for c in columns] for s in options.seeds], axis=0)
             for loss in ("2d", "2d+3d")}
    for loss, values in means.items():
        row(f"mean over {len(options.seeds)} seed(s), {loss}", values)
    differences = np.array([[results["2d+3d", s][c] - results["2d", s][c] for c in columns]
                            for s in options.seeds])
    row("2d+3d minus 2d, mean", differences.mean(axis=0))
    print("2d+3d minus 2d per seed, MPJPE (mm): "
          + ", ".join(f"{d:+.1f}" for d in differences[:, 0]))

if __name__ == "__main__":
    main()
