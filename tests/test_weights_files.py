"""weights_files: atomic writes with a config sidecar, clear errors, downloads checked by sha256."""
import functools
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from common import weights_files
from toy_models import toy_model, weights_of


def test_weights_of_another_config_is_a_clear_error(tmp_path):
    """Guards the config check (a check that does nothing fails here) and the structure check without
    a sidecar."""
    path = str(tmp_path / "model.weights.h5")
    weights_files.save_weights(toy_model(), path, {"config": "paper"})
    with pytest.raises(ValueError, match="config 'paper'.*config 'tiny'"):
        weights_files.load_weights(toy_model(compile=False), path, "tiny")
    os.remove(weights_files.sidecar_path(path))  # no sidecar: the structure is still checked
    with pytest.raises(ValueError, match="do not fit the 'tiny' model"):
        weights_files.load_weights(toy_model(units=7, compile=False), path, "tiny")


def test_save_weights_round_trip_and_interrupted_write_keeps_old_file(tmp_path):
    """Guards the atomic write: weights written in place instead of to a temporary file moved into
    place leave half a file under the final name (planted once, failed here)."""
    path = str(tmp_path / "a.weights.h5")
    original = toy_model(seed=3)
    weights_files.save_weights(original, path, {"config": "toy", "epoch": 2})
    loaded = toy_model(seed=4, compile=False)
    assert weights_files.load_weights(loaded, path, "toy") == {"config": "toy", "epoch": 2}
    for got, want in zip(weights_of(loaded), weights_of(original)):
        np.testing.assert_array_equal(got, want)

    def crash_half_way(temporary):
        with open(temporary, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        weights_files._replace_atomically(crash_half_way, path, ".weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["a.weights.h5", "a.weights.h5.json"]  # no temporary left
    weights_files.load_weights(toy_model(compile=False), path, "toy")  # still the complete old file


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        weights_files.resolve_weights(str(tmp_path / "nope.weights.h5"))


def test_weights_from_a_url_are_downloaded_once_with_their_sidecar(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    weights_files.save_weights(toy_model(), str(served / "run.weights.h5"), {"config": "toy"})
    url = (served / "run.weights.h5").as_uri()  # file:// goes through the same download path
    local = weights_files.resolve_weights(url, cache_dir=str(tmp_path / "cache"))
    assert local.startswith(str(tmp_path / "cache")) and local.endswith("run.weights.h5")
    assert weights_files.read_weights_info(local) == {"config": "toy"}
    (served / "run.weights.h5").unlink()  # cached: no second download
    assert weights_files.resolve_weights(url, cache_dir=str(tmp_path / "cache")) == local
    with pytest.raises(ValueError, match="config 'toy'.*config 'tiny'"):
        weights_files.load_weights(toy_model(compile=False), local, "tiny")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_weights_are_checked_against_their_sha256_locally_and_over_http(tmp_path):
    """Guards --weights-sha256: a hash check that does nothing fails here."""
    served = tmp_path / "served"
    served.mkdir()
    path = served / "run.weights.h5"
    weights_files.save_weights(toy_model(), str(path), {"config": "toy"})
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert weights_files.resolve_weights(str(path), digest) == str(path)
    wrong = "0" * 64
    with pytest.raises(ValueError, match=f"sha256 is {digest} but --weights-sha256 expects {wrong}"):
        weights_files.resolve_weights(str(path), wrong)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/run.weights.h5"
        local = weights_files.resolve_weights(url, digest.upper(), cache_dir=str(tmp_path / "cache"))
        assert open(local, "rb").read() == path.read_bytes()
        with pytest.raises(ValueError, match=f"sha256 is {digest} but --weights-sha256 expects {wrong}"):
            weights_files.resolve_weights(url, wrong, cache_dir=str(tmp_path / "cache"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_weights_keras_skipped_are_an_error_not_a_half_loaded_model(tmp_path, monkeypatch):
    """Guards the comparison of every loaded weight with the file (skipping it lets a half-loaded model
    through; planted once, failed here). Keras only warns when it skips part of a file (a nested
    container it cannot match: those layers keep their fresh weights). Stand-in: a load that skips
    one layer; load_weights compares every weight with the file and refuses, and a full load passes
    the same comparison."""
    path = str(tmp_path / "toy.weights.h5")
    weights_files.save_weights(toy_model(seed=1), path, {"config": "toy"})
    weights_files.load_weights(toy_model(seed=2), path, "toy")  # complete: no error
    model = toy_model(seed=2)
    kept = [layer for layer in model.layers if layer.weights][0]
    fresh = [weight.numpy() for weight in kept.weights]
    load = type(model).load_weights

    def skipping_one_layer(self, filepath, *args, **kwargs):
        load(self, filepath, *args, **kwargs)
        for weight, value in zip(kept.weights, fresh):
            weight.assign(value)
    monkeypatch.setattr(type(model), "load_weights", skipping_one_layer)
    with pytest.raises(ValueError, match="do not fit the 'toy' model.*not loaded"):
        weights_files.load_weights(model, path, "toy")
