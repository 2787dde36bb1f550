"""The model that test and predict run: its config from --config or else the weights' sidecar, built
for the rig's number of cameras, with the weights loaded, at --precision and --jit-compile.

A ``concat`` model runs on exactly the number of cameras it was trained with (slot k is camera k);
that number is read from the weights file before anything is built, so a model for another rig is
refused with that reason, not after Keras' own complaints about the weights it could not load.
"""
from __future__ import annotations

import h5py

import model_config
import options
from options import UsageError


def config_for(args, weights_info: dict | None):
    """The model config: ``--config`` / ``--fusion`` if given, else the one the weights' sidecar names
    (a disagreeing --config stays an error, raised where the weights are checked), else ``paper``."""
    name = args.config or (weights_info or {}).get("config") or options.OPTIONS["config"].shown
    return model_config.get_config(name, args.fusion)


def trained_views(path: str, config) -> int | None:
    """The number of cameras a ``concat`` model's weights were trained for: the first fusion layer's
    kernel is (1, 1, V x 4N, 4N) for N latent points. None for another fusion or no such kernel."""
    if config.fusion != "concat" or config.fusion_layers == 0:
        return None
    channels = 4 * config.latent_points
    found = []
    with h5py.File(path, "r") as handle:
        for name, group in handle.get("layers", {}).items():
            kernel = group.get("vars", {}).get("0")
            if kernel is not None and kernel.ndim == 4 and kernel.shape[:2] == (1, 1) and kernel.shape[3] == channels \
                    and kernel.shape[2] % channels == 0 and kernel.shape[2] > channels:
                found.append(kernel.shape[2] // channels)
    return found[0] if len(found) == 1 else None


def load_model(args, weights: str, num_views: int, mode: str, config=None):
    """(the model with ``weights`` loaded, its config, the sidecar info), at --precision and
    --jit-compile, after printing the start report of ``mode`` (devices, precision, XLA); a
    weights file of another config, or a concat model for another number of cameras, is an
    error saying what to do. config: a ``model_config.ModelConfig`` instead of --config / --fusion
    (ablations)."""
    from common import devices
    from common import weights_files
    import model as model_lib
    local_weights = weights_files.resolve_weights(weights, args.weights_sha256)
    config = config or config_for(args, weights_files.read_weights_info(local_weights))
    weights_files.check_weights_config(local_weights, config.name)
    views = trained_views(local_weights, config)
    if views is not None and views != num_views:
        raise UsageError(f"--weights {weights}: a '{config.name}' model (concat fusion: slot k is camera k) runs on "
                         f"exactly the {views} cameras it was trained with, and this rig has {num_views}. Use "
                         "weights trained with --fusion mean, which take any number of cameras.")
    devices.configure(args)  # the dtype policy of --precision, before the model is built
    network = model_lib.build_model(config, num_views=num_views)
    info = weights_files.load_weights(network, local_weights, config.name)
    devices.apply_jit_compile(network, args.jit_compile)
    print(devices.start_report(args, mode, config.name, network))
    return network, config, info
