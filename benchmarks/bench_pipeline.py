"""The training input against plain sequential OpenCV decoding of the same videos, in one run.

    python benchmarks/bench_pipeline.py [--data DIR] [--size 1000] [--image-size 256] [--batch-size 16]

Without ``--data`` a synthetic set is generated in a temporary folder (``--subjects``,
``--frames``, ``--size`` = video width, one trial per action); with it, the set under DIR
(``DIR/Data``, ``DIR/Labels``, ``DIR/Labels/camera-parameters.json``) is reused. Every frame of
every view is used (stride 1). Printed, side by side:

* raw decoding: ``cv2.VideoCapture.read()`` of every frame of every view, one after another
  (OpenCV's default decoder threads), in view-frames per second;
* first pass: building the crop cache into an empty folder plus one epoch of training
  batches, in seconds, against the raw decoding time of the same frames;
* steady state: the epochs after the first, in view-samples per second (one view of one
  training sample), against raw decoding;
* ``fit``: seconds per training step of the ``tiny`` model fed by the training input, against
  the same model fed one batch held in memory (the input's cost on top of the model's).

Each row is the best of ``--repeats`` (the raw decoding and the steady state alternate, so load
changes hit both alike), with the CPU time of the process per item (all threads, user + system).
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

import data_loader  # noqa: E402
import h36m_utils  # noqa: E402
from synthetic import synthetic_h36m  # noqa: E402


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


def training_input(sequences, cameras, args, cache_dir: str, image_size: int | None = None):
    return data_loader.build_dataset(sequences, cameras, image_size=image_size or args.image_size,
                                     batch_size=args.batch_size, training=True, seed=0, cache_dir=cache_dir,
                                     verbose=False)


def first_pass(sequences, cameras, args, cache_dir: str):
    """Build the cache into an empty folder and read one epoch; returns (the measure, the batches)."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    steps = data_loader.steps_per_epoch(sequences, args.batch_size)
    state = {}

    def measure():
        state["batches"] = iter(training_input(sequences, cameras, args, cache_dir))
        return count_view_samples(next(state["batches"]) for _ in range(steps))
    return measure, state


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
    parser.add_argument("--fit-epochs", type=int, default=4, help="fit epochs, the first one untimed")
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


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        sequences, cameras, report = load_set(args, scratch)
        camera = cameras[sequences[0].subject][h36m_utils.CAMERA_IDS[0]]
        print(f"{report.num_sequences} sequences, {report.num_frames} frames x 4 views, videos "
              f"{camera.width}x{camera.height}; crops {args.image_size}, batch {args.batch_size}, every frame; "
              f"{os.cpu_count()} CPU cores")
        cache_dir = os.path.join(scratch, "cache")
        steps = data_loader.steps_per_epoch(sequences, args.batch_size)
        raw, first, steady = (0, np.inf, 0.0), (0, np.inf, 0.0), (0, np.inf, 0.0)
        for _ in range(args.repeats):
            raw = min(raw, timed(lambda: decode_sequentially(sequences)), key=lambda r: r[1] / max(r[0], 1))
            measure, state = first_pass(sequences, cameras, args, cache_dir)
            first = min(first, timed(measure), key=lambda r: r[1])
            batches = state["batches"]
            steady = min(steady, timed(lambda: count_view_samples(next(batches) for _ in range(steps))),
                         key=lambda r: r[1] / max(r[0], 1))
        tiny = data_loader.build_dataset(sequences, cameras, image_size=128, batch_size=args.batch_size,
                                         training=True, seed=0, cache_dir=cache_dir, verbose=False)
        in_memory = tiny.take(1).cache().repeat()
        fed, held = (fit_seconds_per_step(data, args.fit_steps, args.fit_epochs) for data in (tiny, in_memory))
    raw_rate, raw_seconds = raw[0] / raw[1], raw[1]
    print("\n| measure | value | vs reference | CPU ms per item |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| raw decoding, sequential cv2 read | {raw_rate:.0f} view-frames/s | 1.00 | {raw[2]:.2f} |")
    print(f"| first pass: cache build + 1 epoch | {first[1]:.1f} s | {first[1] / raw_seconds:.2f}x the raw "
          f"decoding time ({raw_seconds:.1f} s) | {first[2]:.2f} |")
    print(f"| steady state, training input | {steady[0] / steady[1]:.0f} view-samples/s | "
          f"{steady[0] / steady[1] / raw_rate:.2f}x raw decoding | {steady[2]:.2f} |")
    print(f"| fit of tiny (S 128), real input | {1e3 * fed:.0f} ms/step | {fed / held:.2f}x one batch in memory "
          f"({1e3 * held:.0f} ms/step) | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
