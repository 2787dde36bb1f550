"""Size, speed and memory of each model config, and the DLT's share of a training step.

One table row per config x dtype policy x batch: parameters, forward and forward+backward time
per step (a sample = all V views), training samples/s, the share of a training step spent in the
undistortion + DLT layer (its forward and backward on the same batch, timed alone), peak
accelerator memory, the hours one epoch of Human3.6M's training split would take at that speed,
and, for a mixed policy, how far its outputs are from the float32 model with the same weights.
Random weights and inputs; every step is compiled (TensorFlow: tf.function; JAX: jax.jit of a
stateless step), timed after a warm-up call as the median of a few repeats, the result
synchronised before the timer stops. Each row runs in a fresh process, so that its peak memory
is its own and an out-of-memory batch ends only that row.

    python benchmarks/bench_model.py                       # all configs, a few minutes on 2 cores
    python benchmarks/bench_model.py --configs tiny --repeats 5
    KERAS_BACKEND=jax python benchmarks/bench_model.py --configs paper resnet50 --batches 16 \\
        --policies float32 mixed_bfloat16 --find-max-batch  # on a GPU, through JAX
    KERAS_BACKEND=jax python benchmarks/bench_model.py --memory-sweep --configs paper resnet50 \\
        --policies float32 mixed_bfloat16  # peak memory by batch, predict frames/s (benchmarks/gpu_jax.sh)

``--memory-sweep`` prints other tables: per config x policy (one process each, batches ascending), the
peak accelerator memory and speed of a training step at each ``--sweep-batches``, the forward (predict)
throughput in 4-view frames/s at each ``--predict-batches``, and the measured peaks as
``devices.PEAK_MEMORY_GIB`` entries with the per-card table they give (TRAINING.md, "Memory").
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import dlt_layer  # noqa: E402
from benchmarks.backend_info import describe_backend  # noqa: E402
from train import losses  # noqa: E402
import model  # noqa: E402

BACKEND = keras.backend.backend()
DEFAULT_BATCH = {"paper": 1, "resnet50": 2, "tiny": 8}
# Four-view samples of Human3.6M's training split (S1 S5 S6 S7 S8) at stride 5 (DESIGN.md).
H36M_TRAIN_SAMPLES = 78_000
# Spread of the heatmap logits in the mixed-vs-float32 comparison (see sharpen_heatmaps).
HEATMAP_LOGIT_STD = 4.0
RESULT_PREFIX = "ROW "
OUT_OF_MEMORY_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OOM")


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
              "dist": np.zeros((batch, num_views, 6), np.float32), "view_mask": np.ones((batch, num_views), np.float32)}
    targets = {"kp2d": rng.uniform(0, size, (batch, num_views, 17, 2)).astype(np.float32),
               "kp3d": rng.normal(0, 500, (batch, 17, 3)).astype(np.float32)}
    return inputs, targets


def median_seconds(function, repeats: int) -> float:
    function()                                     # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- compiled steps

def tensorflow_steps(network, inputs, targets, total_loss, optimizer, dlt):
    """(forward, train, dlt_backward, finish): callables that run one compiled step and wait for it;
    finish() leaves the trained values in the Keras variables (here they are updated in place)."""
    import tensorflow as tf
    inputs = {key: tf.constant(value) for key, value in inputs.items()}
    targets = {key: tf.constant(value) for key, value in targets.items()}
    kp2d = tf.Variable(targets["kp2d"])

    @tf.function
    def forward():
        return network(inputs, training=False)["kp3d"]

    @tf.function
    def train():
        with tf.GradientTape() as tape:
            value = total_loss(targets, network(inputs, training=True))
        optimizer.apply_gradients(zip(tape.gradient(value, network.trainable_variables),
                                      network.trainable_variables))
        return value

    @tf.function
    def dlt_backward():
        with tf.GradientTape() as tape:
            value = dlt(kp2d, inputs, targets)
        return tape.gradient(value, kp2d)

    return (*(lambda step=step: step().numpy() for step in (forward, train, dlt_backward)), lambda: None)


def jax_steps(network, inputs, targets, total_loss, optimizer, dlt):
    """As tensorflow_steps, through Keras' stateless API under jax.jit.

    The training step donates its state, the variables' own buffers (no copy, so the peak memory is
    a training run's, as in Keras' JAX ``fit``): until ``finish()`` puts the trained values back,
    the Keras variables must not be read.
    """
    import jax
    optimizer.build(network.trainable_variables)
    groups = (network.trainable_variables, network.non_trainable_variables, optimizer.variables)
    state = [[variable.value for variable in group] for group in groups]
    inputs, targets = jax.device_put(inputs), jax.device_put(targets)

    @jax.jit
    def forward(trainable, non_trainable, inputs):
        return network.stateless_call(trainable, non_trainable, inputs, training=False)[0]["kp3d"]

    def loss_and_state(trainable, non_trainable, inputs, targets):
        outputs, non_trainable = network.stateless_call(trainable, non_trainable, inputs, training=True)
        return total_loss(targets, outputs), non_trainable

    def train(trainable, non_trainable, optimizer_state, inputs, targets):
        (value, non_trainable), grads = jax.value_and_grad(loss_and_state, has_aux=True)(
            trainable, non_trainable, inputs, targets)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        return value, [trainable, non_trainable, optimizer_state]

    train = jax.jit(train, donate_argnums=(0, 1, 2))
    dlt_backward = jax.jit(jax.grad(lambda kp2d, inputs, targets: dlt(kp2d, inputs, targets)))

    def train_once():
        value, state[:] = train(*state, inputs, targets)
        jax.block_until_ready((value, state))

    def finish():
        for group, values in zip(groups, state):
            for variable, value in zip(group, values):
                variable.assign(value)

    return (lambda: forward(state[0], state[1], inputs).block_until_ready(), train_once,
            lambda: dlt_backward(targets["kp2d"], inputs, targets).block_until_ready(), finish)


def peak_memory_bytes():
    """Peak bytes the process held on its accelerator, or None on a CPU."""
    if BACKEND == "jax":
        import jax
        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use")
    import tensorflow as tf
    if not tf.config.list_physical_devices("GPU"):
        return None
    return tf.config.experimental.get_memory_info("GPU:0")["peak"]


def accelerator_memory_bytes():
    """The accelerator's usable memory, or None on a CPU."""
    if BACKEND != "jax":
        return None
    import jax
    return (jax.devices()[0].memory_stats() or {}).get("bytes_limit")


