"""Train and test variants of ``tiny`` on the demo's synthetic set, once per (variant, seed), kept on disk.

The ablations (``ablation_fusion.py``, ``ablation_rigs.py``, ``tune_warmup_3d.py``) compare
variants trained with the same budget and data; a run already on disk (its ``best.weights.h5``
and ``done.json`` naming the same budget) is reused, so an interrupted ablation goes on where it
stopped and two ablations share the runs they have in common. Everything is selected on the
validation split (``best.weights.h5``: the lowest validation MPJPE); the held-out S11 is only
tested.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os

import numpy as np

from common import model_loading
from options import DEMO_DIR
from synthetic import demo
from train import run, splits


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
    parser.add_argument("--demo-dir", default=DEMO_DIR, help="the synthetic data set (made once)")
    parser.add_argument("--work-dir", default="outputs/ablation_runs", help="checkpoints and metrics of the runs")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of every run")
    parser.add_argument("--steps-per-epoch", type=int, default=100, help="steps per epoch of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per variant and seed")


class SyntheticRuns:
    """Runs of the demo recipe (``experiments/configs/demo.toml``) at a given budget."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        root = os.path.abspath(options.demo_dir)
        demo.ensure_synthetic_data(root)
        self.root = root
        self.settings = demo.recipe(root, verbose=2)
        self.budget = {"epochs": options.epochs, "steps_per_epoch": options.steps_per_epoch}
        cache_root_tracks()

    def folder(self, variant: Variant, seed: int) -> str:
        return os.path.join(self.options.work_dir, f"{variant.name}-seed{seed}")

    def args(self, variant: Variant, seed: int) -> argparse.Namespace:
        folder = self.folder(variant, seed)
        return demo.recipe(
            self.root, **self.budget, seed=seed, verbose=2,
            checkpoint_dir=os.path.join(folder, "checkpoints"), log_dir=os.path.join(folder, "logs"),
            output_dir=os.path.join(folder, "outputs"), images_dir=os.path.join(folder, "imgs"),
            **dict(variant.overrides))

    @property
    def total_steps(self) -> int:
        return self.options.epochs * self.options.steps_per_epoch

    def train(self, variant: Variant, seed: int) -> str:
        """The run's ``best.weights.h5`` (trained now unless a run of this budget is on disk)."""
        args = self.args(variant, seed)
        done = os.path.join(self.folder(variant, seed), "done.json")
        record = {"budget": self.budget, "overrides": dict(variant.overrides), "config": repr(variant.config)}
        if os.path.isfile(done) and json.load(open(done)) == record:
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


def paired(values: dict, baseline: str) -> dict:
    """{variant: (mean, sd over seeds) of its value minus the baseline's of the same seed}."""
    return {name: (float(np.mean(np.subtract(v, values[baseline]))), float(np.std(np.subtract(v, values[baseline]))))
            for name, v in values.items() if name != baseline}


def mean_sd(values) -> str:
    return f"{np.mean(values):.1f} +- {np.std(values):.1f}"
