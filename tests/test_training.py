"""training.py: atomic weights + config sidecar, resume at the same step, non-finite guard, strategy.

A tiny dense model keeps these fast; the real model goes through test_train_and_test.py.
"""
import functools
import glob
import hashlib
import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

import training

STEPS_PER_EPOCH, EPOCHS = 4, 3


def toy_model(units: int = 3, seed: int = 0, compile: bool = True) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(units)(keras.layers.Dense(8, activation="tanh")(inputs)))
    if compile:
        model.compile(optimizer=training.make_optimizer(1e-2, STEPS_PER_EPOCH * EPOCHS, warmup_steps=2),
                      loss="mse")
    return model


def constant_data(nan_at_batch: int | None = None, batch: int = 4) -> tf.data.Dataset:
    """The same batch forever (so a resumed run sees the same data as an uninterrupted one);
    optionally a NaN batch at one position."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(batch, 5)).astype("float32"), rng.normal(size=(batch, 3)).astype("float32")
    batches = np.stack([x] * 20)
    if nan_at_batch is not None:
        batches[nan_at_batch] = np.nan
    return tf.data.Dataset.from_tensor_slices((batches, np.stack([y] * 20))).repeat()


class CrashAt(keras.callbacks.Callback):
    """Simulate a killed process: raise once the optimizer has made ``step`` updates."""

    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise KeyboardInterrupt("simulated kill")


class RecordStart(keras.callbacks.Callback):
    """Remember where (epoch, batch, optimizer step) the first batch of a fit call starts."""

    def __init__(self):
        super().__init__()
        self.starts = []
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_begin(self, logs=None):
        self._pending = True

    def on_train_batch_begin(self, batch, logs=None):
        if self._pending:
            self.starts.append((self._epoch, int(self.model.optimizer.iterations.numpy())))
            self._pending = False


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


def test_resume_after_kill_continues_at_same_epoch_and_step(tmp_path):
    uninterrupted = toy_model()
    training.fit(uninterrupted, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                 checkpoint_dir=str(tmp_path / "reference"), config_name="toy", backup_every=1, verbose=0)

    checkpoints = str(tmp_path / "run")
    killed = toy_model()
    with pytest.raises(KeyboardInterrupt):
        training.fit(killed, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                     checkpoint_dir=checkpoints, config_name="toy", backup_every=1, verbose=0,
                     callbacks=[CrashAt(6)])  # mid-epoch 2 (0-based 1), after its 2nd batch
    # Nothing half-written; the epoch-1 checkpoint survives the kill and loads.
    assert not glob.glob(os.path.join(checkpoints, "**", ".tmp-*"), recursive=True)
    assert json.load(open(os.path.join(checkpoints, "last.weights.h5.json")))["epoch"] == 1
    training.load_weights(toy_model(compile=False), os.path.join(checkpoints, "last.weights.h5"), "toy")
    with pytest.raises(FileExistsError, match="--resume"):
        training.fit(toy_model(), constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                     checkpoint_dir=checkpoints, config_name="toy", verbose=0)

    resumed, record = toy_model(seed=123), RecordStart()  # other initial weights: must be replaced
    training.fit(resumed, constant_data(), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                 checkpoint_dir=checkpoints, config_name="toy", resume=True, backup_every=1, verbose=0,
                 callbacks=[record])
    assert record.starts[0] == (1, 6)  # epoch index 1, optimizer step 6 = batch 2 of that epoch
    assert int(resumed.optimizer.iterations.numpy()) == EPOCHS * STEPS_PER_EPOCH
    for got, want in zip(weights_of(resumed), weights_of(uninterrupted)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert json.load(open(os.path.join(checkpoints, "last.weights.h5.json")))["epoch"] == EPOCHS
    assert not os.path.exists(os.path.dirname(training.backup_path(checkpoints)))  # finished


def test_non_finite_loss_stops_naming_the_step_and_keeps_last_good(tmp_path):
    model = toy_model()
    with pytest.raises(training.NonFiniteLossError, match=r"training step 6 \(epoch 2, batch 2 of 4\)"):
        training.fit(model, constant_data(nan_at_batch=5), epochs=EPOCHS, steps_per_epoch=STEPS_PER_EPOCH,
                     checkpoint_dir=str(tmp_path), config_name="toy", backup_every=2, verbose=0)
    info = training.read_weights_info(str(tmp_path / training.LAST_GOOD_FILE_NAME))
    assert info["step"] == 4  # the last backup written before the failure (every 2 steps)
    good = toy_model(compile=False)
    training.load_weights(good, str(tmp_path / training.LAST_GOOD_FILE_NAME), "toy")
    assert all(np.isfinite(w).all() for w in weights_of(good))
    last = toy_model(compile=False)
    training.load_weights(last, str(tmp_path / "last.weights.h5"), "toy")
    assert all(np.isfinite(w).all() for w in weights_of(last))


def test_weights_of_another_config_is_a_clear_error(tmp_path):
    path = str(tmp_path / "model.weights.h5")
    training.save_weights(toy_model(), path, {"config": "paper"})
    with pytest.raises(ValueError, match="config 'paper'.*config 'tiny'"):
        training.load_weights(toy_model(compile=False), path, "tiny")
    os.remove(training.sidecar_path(path))  # no sidecar: the structure is still checked
    with pytest.raises(ValueError, match="do not fit the 'tiny' model"):
        training.load_weights(toy_model(units=7, compile=False), path, "tiny")


def test_save_weights_round_trip_and_interrupted_write_keeps_old_file(tmp_path):
    path = str(tmp_path / "a.weights.h5")
    original = toy_model(seed=3)
    training.save_weights(original, path, {"config": "toy", "epoch": 2})
    loaded = toy_model(seed=4, compile=False)
    assert training.load_weights(loaded, path, "toy") == {"config": "toy", "epoch": 2}
    for got, want in zip(weights_of(loaded), weights_of(original)):
        np.testing.assert_array_equal(got, want)

    def crash_half_way(temporary):
        with open(temporary, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        training._replace_atomically(crash_half_way, path, ".weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["a.weights.h5", "a.weights.h5.json"]  # no temporary left
    training.load_weights(toy_model(compile=False), path, "toy")  # still the complete old file


def test_missing_weights_file_and_bad_strategy_inputs(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no such file"):
        training.resolve_weights(str(tmp_path / "nope.weights.h5"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        training.make_strategy("multiworker")
    with pytest.raises(ValueError, match="default, mirrored, multiworker"):
        training.make_strategy("horovod")
    with pytest.raises(ValueError, match="multiple of the 1 replicas|global batch"):
        training.per_replica_batch_size(0, tf.distribute.get_strategy())


def test_learning_rate_schedule_warms_up_then_decays():
    schedule = training.make_optimizer(1e-3, total_steps=100, warmup_steps=10)._learning_rate
    values = [float(schedule(step)) for step in (0, 5, 10, 55, 100)]
    assert values[0] < values[1] < values[2] == pytest.approx(1e-3)
    assert values[2] > values[3] > values[4] == pytest.approx(1e-5, rel=1e-3)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, sys.argv[1])
    import training

    def run(strategy, synchronize):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            inputs = keras.Input((5,))
            hidden = keras.layers.Dense(8)(inputs)
            hidden = keras.layers.BatchNormalization()(hidden)
            hidden = keras.layers.Activation("tanh")(hidden)
            model = keras.Model(inputs, keras.layers.Dense(3)(hidden))
            if synchronize:
                training.synchronize_batch_norm(model, strategy)
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(32, 5)).astype("float32") * np.linspace(0.5, 3, 32)[:, None].astype("float32")
        y = rng.normal(size=(32, 3)).astype("float32")
        data = training.distributed_dataset(
            strategy, lambda batch, context: tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch), 8)
        history = model.fit(data, epochs=3, steps_per_epoch=4, verbose=0)
        return history.history["loss"]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps({"replicas": mirrored.num_replicas_in_sync,
                      "single": run(tf.distribute.get_strategy(), True),
                      "mirrored": run(mirrored, True),
                      "mirrored_unsynchronized": run(mirrored, False)}))
""")