# --------------------------------------------------------------------------- one row

def compiled_steps(network, config: model.ModelConfig, inputs, targets):
    """(forward, train, dlt_backward, finish) of ``network`` on one batch: the 2D + 3D loss, Adam."""
    loss_2d, loss_3d = losses.Loss2D(config.image_size), losses.Loss3D()
    layer = dlt_layer.UndistortTriangulate()

    def total_loss(targets, outputs):
        return loss_2d(targets["kp2d"], outputs["kp2d"]) + loss_3d(targets["kp3d"], outputs["kp3d"])

    def dlt(kp2d, inputs, targets):
        return loss_3d(targets["kp3d"], layer(kp2d, inputs["P"], inputs["K"], inputs["dist"]))

    make_steps = jax_steps if BACKEND == "jax" else tensorflow_steps
    return make_steps(network, inputs, targets, total_loss, keras.optimizers.Adam(1e-4), dlt)


def measure_row(name: str, policy: str, batch: int, num_views: int, repeats: int, train_only: bool) -> dict:
    """Build ``name`` under ``policy`` and time its steps on one random batch (runs in a child)."""
    keras.mixed_precision.set_dtype_policy(policy)
    config = model.get_config(name)
    network = model.build_model(config, num_views=num_views)
    inputs, targets = random_batch(config, batch, num_views, np.random.default_rng(0))
    forward, train, dlt_backward, finish = compiled_steps(network, config, inputs, targets)
    row = {"config": name, "policy": policy, "batch": batch, "params": network.count_params(),
           "device": describe_backend(), "train_s": median_seconds(train, repeats)}
    if train_only:
        return {**row, "peak_bytes": peak_memory_bytes(), "limit_bytes": accelerator_memory_bytes()}
    row.update(forward_s=median_seconds(forward, repeats), dlt_s=median_seconds(dlt_backward, max(repeats, 20)),
               peak_bytes=peak_memory_bytes(), limit_bytes=accelerator_memory_bytes())
    finish()
    if policy != "float32":
        row.update(compare_with_float32(network, config, num_views, inputs))
    return row


