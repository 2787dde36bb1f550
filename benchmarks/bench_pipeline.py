"""The training input against plain sequential OpenCV decoding of the same videos, in one run.

    python -m benchmarks.bench_pipeline [--data DIR] [--size 1000] [--image-size 256] [--batch-size 16]

Without ``--data`` a synthetic set is generated in a temporary folder (``--subjects``,
``--frames``, ``--size`` = video width, one trial per action); with it, the set under DIR
(``DIR/Data``, ``DIR/Labels``, ``DIR/Labels/camera-parameters.json``) is reused. Every frame of
every view is used (stride 1). Printed, side by side:

* raw decoding: ``cv2.VideoCapture.read()`` of every frame of every view, one after another
  (OpenCV's default decoder threads), in view-frames per second;
* cache build: building the crop cache into an empty folder, in seconds, against the raw
  decoding time of the same frames;
* for each augmentation (none; the demo's, the training runs' default root jitter; with
  ``--augment-rig``): the first epoch (the stream starting, its shuffle buffer filling) and the
  steady state (the next epoch), in view-samples per second (one view of one training sample),
  against raw decoding;
* ``fit``: seconds per training step of the ``tiny`` model fed by the training input, against
  the same model fed one batch held in memory (the input's cost on top of the model's; skipped
  with ``--fit-epochs 0``).

Each row is the best of ``--repeats`` (raw decoding and every stream alternate, so load changes
hit all alike), with the CPU time of the process per item (all threads, user + system): on a
loaded machine the ratios and the CPU time per item hold, the rates do not.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

import cv2
import numpy as np

import data_loader
import h36m_utils
from common import crops
from pipeline import crop_cache
from synthetic import synthetic_h36m


def decode_sequentially(sequences) -> int:
    """Plain ``cv2.VideoCapture.read()`` of every used frame of every view; returns the frame count."""
    count = 0
    for sequence in sequences:
        for path in sequence.videos.values():
            capture = cv2.VideoCapture(path)
            for _ in range(sequence.num_frames):
                if not capture.read()[0]:
                    raise ValueError(f"{path} ended early; the index says {sequence.num_frames} frames")
                count += 1
            capture.release()
    return count


def count_view_samples(batches) -> int:
    """Fetch every batch of an iterable of (inputs, targets); return how many views they held."""
    return sum(int(inputs["images"].shape[0]) * int(inputs["images"].shape[1]) for inputs, _ in batches)


def timed(measure) -> tuple[int, float, float]:
    """(items, seconds, CPU ms per item) of one run of ``measure() -> items``; CPU of all threads."""
    cpu_before, started = os.times(), time.perf_counter()
    items = measure()
    seconds, cpu_after = time.perf_counter() - started, os.times()
    cpu = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
    return items, seconds, 1e3 * cpu / max(items, 1)


def augmentations() -> dict:
    """The streams to compare: name -> ``crop_augmentation.Augmentation``, as a training run sets them."""
    import model_config
    import options
    from pipeline import crop_augmentation
    from train import run

    demo, rig = options.namespace("train"), options.namespace("train", augment_rig=True)
    return {"no augmentation": crop_augmentation.NO_AUGMENTATION,
            "demo's (root jitter)": run.augmentations(demo, None)[0],
            "--augment-rig (mean fusion)": run.augmentations(rig, model_config.get_config("tiny-mean"))[0]}


def training_input(sequences, cameras, args, cache_dir: str, augmentation, image_size: int | None = None):
    return data_loader.build_dataset(sequences, cameras, image_size=image_size or args.image_size,
                                     batch_size=args.batch_size, training=True, seed=0, cache_dir=cache_dir,
                                     augmentation=augmentation, verbose=False)


def build_cache(sequences, cameras, args, cache_dir: str):
    """Build the crop cache into an empty folder; returns the view-frames it holds."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    views = [[cameras[s.subject][c] for c in h36m_utils.CAMERA_IDS] for s in sequences]
    cache = crop_cache.ensure_cache(sequences, views, crops.CropConfig(args.image_size), cache_dir=cache_dir,
                                    verbose=False)
    return cache.num_samples * cache.num_views


def epochs_of(dataset, steps: int):
    """A function that reads the next epoch (``steps`` batches) of ``dataset``; returns its view-samples."""
    batches = iter(dataset)
    return lambda: count_view_samples(next(batches) for _ in range(steps))


def best(rows: list, key=lambda row: row[1] / max(row[0], 1)):
    return min(rows, key=key)


