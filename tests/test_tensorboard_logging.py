"""Tests of tensorboard_logging.py: a real ``fit`` writes the event files, which are read back
with TensorBoard's own reader and through a running TensorBoard server.

A small dict-in, dict-out Keras model stands in for the canonical-fusion model (the callbacks
only see the logs, the optimizer, the weight variable and the ``kp2d`` output), so ``fit``
takes seconds. It is compiled with the repo's real losses, 3D-weight ramp and optimizer.
"""
import json
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from train import losses
from train import tensorboard_logging
from train import training

VIEWS, SIZE, JOINTS = 2, 32, 17
FRAMES_PREVIEW = 2
EPOCHS, STEPS_PER_EPOCH, BATCH = 2, 2, 2
WEIGHT_3D, WARMUP_3D, RAMP_3D = 1e-4, 1, 2  # the 3D weight: 0, then half, then full
TRAIN_SCALARS = {"epoch_loss", "epoch_kp2d_loss", "epoch_kp3d_loss", "epoch_kp3d_mpjpe",
                 "epoch_learning_rate", "epoch_loss_3d_weight"}
VALIDATION_SCALARS = {"epoch_loss", "epoch_kp2d_loss", "epoch_kp3d_loss", "epoch_kp3d_mpjpe"}
BLUE, RED = (31, 119, 180), (214, 39, 40)  # matplotlib's tab:blue / tab:red: left / right bones


# --------------------------------------------------------------------------- a small training run

def small_model() -> keras.Model:
    """images uint8 (B, V, S, S, 3) -> {"kp2d": (B, V, 17, 2) crop px, "kp3d": (B, 17, 3) mm}."""
    images = keras.Input((VIEWS, SIZE, SIZE, 3), dtype="uint8", name="images")
    features = keras.layers.Reshape((VIEWS, SIZE * SIZE * 3))(keras.layers.Rescaling(1 / 255)(images))
    features = keras.layers.Dense(8, activation="relu")(features)
    kp2d = keras.layers.Reshape((VIEWS, JOINTS, 2))(
        keras.layers.Dense(JOINTS * 2, activation="sigmoid")(features) * SIZE)
    kp3d = keras.layers.Reshape((JOINTS, 3))(keras.layers.Dense(JOINTS * 3)(keras.layers.Flatten()(features)) * 1000)
    return keras.Model({"images": images}, {"kp2d": kp2d, "kp3d": kp3d})


def random_batch(rng, frames: int, images=None):
    """inputs {"images": (F, V, S, S, 3) uint8}, targets {"kp2d": (F, V, 17, 2), "kp3d": (F, 17, 3)}."""
    if images is None:
        images = rng.integers(0, 256, (frames, VIEWS, SIZE, SIZE, 3), dtype=np.uint8)
    targets = {"kp2d": rng.uniform(4, SIZE - 4, (frames, VIEWS, JOINTS, 2)).astype(np.float32),
               "kp3d": rng.normal(0, 500, (frames, JOINTS, 3)).astype(np.float32)}
    return {"images": images}, targets


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    """Fit EPOCHS x STEPS_PER_EPOCH with validation, the TensorBoard callbacks and a CSVLogger
    after them; returns the log folder, the history and the expected schedules per epoch."""
    log_dir = tmp_path_factory.mktemp("logs")
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    network = small_model()
    # The 3D weight ramps and the learning rate warms up then decays during the run, so a value
    # read at the wrong step is seen.
    weight_3d = losses.Loss3DWeight(WEIGHT_3D, warmup_steps=WARMUP_3D, ramp_steps=RAMP_3D)
    optimizer = training.make_optimizer(1e-3, EPOCHS * STEPS_PER_EPOCH, warmup_steps=2)
    network.compile(optimizer=optimizer, loss={"kp2d": losses.Loss2D(SIZE), "kp3d": losses.Loss3D()},
                    loss_weights={"kp2d": 1.0, "kp3d": weight_3d.variable}, metrics={"kp3d": [losses.mpjpe]})
    # Uniform grey crops: every coloured pixel of the preview image is a drawn bone.
    grey = np.full((FRAMES_PREVIEW, VIEWS, SIZE, SIZE, 3), 128, np.uint8)
    callbacks = [weight_3d, losses.RaiseOnNonFinite(),
                 *tensorboard_logging.tensorboard_callbacks(
                     str(log_dir / "tensorboard"), weight_3d.variable, random_batch(rng, FRAMES_PREVIEW, grey)),
                 keras.callbacks.CSVLogger(str(log_dir / "training.csv"))]
    inputs, targets = random_batch(rng, STEPS_PER_EPOCH * BATCH)
    history = network.fit(inputs, targets, batch_size=BATCH, epochs=EPOCHS,
                          validation_data=random_batch(rng, BATCH), callbacks=callbacks, verbose=0)
    steps = [STEPS_PER_EPOCH * (epoch + 1) for epoch in range(EPOCHS)]  # optimizer step at epoch end
    schedule = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    return types.SimpleNamespace(
        log_dir=log_dir / "tensorboard", csv=log_dir / "training.csv", history=history.history,
        learning_rates=[float(schedule(step)) for step in steps],
        # The ramp sets the weight before each batch: at an epoch end it holds the last batch's value.
        weights_3d=[losses.ramp_weight(step - 1, WEIGHT_3D, WARMUP_3D, RAMP_3D) for step in steps])