def sharpen_heatmaps(network, inputs, logit_std: float = HEATMAP_LOGIT_STD) -> None:
    """Scale the last conv so that the heatmap logits spread like a trained network's.

    Random weights give nearly flat heatmaps, whose soft-argmax sits at the crop centre whatever
    the precision; peaky ones expose what bfloat16 loses.
    """
    layer = network.get_layer("heatmap_logits")
    logits = keras.Model(network.inputs, layer.output).predict_on_batch(inputs)
    scale = logit_std / float(np.std(np.asarray(logits, np.float64)))
    layer.set_weights([weight * scale for weight in layer.get_weights()])


def compare_with_float32(network, config, num_views: int, inputs) -> dict:
    """Finite outputs, and the largest 2D (px) and 3D (mm) gaps to a float32 twin of ``network``."""
    sharpen_heatmaps(network, inputs)
    mixed = {key: np.asarray(value, np.float64) for key, value in network.predict_on_batch(inputs).items()}
    keras.mixed_precision.set_dtype_policy("float32")
    twin = model.build_model(config, num_views=num_views)
    twin.set_weights(network.get_weights())
    exact = {key: np.asarray(value, np.float64) for key, value in twin.predict_on_batch(inputs).items()}
    joint_3d = np.linalg.norm(mixed["kp3d"] - exact["kp3d"], axis=-1)       # (B, J) mm
    return {"finite": bool(np.isfinite(mixed["kp2d"]).all() and np.isfinite(mixed["kp3d"]).all()),
            "kp2d_max_px": float(np.abs(mixed["kp2d"] - exact["kp2d"]).max()),
            "kp3d_max_mm": float(joint_3d.max()), "kp3d_mean_mm": float(joint_3d.mean())}


# --------------------------------------------------------------------------- memory and predict sweep

def measure_sweep(name: str, policy: str, train_batches, predict_batches, num_views: int, repeats: int):
    """Rows of one config x policy, printed as they come (runs in a child): the training step at
    each batch, ascending, so that the process's peak memory after each is that batch's (JAX has no
    reset); stops at the first that fails; then the forward pass (predict) at each batch."""
    keras.mixed_precision.set_dtype_policy(policy)
    config = model.get_config(name)
    network = model.build_model(config, num_views=num_views)
    common = {"config": name, "policy": policy, "params": network.count_params(), "device": describe_backend()}
    for kind, batches in (("train", sorted(train_batches)), ("predict", predict_batches)):
        for batch in batches:
            try:
                row = {**common, **measure_steps(network, config, kind, batch, num_views, repeats)}
            except Exception as error:  # noqa: BLE001 -- an out-of-memory batch is a result, not a crash
                text = f"{type(error).__name__}: {error}"
                row = {**common, "kind": kind, "batch": batch, "error": text.splitlines()[0][:300],
                       "out_of_memory": any(marker in text for marker in OUT_OF_MEMORY_MARKERS)}
            print(RESULT_PREFIX + json.dumps(row), flush=True)
            if "error" in row:
                break


