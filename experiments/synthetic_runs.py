"""Train and test variants of ``tiny`` on the demo's synthetic set, once per (variant, seed), kept on disk.

The ablations (``ablation_fusion.py``, ``ablation_rigs.py``, ``tune_warmup_3d.py``) compare
variants trained with the same budget and data; a run already on disk (its ``best.weights.h5``
and ``done.json`` naming the same budget) is reused, so an interrupted ablation goes on where it
stopped and two ablations share the runs they have in common. Everything is selected on the
validation split (``best.weights.h5``: the lowest validation MPJPE); the held-out S11 is only
tested.

``evaluate`` scores a run after re-estimating its BatchNorm statistics on ``--bn-batches``
training batches (``model.reestimate_batch_norm``): Keras' moving averages lag the weights by
about 100 steps, which at a few hundred steps measures BatchNorm rather than the architecture.
It gives the validation MPJPE and the test on S11, with the errors split by per-joint visibility
(``common.visibility``) where the data set stores it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

import numpy as np

from common import model_loading
from options import DEMO_DIR, OPTIONS
from synthetic import demo
from train import run, splits, training


@dataclasses.dataclass(frozen=True)
class Variant:
    """A model and training recipe: ``config`` (a ``model.ModelConfig``, named uniquely) and
    ``overrides`` of the demo's settings (e.g. ``{"augment_rig": True}``)."""

    name: str
    config: object
    overrides: tuple = ()