def test_mirrored_strategy_on_two_cpus_gives_the_one_device_loss():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, os.path.dirname(os.path.dirname(__file__))],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = json.loads(result.stdout.strip().splitlines()[-1])
    assert losses["replicas"] == 2
    np.testing.assert_allclose(losses["mirrored"], losses["single"], rtol=1e-5)
    assert losses["single"][-1] < losses["single"][0]  # it trained
    # Without synchronised BatchNorm each replica normalises its own half-batch: a different loss.
    relative = np.abs(np.subtract(losses["mirrored_unsynchronized"], losses["single"])) / np.abs(losses["single"])
    assert relative.max() > 1e-3


def test_only_the_chief_writes():
    def strategy_as(task_type, task_id, jobs):
        spec = tf.train.ClusterSpec({job: [f"host{i}:2222" for i in range(n)] for job, n in jobs.items()})
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, task_type=task_type, task_id=task_id)
        return type("FakeStrategy", (), {"cluster_resolver": resolver})()

    assert training.is_chief_process(tf.distribute.get_strategy())
    assert training.is_chief_process(strategy_as("worker", 0, {"worker": 2}))
    assert training.is_chief_process(strategy_as("chief", 0, {"chief": 1, "worker": 2}))
    for other in (strategy_as("worker", 1, {"worker": 2}), strategy_as("worker", 0, {"chief": 1, "worker": 2})):
        assert not training.is_chief_process(other)