def measure_steps(network, config, kind: str, batch: int, num_views: int, repeats: int) -> dict:
    """kind "train": seconds per training step and the peak memory so far; "predict": seconds per
    forward pass (inference, 4-view frames)."""
    inputs, targets = random_batch(config, batch, num_views, np.random.default_rng(batch))
    forward, train, _, finish = compiled_steps(network, config, inputs, targets)
    seconds = median_seconds(train if kind == "train" else forward, repeats)
    finish()
    memory = {"peak_bytes": peak_memory_bytes(), "limit_bytes": accelerator_memory_bytes()} if kind == "train" else {}
    return {"kind": kind, "batch": batch, "seconds": seconds, **memory}


def run_sweep_child(args, name: str, policy: str, deadline: float) -> tuple[list[dict], str]:
    """The rows a child process printed for ``name`` x ``policy`` before it ended or ``deadline`` came,
    and a note when it did not finish ("" when it did)."""
    command = [sys.executable, "-m", __spec__.name, "--sweep", name, policy, "--views", str(args.views), "--repeats",
               str(args.repeats), "--sweep-batches", *map(str, args.sweep_batches),
               "--predict-batches", *map(str, args.predict_batches)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(1.0, deadline - time.time()))
        output, note = done.stdout, "" if done.returncode == 0 else f"exit {done.returncode}"
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
    except subprocess.TimeoutExpired as expired:  # the time budget ran out: keep what was measured
        output = expired.stdout.decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        note = "stopped: --time-budget ran out"
    print(f"({name} {policy}: {time.perf_counter() - start:.0f} s{', ' + note if note else ''})", file=sys.stderr,
          flush=True)
    rows = [json.loads(line[len(RESULT_PREFIX):]) for line in output.splitlines() if line.startswith(RESULT_PREFIX)]
    return rows, note


def format_sweep_row(row: dict) -> str:
    head = f"| {row['config']} | {row['policy']} | {row['batch']} "
    if "error" in row:
        return head + ("| out of memory | | |" if row["out_of_memory"] else f"| failed: {row['error'][:120]} | | |")
    per_second = row["batch"] / row["seconds"]
    if row["kind"] == "predict":
        return head + f"| {1e3 * row['seconds']:.1f} | {per_second:.1f} |"
    memory = "n/a (CPU)" if row.get("peak_bytes") is None else f"{row['peak_bytes'] / 2**30:.2f}"
    return head + f"| {memory} | {1e3 * row['seconds']:.1f} | {per_second:.1f} |"


def measured_peaks(rows) -> dict:
    """{(config, policy): {batch: peak GiB}} of the training rows that have a peak memory."""
    peaks = {}
    for row in rows:
        if row["kind"] == "train" and row.get("peak_bytes"):
            peaks.setdefault((row["config"], row["policy"]), {})[row["batch"]] = round(row["peak_bytes"] / 2**30, 2)
    return peaks


def print_memory_model(peaks: dict) -> None:
    """The measured peaks as devices.PEAK_MEMORY_GIB entries, and the card table they give."""
    from common import devices
    if not peaks:
        print("No accelerator memory figures (a CPU): no memory model.")
        return
    print("\nFor devices.PEAK_MEMORY_GIB (GiB by batch, measured here):")
    for key, by_batch in peaks.items():
        print(f"    {key!r}: {by_batch!r},")
    if set(devices.PEAK_MEMORY_GIB) <= set(peaks):
        print(f"\nLargest batch per card and --batch-size x --accumulate-steps for an effective "
              f"{devices.EFFECTIVE_BATCH} ({devices.USABLE_SHARE:.0%} of the card usable):\n"
              f"{devices.memory_table(peaks)}")


