"""Size and speed of each model config on this machine, and the DLT's share of a training step.

One table: per config (paper, resnet50, tiny) the number of parameters, the forward and the
forward+backward time per sample (a sample = all V views), and the share of one training
step spent in the undistortion + DLT layer (its forward and backward on the same batch,
timed alone, side by side in the same run). Random weights and inputs; every step is a
compiled tf.function, timed after a warm-up call as the median of a few repeats.

    python benchmarks/bench_model.py                       # all configs, a few minutes on 2 cores
    python benchmarks/bench_model.py --configs tiny --repeats 5
"""
import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import dlt_layer  # noqa: E402
import losses  # noqa: E402
import model  # noqa: E402

DEFAULT_BATCH = {"paper": 1, "resnet50": 2, "tiny": 8}


def random_batch(config: model.ModelConfig, batch: int, num_views: int, rng):
    """inputs/targets of the loader's shapes: cameras on a ring 5 m away looking at the origin."""
    size = config.image_size
    P, K = [], []
    for view in range(num_views):
        angle = 2 * np.pi * view / num_views
        forward = -np.array([np.cos(angle), np.sin(angle), 0.0])
        right = np.cross(forward, [0.0, 0.0, 1.0])
        R = np.stack([right, np.cross(forward, right), forward])
        K_crop = np.array([[2.5 * size, 0, size / 2], [0, 2.5 * size, size / 2], [0, 0, 1]])
        P.append(K_crop @ np.concatenate([R, [[0.0], [0.0], [5000.0]]], axis=1))
        K.append(K_crop)
    inputs = {"images": rng.integers(0, 256, (batch, num_views, size, size, 3), dtype=np.uint8),
              "P": np.broadcast_to(np.float32(P), (batch, num_views, 3, 4)).copy(),
              "K": np.broadcast_to(np.float32(K), (batch, num_views, 3, 3)).copy(),
              "dist": np.zeros((batch, num_views, 5), np.float32)}
    targets = {"kp2d": rng.uniform(0, size, (batch, num_views, 17, 2)).astype(np.float32),
               "kp3d": rng.normal(0, 500, (batch, 17, 3)).astype(np.float32)}
    return inputs, targets


def median_seconds(function, repeats: int) -> float:
    function()                                     # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, batch: int, num_views: int, repeats: int, rng) -> dict:
    config = model.get_config(name)
    network = model.build_model(config, num_views=num_views)
    inputs, targets = random_batch(config, batch, num_views, rng)
    inputs = {key: tf.constant(value) for key, value in inputs.items()}
    targets = {key: tf.constant(value) for key, value in targets.items()}
    loss_2d, loss_3d = losses.Loss2D(config.image_size), losses.Loss3D()
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def forward():
        return network(inputs, training=False)["kp3d"]

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            outputs = network(inputs, training=True)
            value = loss_2d(targets["kp2d"], outputs["kp2d"]) + loss_3d(targets["kp3d"], outputs["kp3d"])
        optimizer.apply_gradients(zip(tape.gradient(value, network.trainable_variables),
                                      network.trainable_variables))
        return value

    layer = dlt_layer.UndistortTriangulate()
    kp2d = tf.Variable(targets["kp2d"])

    @tf.function
    def dlt_step():
        with tf.GradientTape() as tape:
            value = loss_3d(targets["kp3d"], layer(kp2d, inputs["P"], inputs["K"], inputs["dist"]))
        return tape.gradient(value, kp2d)

    forward_s = median_seconds(forward, repeats)
    train_s = median_seconds(train_step, repeats)
    dlt_s = median_seconds(dlt_step, max(repeats, 20))
    return {"config": name, "params": network.count_params(), "batch": batch,
            "forward": forward_s / batch, "train": train_s / batch, "dlt_share": dlt_s / train_s,
            "dlt_ms": dlt_s * 1e3}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["paper", "resnet50", "tiny"], choices=sorted(model.CONFIGS))
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, help="samples per step (default: paper 1, resnet50 2, tiny 8)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.views} views, 17 joints, random weights, CPU threads: {os.cpu_count()}, "
          f"median of {args.repeats} (DLT: of {max(args.repeats, 20)}) after one warm-up call")
    header = (f"| config | S | parameters | batch | forward s/sample | forward+backward s/sample "
              f"| DLT fwd+bwd ms/batch | DLT share of a training step |")
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for name in args.configs:
        row = measure(name, args.batch or DEFAULT_BATCH[name], args.views, args.repeats, rng)
        print(f"| {name} | {model.get_config(name).image_size} | {row['params']:,} | {row['batch']} "
              f"| {row['forward']:.3f} | {row['train']:.3f} | {row['dlt_ms']:.2f} "
              f"| {100 * row['dlt_share']:.2f}% |", flush=True)


if __name__ == "__main__":
    main()