def read_run(folder) -> event_accumulator.EventAccumulator:
    """TensorBoard's reader over one run folder, every entry kept."""
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.TENSORS: 0})
    return accumulator.Reload()


def scalar_series(accumulator, tag) -> tuple[list[int], list[float]]:
    """(steps, values) of a scalar written by tf.summary.scalar (stored as a tensor)."""
    events = accumulator.Tensors(tag)
    return [event.step for event in events], [float(tf.make_ndarray(event.tensor_proto)) for event in events]


# --------------------------------------------------------------------------- event files

def test_scalars_per_epoch(training_run):
    runs = {name: read_run(training_run.log_dir / name) for name in ("train", "validation")}
    for name, expected in (("train", TRAIN_SCALARS), ("validation", VALIDATION_SCALARS)):
        missing = expected - set(runs[name].Tags()["tensors"])
        assert not missing, f"run {name} lacks {missing}; has {runs[name].Tags()['tensors']}"
    for name, prefix in (("train", ""), ("validation", "val_")):
        for tag in VALIDATION_SCALARS:  # the terms and metric logged in both runs
            steps, values = scalar_series(runs[name], tag)
            assert steps == list(range(EPOCHS)), (name, tag, steps)
            np.testing.assert_allclose(values, training_run.history[prefix + tag[len("epoch_"):]], rtol=1e-6)
    steps, learning_rates = scalar_series(runs["train"], "epoch_learning_rate")
    assert steps == list(range(EPOCHS))
    np.testing.assert_allclose(learning_rates, training_run.learning_rates, rtol=1e-6)
    steps, weights = scalar_series(runs["train"], "epoch_loss_3d_weight")
    assert steps == list(range(EPOCHS))
    np.testing.assert_allclose(weights, training_run.weights_3d, rtol=1e-6)


def test_csv_log_records_the_schedules(training_run):
    """The schedules reach the callbacks after AddSchedulesToLogs, not only TensorBoard."""
    rows = np.genfromtxt(training_run.csv, delimiter=",", names=True)
    np.testing.assert_allclose(rows["learning_rate"], training_run.learning_rates, rtol=1e-6)
    np.testing.assert_allclose(rows["loss_3d_weight"], training_run.weights_3d, rtol=1e-6)


def test_keypoint_image_per_epoch(training_run):
    preview = read_run(training_run.log_dir / tensorboard_logging.PREVIEW_RUN)
    events = preview.Tensors(tensorboard_logging.PREVIEW_TAG)
    assert [event.step for event in events] == list(range(EPOCHS))
    for event in events:
        width, height, png = tf.make_ndarray(event.tensor_proto)  # tf.summary.image's layout
        image = tf.io.decode_png(png, channels=3).numpy()
        assert image.shape == (int(height), int(width), 3)
        # One row per frame, one column per view, panels about square.
        assert image.shape[0] >= 100 * FRAMES_PREVIEW and image.shape[1] >= 100 * VIEWS
        assert abs(image.shape[1] / image.shape[0] - VIEWS / FRAMES_PREVIEW) < 0.2
        for colour in (BLUE, RED):
            close = np.abs(image.astype(int) - colour).max(axis=-1) < 30
            assert close.sum() > 50, f"no bones in colour {colour}: the picture is blank"
        # Where the bones fall in the picture: tests/test_visualize.py (the same plot_keypoints_2d).


