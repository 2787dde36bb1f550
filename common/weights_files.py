"""Weights files: written atomically, with a sidecar naming the config, downloaded and hash-checked.

* ``*.weights.h5`` are written to a temporary file and moved into place (``os.replace``), so a
  crash never leaves a half-written file under the final name.
* Published weights (best, last) hold the model only; the resume backup also holds the
  optimizer (``include_optimizer``), whose two Adam moments triple the file.
* A sidecar ``<file>.json`` names the model config (loading weights into another config fails
  with a message naming both), the epoch, and how the weights were selected.
* ``--weights`` may be a URL (downloaded once, cached by ``keras.utils.get_file``) and may be
  checked against an expected sha256.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings

import h5py
import numpy as np

import keras
from keras.src.saving import saving_lib  # save_weights_only(objects_to_skip=...): weights without the optimizer


def sidecar_path(weights_path: str) -> str:
    """The json beside a weights file (``best.weights.h5`` -> ``best.weights.h5.json``)."""
    return f"{weights_path}.json"


def _replace_atomically(write, path: str, suffix: str) -> None:
    """Call write(temporary_path), then move the result onto ``path`` in one step."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".tmp-{os.getpid()}-{os.path.basename(path)}{suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def save_weights(model: keras.Model, path: str, info: dict, include_optimizer: bool = False) -> None:
    """Write ``model``'s weights to ``path`` and ``info`` to its sidecar, each atomically.

    Published weights (best, last) hold the model only; the resume backup passes
    ``include_optimizer=True`` (Adam's two moments triple the file). Both files are written to
    temporary names first and moved into place, so a crash never leaves a half-written file under
    the final name. ``info`` must hold ``config`` (the config name).
    """
    if not path.endswith(".weights.h5"):
        raise ValueError(f"Weights file names must end in .weights.h5, got {path}")
    if "config" not in info:
        raise ValueError("save_weights needs info['config'], the model config's name")
    optimizer = getattr(model, "optimizer", None)  # None for a model that was never compiled
    skip = None if include_optimizer or optimizer is None else [optimizer]
    _replace_atomically(lambda tmp: saving_lib.save_weights_only(model, tmp, objects_to_skip=skip),
                        path, ".weights.h5")

    def write_json(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(info, handle, indent=2)
    _replace_atomically(write_json, sidecar_path(path), ".json")


def read_weights_info(path: str) -> dict | None:
    """The sidecar json of a weights file, or None when there is none."""
    side = sidecar_path(path)
    if not os.path.isfile(side):
        return None
    with open(side, encoding="utf-8") as handle:
        return json.load(handle)


def resolve_weights(path_or_url: str, sha256: str | None = None, cache_dir: str | None = None) -> str:
    """A local path for ``--weights``: a URL is downloaded once (with its sidecar, if served)
    by ``keras.utils.get_file`` and cached; a local path must exist. With ``sha256`` the file's
    hash must match (a mismatch is an error naming both hashes)."""
    if "://" not in path_or_url:
        if not os.path.isfile(path_or_url):
            raise FileNotFoundError(
                f"--weights {path_or_url}: no such file. Pass a .weights.h5 written by "
                "train_and_test.py (e.g. checkpoints/best.weights.h5) or a URL.")
        local = path_or_url
    else:
        local = _download(path_or_url, cache_dir)
    if sha256:
        check_sha256(local, sha256, path_or_url)
    return local


def _download(url: str, cache_dir: str | None) -> str:
    name = os.path.basename(url.split("?")[0]) or "weights.weights.h5"
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)  # get_file falls back to /tmp for a missing folder
    local = keras.utils.get_file(name, origin=url, cache_dir=cache_dir, cache_subdir="weights")
    try:
        keras.utils.get_file(name + ".json", origin=url + ".json", cache_dir=cache_dir, cache_subdir="weights")
    except Exception as error:  # the sidecar is optional for downloads; say what happens
        print(f"Note: no config sidecar at {url}.json ({error}); the weights are "
              "checked against the model's structure only.")
    return local


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: str, expected: str, source: str) -> None:
    """Raise ValueError naming both hashes when ``path``'s sha256 is not ``expected``."""
    actual = file_sha256(path)
    if actual != expected.strip().lower():
        raise ValueError(f"--weights {source}: sha256 is {actual} but --weights-sha256 expects "
                         f"{expected.strip().lower()}. The file ({path}) is damaged, incomplete or another "
                         "file; delete it and download it again, or check the hash you were given.")


def describe_weights(info: dict | None) -> str:
    """One phrase saying which weights a file holds, from its sidecar."""
    if not info:
        return "no sidecar: origin unknown"
    epoch = f"epoch {info['epoch']}" if "epoch" in info else "epoch unknown"
    return f"{epoch}, {info.get('selected_by', 'selection not recorded')}"


def check_weights_config(path: str, config_name: str) -> dict | None:
    """Raise ValueError naming both configs when the sidecar of ``path`` names another config.

    Cheap (reads the json only): call it before building a big model. Returns the sidecar
    info (None when the file has none).
    """
    info = read_weights_info(path)
    if info is not None and info.get("config") != config_name:
        raise ValueError(
            f"--weights {path} were trained with config '{info.get('config')}', but the model "
            f"is built with config '{config_name}'. Pass --config {info.get('config')} or "
            "weights trained with this config.")
    return info


def load_weights(model: keras.Model, path: str, config_name: str) -> dict | None:
    """Load weights saved by ``save_weights`` into ``model`` built from config ``config_name``.

    Call it before ``model.compile``: the file's optimizer state (and step counter) is then
    ignored, so a run started from these weights begins its own schedule at step 0.

    Raises ValueError naming both configs when the sidecar says the weights belong to another
    config, or naming the file and the config when the structure does not fit. Returns the
    sidecar info (None when the file has none).
    """
    info = check_weights_config(path, config_name)
    try:
        with warnings.catch_warnings():
            # Keras warns about op containers without weights that differ with the number of views
            # (an order-free model loaded for another rig); what matters is checked just below.
            warnings.filterwarnings("ignore", message="Skipping nested container")
            model.load_weights(path)
        if _weight_signature(model) != _file_signature(path):
            raise ValueError("some of the model's weights were not loaded from the file")
    except (ValueError, KeyError, OSError) as error:
        raise ValueError(
            f"--weights {path} do not fit the '{config_name}' model "
            f"({'no sidecar json names their config' if info is None else 'same config name, different structure'}): "
            f"{str(error).splitlines()[0]}. Use weights written by train_and_test.py with "
            "this --config.") from error
    return info


def _weight_signature(model: keras.Model) -> list:
    """Sorted (shape, float64 sum) of every weight of ``model``: equal to the file's when all loaded."""
    return sorted((tuple(weight.shape), float(np.sum(keras.ops.convert_to_numpy(weight), dtype=np.float64)))
                  for weight in model.weights)


def _file_signature(path: str) -> list:
    """``_weight_signature`` of the model weights stored in a ``.weights.h5`` file (optimizer state left out)."""
    arrays = []
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset)
                          and not name.startswith("optimizer") else None)
    return sorted((array.shape, float(np.sum(array, dtype=np.float64))) for array in arrays)