def fit_seconds_per_step(dataset, steps: int, epochs: int) -> float:
    """Median seconds per step of ``tiny`` over ``epochs`` epochs of ``steps`` (the first one untimed)."""
    import keras
    from train import losses
    import model

    keras.utils.set_random_seed(0)
    network = model.build_model("tiny")
    network.compile(optimizer=keras.optimizers.Adam(1e-3),
                    loss={"kp2d": losses.Loss2D(model.CONFIGS["tiny"].image_size), "kp3d": losses.Loss3D()},
                    loss_weights={"kp2d": 1.0, "kp3d": 1e-4})
    times = []
    clock = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: times.append(time.perf_counter()),
                                           on_epoch_end=lambda epoch, logs: times.append(time.perf_counter()))
    network.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[clock])
    durations = np.subtract(times[1::2], times[0::2])[1:]
    return float(np.median(durations)) / steps


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", help="reuse the synthetic/real set under this folder")
    parser.add_argument("--subjects", nargs="+", default=["S1", "S5"], help="subjects (generated set)")
    parser.add_argument("--frames", type=int, default=150, help="frames per sequence (generated set)")
    parser.add_argument("--size", type=int, default=1000, help="video width in pixels (generated set)")
    parser.add_argument("--image-size", type=int, default=256, help="crop side S of the input rows")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size")
    parser.add_argument("--repeats", type=int, default=3, help="passes per method; the best is kept")
    parser.add_argument("--fit-steps", type=int, default=30, help="steps per timed fit epoch (tiny)")
    parser.add_argument("--fit-epochs", type=int, default=4, help="fit epochs, the first one untimed (0: no fit row)")
    return parser.parse_args(argv)


def load_set(args, scratch: str):
    if args.data:
        root = pathlib.Path(args.data)
        subjects = sorted(p.name for p in (root / "Data").iterdir() if p.name in h36m_utils.SUBJECTS)
    else:
        root, subjects = pathlib.Path(scratch) / "data", args.subjects
        started = time.perf_counter()
        synthetic_h36m.generate_dataset(root, subjects, args.frames, args.size, trials=1, progress=False)
        print(f"generated {' '.join(subjects)} x {args.frames} frames at width {args.size} "
              f"in {time.perf_counter() - started:.1f} s")
    sequences, report = h36m_utils.find_sequences(str(root / "Data"), str(root / "Labels"), subjects)
    return sequences, h36m_utils.load_cameras(str(root / "Labels" / "camera-parameters.json")), report


def measure(sequences, cameras, args, cache_dir: str) -> dict:
    """name -> the best (items, seconds, CPU ms per item) of ``args.repeats`` alternating passes."""
    steps = data_loader.steps_per_epoch(sequences, args.batch_size)
    runs = {}
    for _ in range(args.repeats):
        runs.setdefault("raw", []).append(timed(lambda: decode_sequentially(sequences)))
        runs.setdefault("build", []).append(timed(lambda: build_cache(sequences, cameras, args, cache_dir)))
        for name, augmentation in augmentations().items():
            next_epoch = epochs_of(training_input(sequences, cameras, args, cache_dir, augmentation), steps)
            runs.setdefault(("first", name), []).append(timed(next_epoch))
            runs.setdefault(("steady", name), []).append(timed(next_epoch))
    return {name: best(rows) for name, rows in runs.items()}


def print_table(results: dict, fit: tuple | None) -> None:
    raw, build = results["raw"], results["build"]
    raw_rate = raw[0] / raw[1]
    print("\n| measure | value | vs raw decoding | CPU ms per item |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| raw decoding, sequential cv2 read | {raw_rate:.0f} view-frames/s | 1.00x | {raw[2]:.2f} |")
    print(f"| cache build | {build[1]:.1f} s | {build[1] / raw[1]:.2f}x the raw decoding time ({raw[1]:.1f} s) | "
          f"{build[2]:.2f} |")
    for phase, label in (("first", "first epoch"), ("steady", "steady state")):
        for name in augmentations():
            items, seconds, cpu = results[(phase, name)]
            print(f"| {label}, {name} | {items / seconds:.0f} view-samples/s | {items / seconds / raw_rate:.2f}x | "
                  f"{cpu:.2f} |")
    if fit is not None:
        fed, held = fit
        print(f"| fit of tiny (S 128), real input, no augmentation | {1e3 * fed:.0f} ms/step | {fed / held:.2f}x one "
              f"batch in memory ({1e3 * held:.0f} ms/step) | |")


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        sequences, cameras, report = load_set(args, scratch)
        camera = cameras[sequences[0].subject][h36m_utils.CAMERA_IDS[0]]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"{report.num_sequences} sequences, {report.num_frames} frames x 4 views, videos "
              f"{camera.width}x{camera.height}; crops {args.image_size}, batch {args.batch_size}, every frame; "
              f"{os.cpu_count()} CPU cores, load average {load:.1f} at the start")
        cache_dir = os.path.join(scratch, "cache")
        results = measure(sequences, cameras, args, cache_dir)
        fit = None
        if args.fit_epochs > 1:
            tiny = data_loader.build_dataset(sequences, cameras, image_size=128, batch_size=args.batch_size,
                                             training=True, seed=0, cache_dir=cache_dir, verbose=False)
            in_memory = tiny.take(1).cache().repeat()
            fit = tuple(fit_seconds_per_step(data, args.fit_steps, args.fit_epochs) for data in (tiny, in_memory))
    print_table(results, fit)
    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