def cache_root_tracks() -> None:
    """Find each recording's roots once per process: the root finder does not depend on the model,
    and every run tests on the same videos (the same videos always come with the same cameras here)."""
    from rig import root_finder
    find_roots, found = root_finder.find_roots, {}

    def cached(videos, cameras, frames, **options):
        key = (tuple(videos), tuple(int(frame) for frame in frames), repr(options.get("background_videos")))
        if key not in found:
            found[key] = find_roots(videos, cameras, frames, **options)
        return found[key]
    root_finder.find_roots = cached


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every ablation shares: data, work folder, budget, seeds."""
    parser.add_argument("--data-dir", "--demo-dir", dest="demo_dir", default=DEMO_DIR,
                        help="a data set in Human3.6M's layout (Data/, Labels/ with camera-parameters.json); the "
                             "demo's synthetic set is made there once when the folder is the default; another "
                             "synthetic one: python -m synthetic.synthetic_h36m --out DIR --hard")
    parser.add_argument("--work-dir", default="outputs/ablation_runs", help="checkpoints and metrics of the runs")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of every run")
    parser.add_argument("--steps-per-epoch", type=int, default=100, help="steps per epoch of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per variant and seed")
    parser.add_argument("--test-root", choices=OPTIONS["root"].choices, default="estimated",
                        help="the test crops' root: found in the videos (the protocol) or the labelled pelvis (the "
                             "architecture alone, without the root finder's errors)")
    parser.add_argument("--bn-batches", type=int, default=50,
                        help="training batches to re-estimate BatchNorm's statistics on before evaluating (0: keep "
                             "the moving averages)")


class SyntheticRuns:
    """Runs of the demo recipe (``experiments/configs/demo.toml``) at a given budget."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        root = os.path.abspath(options.demo_dir)
        if options.demo_dir == DEMO_DIR:
            demo.ensure_synthetic_data(root)
        elif not os.path.isfile(os.path.join(root, "Labels", "camera-parameters.json")):
            raise SystemExit(f"--data-dir {root} holds no Labels/camera-parameters.json: give a data set in "
                             "Human3.6M's layout (e.g. python -m synthetic.synthetic_h36m --out DIR --hard).")
        self.root = root
        self.settings = demo.recipe(root, verbose=2)
        self.budget = {"epochs": options.epochs, "steps_per_epoch": options.steps_per_epoch}
        cache_root_tracks()

    def folder(self, variant: Variant, seed: int) -> str:
        return os.path.join(self.options.work_dir, f"{variant.name}-seed{seed}")

    def args(self, variant: Variant, seed: int) -> argparse.Namespace:
        folder = self.folder(variant, seed)
        checkpoints = os.path.join(folder, "checkpoints")
        interrupted = os.path.isdir(os.path.dirname(training.backup_path(checkpoints)))
        return demo.recipe(
            self.root, **self.budget, seed=seed, verbose=2, resume=interrupted,  # an interrupted run goes on
            checkpoint_dir=checkpoints, log_dir=os.path.join(folder, "logs"),
            output_dir=os.path.join(folder, "outputs"), images_dir=os.path.join(folder, "imgs"),
            **dict(variant.overrides))

    @property
    def total_steps(self) -> int:
        return self.options.epochs * self.options.steps_per_epoch

    def train(self, variant: Variant, seed: int) -> str:
        """The run's ``best.weights.h5`` (trained now unless a run of this budget is on disk)."""
        args = self.args(variant, seed)
        done = os.path.join(self.folder(variant, seed), "done.json")
        record = self.record(variant)
        if self.is_done(variant, seed):
            return os.path.join(args.checkpoint_dir, "best.weights.h5")
        print(f"== training {variant.name}, seed {seed} ({self.total_steps} steps)", flush=True)
        weights = run.run_train(args, config=variant.config)
        with open(done, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
        return weights

    def validation_mpjpe(self, variant: Variant, seed: int) -> float:
        """The selected epoch's validation MPJPE (mm), from the sidecar of ``best.weights.h5``."""
        sidecar = os.path.join(self.args(variant, seed).checkpoint_dir, "best.weights.h5.json")
        return float(json.load(open(sidecar))["logs"]["val_kp3d_mpjpe"])

    def test(self, variant: Variant, seed: int, root: str = "estimated", camera_ids=None) -> dict:
        """{metric: mean over actions} of the run on the held-out S11 (every 5th frame), from the
        videos with ``camera_ids`` (default: all four in order); cached beside the run."""
        import evaluation
        import h36m_utils
        camera_ids = tuple(camera_ids or h36m_utils.CAMERA_IDS)
        path = os.path.join(self.folder(variant, seed), f"test-{root}-{'-'.join(camera_ids)}.json")
        if os.path.isfile(path):
            return json.load(open(path))
        weights = self.train(variant, seed)
        args = self.args(variant, seed)
        sequences, cameras, _ = splits.load_split(args, args.test_subjects, "test")
        network, config, _ = model_loading.load_model(args, weights, len(camera_ids), "test", config=variant.config)
        predictions = evaluation.predict(network, sequences, cameras, stride=args.test_stride,
                                         image_size=config.image_size, box_mm=args.box_mm, root=root,
                                         camera_ids=camera_ids, progress=False)
        result = evaluation.summarize(predictions).over_actions
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
        return result


    def is_done(self, variant: Variant, seed: int) -> bool:
        """Whether the run of this budget finished training (``train`` would reuse it)."""
        done = os.path.join(self.folder(variant, seed), "done.json")
        return os.path.isfile(done) and json.load(open(done)) == self.record(variant)

    def record(self, variant: Variant) -> dict:
        return {"budget": self.budget, "overrides": dict(variant.overrides), "config": repr(variant.config)}

    def scoring_network(self, variant: Variant, seed: int, weights: str) -> tuple:
        """(network, config): ``weights`` loaded for 4 views, BatchNorm re-estimated on ``--bn-batches``
        training batches of the run's own stream, as every score of the run is made."""
        import model
        args = self.args(variant, seed)
        network, config, _ = model_loading.load_model(args, weights, 4, "test", config=variant.config)
        if self.options.bn_batches:
            sequences, _, cameras, _ = splits.load_training_splits(args)
            train_augmentation, _ = run.augmentations(args, config)
            stream = run.dataset(args, sequences, cameras, config, args.batch_size, training=True,
                                 stride=args.train_stride, augmentation=train_augmentation, seed=seed)
            model.reestimate_batch_norm(network, (inputs for inputs, _ in stream.take(self.options.bn_batches)))
        return network, config

    def evaluate(self, variant: Variant, seed: int, partial: bool = False) -> dict:
        """{"val_mpjpe_mm": validation MPJPE, test metrics (mean over actions), "visibility": the split
        (``common.visibility.breakdown``), "epoch": the epoch scored} of the run's ``best.weights.h5``
        after re-estimating BatchNorm on ``--bn-batches`` training batches; cached beside the run.

        partial: a run that has not finished is scored as far as it got (its ``last.weights.h5``,
        without training further), to report interrupted runs at the step they reached."""
        import evaluation
        args = self.args(variant, seed)
        if partial and not self.is_done(variant, seed):
            weights = os.path.join(args.checkpoint_dir, "last.weights.h5")
            if not os.path.isfile(weights):
                raise SystemExit(f"--partial: {variant.name} seed {seed} has no last.weights.h5 in "
                                 f"{args.checkpoint_dir} yet (no epoch finished).")
            epoch = int(json.load(open(weights + ".json"))["epoch"])
            name = f"evaluate-bn{self.options.bn_batches}-{self.options.test_root}-epoch{epoch}.json"
        else:
            weights = self.train(variant, seed)
            epoch = int(json.load(open(weights + ".json"))["epoch"])
            name = f"evaluate-bn{self.options.bn_batches}-{self.options.test_root}.json"
        path = os.path.join(self.folder(variant, seed), name)
        if os.path.isfile(path):
            return json.load(open(path))
        network, config = self.scoring_network(variant, seed, weights)
        _, validation, cameras, _ = splits.load_training_splits(args)
        val_stream = run.dataset(args, validation, cameras, config, args.batch_size, training=False,
                                 stride=args.val_stride, seed=seed)
        errors = [np.linalg.norm(network(inputs, training=False)["kp3d"] - targets["kp3d"], axis=-1).mean(axis=-1)
                  for inputs, targets in val_stream]
        test_sequences, test_cameras, _ = splits.load_split(args, args.test_subjects, "test")
        predictions = evaluation.predict(network, test_sequences, test_cameras, stride=args.test_stride,
                                         image_size=config.image_size, box_mm=args.box_mm, progress=False,
                                         root=self.options.test_root)
        summary = evaluation.summarize(predictions)
        result = {"val_mpjpe_mm": float(np.mean(np.concatenate(errors))), **summary.over_actions,
                  "visibility": summary.visibility, "epoch": epoch, "weights": weights}
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
        return result


def paired(values: dict, baseline: str) -> dict:
    """{variant: (mean, sd over seeds) of its value minus the baseline's of the same seed}."""
    return {name: (float(np.mean(np.subtract(v, values[baseline]))), float(np.std(np.subtract(v, values[baseline]))))
            for name, v in values.items() if name != baseline}


def mean_sd(values, decimals: int = 1) -> str:
    return f"{np.mean(values):.{decimals}f} +- {np.std(values):.{decimals}f}"