# --------------------------------------------------------------------------- a TensorBoard server

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def wait_for_tags(url: str, expected: dict, server: subprocess.Popen, log_path, timeout_s: float = 60):
    """Poll the server's ``{run: {tag: ...}}`` listing until it holds ``expected`` {run: tags}."""
    deadline, listing = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"TensorBoard exited with {server.returncode}:\n{log_path.read_text()}")
        try:
            listing = get_json(url)
        except (urllib.error.URLError, ConnectionError):
            pass  # still starting
        if listing and all(tags <= set(listing.get(run, {})) for run, tags in expected.items()):
            return listing
        time.sleep(1)
    pytest.fail(f"TensorBoard did not list {expected} within {timeout_s} s; last answer: {listing}\n"
                f"{log_path.read_text()}")


def test_tensorboard_server_lists_the_logs(training_run, tmp_path):
    port, log_path = free_port(), tmp_path / "tensorboard.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(training_run.log_dir),
             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}/data/plugin"
        scalars = wait_for_tags(f"{base}/scalars/tags",
                                {"train": TRAIN_SCALARS, "validation": VALIDATION_SCALARS}, server, log_path)
        images = wait_for_tags(f"{base}/images/tags",
                               {tensorboard_logging.PREVIEW_RUN: {tensorboard_logging.PREVIEW_TAG}}, server, log_path)
        print("TensorBoard scalar tags:", {run: sorted(tags) for run, tags in scalars.items()})
        print("TensorBoard image tags:", {run: sorted(tags) for run, tags in images.items()})
        series = get_json(f"{base}/scalars/scalars?run=train&tag=epoch_learning_rate")
        assert [step for _, step, _ in series] == list(range(EPOCHS))  # [wall_time, step, value]
        np.testing.assert_allclose([value for _, _, value in series], training_run.learning_rates, rtol=1e-6)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --------------------------------------------------------------------------- the pieces

def test_only_the_chief_writes(tmp_path):
    weight = keras.Variable(0.0, trainable=False)
    preview = random_batch(np.random.default_rng(0), 1)
    chief = tensorboard_logging.tensorboard_callbacks(str(tmp_path), weight, preview)
    worker = tensorboard_logging.tensorboard_callbacks(str(tmp_path), weight, preview, is_chief=False)
    assert [type(callback) for callback in chief] == [
        tensorboard_logging.AddSchedulesToLogs, keras.callbacks.TensorBoard, tensorboard_logging.KeypointPreview]
    assert [type(callback) for callback in worker] == [tensorboard_logging.AddSchedulesToLogs]


def test_preview_batch_must_hold_images_and_kp2d(tmp_path):
    inputs, targets = random_batch(np.random.default_rng(0), 1)
    with pytest.raises(KeyError, match="'images'"):
        tensorboard_logging.KeypointPreview(str(tmp_path), ({"P": inputs["images"]}, targets))
    with pytest.raises(KeyError, match="'kp2d'"):
        tensorboard_logging.KeypointPreview(str(tmp_path), (inputs, {"kp3d": targets["kp3d"]}))


def test_take_preview_batch_spans_batches():
    inputs, targets = random_batch(np.random.default_rng(0), 5)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(2)
    first_inputs, first_targets = tensorboard_logging.take_preview_batch(dataset, frames=3)
    np.testing.assert_array_equal(first_inputs["images"], inputs["images"][:3])
    np.testing.assert_array_equal(first_targets["kp2d"], targets["kp2d"][:3])
    with pytest.raises(ValueError, match="empty"):
        tensorboard_logging.take_preview_batch(dataset.take(0))