def run_sweep(args) -> int:
    """Memory and predict tables of every config x policy, each in its own process, within --time-budget s."""
    deadline, rows, complete = time.time() + args.time_budget, [], True
    print(f"{args.views} views, 17 joints, random weights; median of {args.repeats} after one warm-up call; "
          "peak memory of the process after the training step at that batch (batches ascending)", flush=True)
    print("| config | policy | batch | peak memory GiB | training ms/step | training samples/s |\n"
          "|---|---|---|---|---|---|")
    for name in args.configs:
        for policy in args.policies:
            found, note = run_sweep_child(args, name, policy, deadline) if time.time() < deadline else (
                [], "not measured: --time-budget ran out")
            rows += found
            for row in found:
                if row["kind"] == "train":
                    print(format_sweep_row(row), flush=True)
            if note:
                complete = False
                print(f"| {name} | {policy} | | {note}; the rest of this row not measured | | |", flush=True)
    print(f"\nPredict (forward only, inference; a frame = {args.views} views)"
          f"{', ' + rows[0]['device'] if rows else ''}:")
    print("| config | policy | batch | forward ms/step | frames/s |\n|---|---|---|---|---|")
    for row in rows:
        if row["kind"] == "predict":
            print(format_sweep_row(row))
    print_memory_model(measured_peaks(rows))
    return 0 if complete and not any("error" in row and not row["out_of_memory"] for row in rows) else 1


# --------------------------------------------------------------------------- the table