def test_weights_from_a_url_are_downloaded_once_with_their_sidecar(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    training.save_weights(toy_model(), str(served / "run.weights.h5"), {"config": "toy"})
    url = (served / "run.weights.h5").as_uri()  # file:// goes through the same download path
    local = training.resolve_weights(url, cache_dir=str(tmp_path / "cache"))
    assert local.startswith(str(tmp_path / "cache")) and local.endswith("run.weights.h5")
    assert training.read_weights_info(local) == {"config": "toy"}
    (served / "run.weights.h5").unlink()  # cached: no second download
    assert training.resolve_weights(url, cache_dir=str(tmp_path / "cache")) == local
    with pytest.raises(ValueError, match="config 'toy'.*config 'tiny'"):
        training.load_weights(toy_model(compile=False), local, "tiny")


def h5_groups(path) -> set:
    import h5py
    with h5py.File(path, "r") as handle:
        return set(handle.keys())


def test_published_weights_hold_the_model_only_and_the_backup_the_optimizer(tmp_path):
    model = toy_model()
    with pytest.raises(KeyboardInterrupt):  # stop mid-run so that the backup is still there
        training.fit(model, constant_data(), epochs=2, steps_per_epoch=STEPS_PER_EPOCH, checkpoint_dir=str(tmp_path),
                     config_name="toy", backup_every=1, verbose=0, callbacks=[CrashAt(STEPS_PER_EPOCH + 1)])
    last, backup = str(tmp_path / "last.weights.h5"), training.backup_path(str(tmp_path))
    assert "optimizer" not in h5_groups(last) and "optimizer" in h5_groups(backup)
    assert os.path.getsize(last) < os.path.getsize(backup)
    fresh = toy_model(seed=5, compile=False)
    training.load_weights(fresh, last, "toy")  # loads into a model that has no optimizer at all


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_weights_are_checked_against_their_sha256_locally_and_over_http(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    path = served / "run.weights.h5"
    training.save_weights(toy_model(), str(path), {"config": "toy"})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert training.resolve_weights(str(path), digest) == str(path)
    wrong = "0" * 64
    with pytest.raises(ValueError, match=f"sha256 is {digest} but --weights-sha256 expects {wrong}"):
        training.resolve_weights(str(path), wrong)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/run.weights.h5"
        local = training.resolve_weights(url, digest.upper(), cache_dir=str(tmp_path / "cache"))
        assert open(local, "rb").read() == path.read_bytes()
        with pytest.raises(ValueError, match=f"sha256 is {digest} but --weights-sha256 expects {wrong}"):
            training.resolve_weights(url, wrong, cache_dir=str(tmp_path / "cache"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
