"""Frames per second of the tf.data pipeline against plain sequential OpenCV decoding, in one run.

    python benchmarks/bench_pipeline.py [--data DIR] [--size 1000] [--image-size 256] [--batch-size 8]

Without ``--data`` a synthetic set is generated in a temporary folder (``--subjects``,
``--frames``, ``--size`` = video width); with it, the set under DIR (``DIR/Data``, ``DIR/Labels``,
``DIR/Labels/camera-parameters.json``) is reused. Both sides read the same frames: every frame
of the usable prefix of every view of every sequence. Reported in view-frames per second (one
decoded image of one camera); the pipeline also crops, colour-converts and batches them (the
training row: one epoch of jittered, shuffled batches, after the shuffle buffer has filled). Each
method runs ``--repeats`` times, alternating, and its fastest pass is kept, with the CPU time
that pass used (all threads of the process, per view-frame).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

import cv2

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import data_loader  # noqa: E402
import h36m_utils  # noqa: E402
import synthetic_h36m  # noqa: E402


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


def count_view_frames(batches) -> int:
    """Fetch every batch of an iterable of (inputs, targets); return how many view-frames they held."""
    return sum(int(inputs["images"].shape[0]) * int(inputs["images"].shape[1]) for inputs, _ in batches)


def testing_pass(sequences, cameras, args):
    """The measured work: one testing-mode pass (stride 1), data set built and traced inside."""
    return lambda: count_view_frames(data_loader.build_dataset(
        sequences, cameras, image_size=args.image_size, batch_size=args.batch_size, training=False))


def training_epoch(sequences, cameras, args):
    """The measured work: one epoch of training batches, in the steady state.

    The batches that fill the shuffle buffer come first, untimed: a training run pays for them
    once, not every epoch.
    """
    dataset = data_loader.build_dataset(sequences, cameras, image_size=args.image_size,
                                        batch_size=args.batch_size, training=True, seed=0,
                                        shuffle_buffer=args.shuffle_buffer)
    batches = iter(dataset)
    count_view_frames(next(batches) for _ in range(args.shuffle_buffer // args.batch_size + 1))
    steps = data_loader.steps_per_epoch(sequences, args.batch_size)
    return lambda: count_view_frames(next(batches) for _ in range(steps))


def timed(measure) -> tuple[int, float, float]:
    """(frames, frames per second, CPU ms per frame) of one run of ``measure() -> frames``.

    CPU time is the whole process's (all threads, user + system).
    """
    cpu_before, started = os.times(), time.perf_counter()
    frames = measure()
    seconds, cpu_after = time.perf_counter() - started, os.times()
    cpu = cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system
    return frames, frames / seconds, 1e3 * cpu / frames


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", help="reuse the synthetic/real set under this folder")
    parser.add_argument("--subjects", nargs="+", default=["S1", "S5"], help="subjects (generated set)")
    parser.add_argument("--frames", type=int, default=100, help="frames per sequence (generated set)")
    parser.add_argument("--size", type=int, default=1000, help="video width in pixels (generated set)")
    parser.add_argument("--image-size", type=int, default=256, help="crop side S")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size")
    parser.add_argument("--shuffle-buffer", type=int, default=128, help="training shuffle buffer (frames)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per method; the best is kept")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        if args.data:
            root = pathlib.Path(args.data)
            subjects = sorted(p.name for p in (root / "Data").iterdir() if p.name in h36m_utils.SUBJECTS)
        else:
            root, subjects = pathlib.Path(scratch), args.subjects
            started = time.perf_counter()
            synthetic_h36m.generate_dataset(root, subjects, args.frames, args.size, progress=False)
            print(f"generated {' '.join(subjects)} x {args.frames} frames at width {args.size} "
                  f"in {time.perf_counter() - started:.1f} s")
        sequences, report = h36m_utils.find_sequences(str(root / "Data"), str(root / "Labels"), subjects)
        cameras = h36m_utils.load_cameras(str(root / "Labels" / "camera-parameters.json"))
        camera = cameras[sequences[0].subject][h36m_utils.CAMERA_IDS[0]]
        print(f"{report.num_sequences} sequences, {report.num_frames} frames x 4 views, videos about "
              f"{camera.width}x{camera.height}; crops {args.image_size}, batch {args.batch_size}; "
              f"{os.cpu_count()} CPU cores, OpenCV threads {cv2.getNumThreads()}")
        methods = {"sequential cv2.VideoCapture.read": lambda: lambda: decode_sequentially(sequences),
                   "pipeline, testing (one pass)": lambda: testing_pass(sequences, cameras, args),
                   "pipeline, training (one epoch)": lambda: training_epoch(sequences, cameras, args)}
        best = dict.fromkeys(methods, (0, 0.0, 0.0))
        for _ in range(args.repeats):  # alternate the methods so that load changes hit them all alike
            for name, prepare in methods.items():
                best[name] = max(best[name], timed(prepare()), key=lambda result: result[1])
    raw_rate = best["sequential cv2.VideoCapture.read"][1]
    print(f"\n| method | view-frames | view-frames/s (best of {args.repeats}) | vs raw decoding | CPU ms per view-frame |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (frames, rate, cpu) in best.items():
        print(f"| {name} | {frames} | {rate:.1f} | {rate / raw_rate:.2f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