def run_row(args, name: str, policy: str, batch: int, train_only: bool = False) -> dict:
    """One row in a fresh process: {..., "error": text} when it failed, "out_of_memory" if so."""
    command = [sys.executable, "-m", __spec__.name, "--row", name, policy, str(batch), "--views", str(args.views),
               "--repeats", str(args.repeats)] + (["--train-only"] if train_only else [])
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.row_timeout)
    print(f"({name} {policy} batch {batch}{' train only' if train_only else ''}: "
          f"{time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    text = done.stderr + done.stdout
    errors = [line for line in text.splitlines() if re.match(r"\w+(Error|Exception)\b", line)]
    return {"config": name, "policy": policy, "batch": batch,
            "error": errors[-1] if errors else f"exit {done.returncode}",
            "out_of_memory": any(marker in text for marker in OUT_OF_MEMORY_MARKERS), "log": text[-3000:]}


def largest_batch(args, name: str, policy: str, measured: dict) -> tuple[int, list[str]]:
    """The largest batch seen to train: each probe is the batch that the last peak memory predicts
    fills 92% of the accelerator, then halfway back after an out-of-memory; (batch, probe notes)."""
    if not measured.get("peak_bytes") or not measured.get("limit_bytes"):
        return measured["batch"], ["no accelerator memory figures: not probed"]
    best, notes = measured["batch"], []
    guess = int(measured["batch"] * 0.92 * measured["limit_bytes"] / measured["peak_bytes"])
    for _ in range(args.max_batch_probes):
        if guess <= best:
            break
        probe = run_row(args, name, policy, guess, train_only=True)
        fits = "error" not in probe
        notes.append(f"{guess}: " + (f"fits, {guess / probe['train_s']:.1f} samples/s" if fits else
                                     "out of memory" if probe["out_of_memory"] else probe["error"]))
        if fits:
            best, guess = guess, int(guess * 0.92 * probe["limit_bytes"] / probe["peak_bytes"])
        else:
            guess = (best + guess) // 2
    return best, notes


def format_row(row: dict) -> str:
    config = model.get_config(row["config"])
    if "error" in row:
        return (f"| {row['config']} | {row['policy']} | {config.image_size} | | {row['batch']} "
                f"| failed: {row['error'][:150]} |")
    samples_per_s = row["batch"] / row["train_s"]
    memory = "n/a (CPU)" if row.get("peak_bytes") is None else f"{row['peak_bytes'] / 2**30:.1f}"
    hours = H36M_TRAIN_SAMPLES / samples_per_s / 3600
    check = (f"{'finite' if row['finite'] else 'NOT FINITE'}, 2D {row['kp2d_max_px']:.2f} px, "
             f"3D max {row['kp3d_max_mm']:.1f} / mean {row['kp3d_mean_mm']:.1f} mm"
             if "finite" in row else "(reference)")
    return (f"| {row['config']} | {row['policy']} | {config.image_size} | {row['params']:,} | {row['batch']} "
            f"| {1e3 * row['forward_s']:.1f} | {1e3 * row['train_s']:.1f} | {samples_per_s:.1f} "
            f"| {100 * row['dlt_s'] / row['train_s']:.2f}% | {memory} | {hours:.2f} | {check} |")


def print_title(args, device: str) -> None:
    print(f"{args.views} views, 17 joints, random weights; {device}; median of {args.repeats} "
          f"(DLT: of {max(args.repeats, 20)}) after one warm-up call; epoch = {H36M_TRAIN_SAMPLES:,} "
          f"samples (Human3.6M training split at stride 5); mixed rows vs float32 with heatmap logits "
          f"scaled to std {HEATMAP_LOGIT_STD:g}", flush=True)
    print("| config | policy | S | parameters | batch | forward ms/step | forward+backward ms/step "
          "| training samples/s | DLT share of a step | peak memory GiB | hours per H36M epoch "
          "| vs float32 (same weights) |")
    print("|" + "---|" * 12)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["paper", "resnet50", "tiny"], choices=sorted(model.CONFIGS))
    parser.add_argument("--policies", nargs="+", default=["float32"],
                        help="Keras dtype policies, e.g. float32 mixed_bfloat16 (a mixed row is compared "
                             "with float32 at the same weights)")
    parser.add_argument("--batches", type=int, nargs="+",
                        help="samples per step (default: paper 1, resnet50 2, tiny 8)")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--find-max-batch", action="store_true",
                        help="also probe the largest batch that trains, from the accelerator's peak memory")
    parser.add_argument("--max-batch-probes", type=int, default=2, help="largest-batch tries per row (each compiles the model again)")
    parser.add_argument("--row-timeout", type=float, default=1800, help="seconds for one row's process")
    parser.add_argument("--memory-sweep", action="store_true",
                        help="instead of the table: the peak memory of a training step at each --sweep-batches and "
                             "the predict throughput at each --predict-batches, per config and policy")
    parser.add_argument("--sweep-batches", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--predict-batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--time-budget", type=float, default=400,
                        help="--memory-sweep: seconds for all of it; what is not measured by then is said so")
    parser.add_argument("--row", nargs=3, metavar=("CONFIG", "POLICY", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--sweep", nargs=2, metavar=("CONFIG", "POLICY"), help=argparse.SUPPRESS)
    parser.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.row:
        name, policy, batch = args.row
        row = measure_row(name, policy, int(batch), args.views, args.repeats, args.train_only)
        print(RESULT_PREFIX + json.dumps(row), flush=True)
        return 0
    if args.sweep:
        measure_sweep(*args.sweep, args.sweep_batches, args.predict_batches, args.views, args.repeats)
        return 0
    if args.memory_sweep:
        return run_sweep(args)
    rows = []
    for name in args.configs:
        for policy in args.policies:
            for batch in args.batches or [DEFAULT_BATCH[name]]:
                rows.append(run_row(args, name, policy, batch))
                if len(rows) == 1:  # the rows' processes, not this one, touch the device
                    print_title(args, rows[0].get("device", "device unknown: the first row failed"))
                print(format_row(rows[-1]), flush=True)
                if "error" in rows[-1]:
                    print(rows[-1]["log"], file=sys.stderr)
    if args.find_max_batch:  # after the table: probing costs a compilation per try
        for row in rows:
            if "error" not in row:
                best, notes = largest_batch(args, row["config"], row["policy"], row)
                print(f"Largest batch seen to train, {row['config']} {row['policy']}: {best} "
                      f"({args.max_batch_probes} probe(s): {'; '.join(notes) or 'none'})", flush=True)
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
