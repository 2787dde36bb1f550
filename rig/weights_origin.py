"""What data a model's weights were trained on, recorded in their sidecar and said plainly.

Weights trained on the synthetic set (``--mode demo``) have never seen a real person: on real
footage their poses are off by decimetres (docs/INFERENCE.md gives the figures measured on a real
recording). Predict and test print ``statement`` so that nobody takes such numbers for the
model's. The sidecar's ``training_data`` is written when a training run ends (``record``); weights
without it say that their data is unknown.
"""
from __future__ import annotations

import json
import os

# The file the demo writes into the synthetic set's folder when it is complete.
SYNTHETIC_MARKER = "COMPLETE"
TRAINING_DOC = "docs/TRAINING.md"


def training_data(data_dir: str, subjects, stride: int) -> dict:
    """The sidecar's ``training_data``: the data folder, subjects and frame stride, and whether the
    folder is the synthetic set (the demo's marker beside its Data/ folder)."""
    root = os.path.dirname(os.path.abspath(data_dir))
    return {"data_dir": os.path.abspath(data_dir), "subjects": list(subjects), "stride": int(stride),
            "synthetic": os.path.isfile(os.path.join(root, SYNTHETIC_MARKER))}


def record(weights_paths, data: dict) -> None:
    """Add ``training_data`` to the sidecars of the existing ``weights_paths``."""
    for path in weights_paths:
        side = f"{path}.json"
        if os.path.isfile(side):
            with open(side, encoding="utf-8") as handle:
                info = json.load(handle)
            with open(side, "w", encoding="utf-8") as handle:
                json.dump({**info, "training_data": data}, handle, indent=1)


def statement(info: dict | None) -> str:
    """One paragraph: the data the weights were trained on, from their sidecar ``info``."""
    data = (info or {}).get("training_data")
    if data is None:
        return ("Trained on: not recorded (the weights' sidecar has no training_data: made before it was recorded, "
                "or elsewhere). Their accuracy on real people is unknown; see " + TRAINING_DOC + ".")
    trained = (f"Trained on: {'the SYNTHETIC set' if data.get('synthetic') else 'the data'} in {data['data_dir']}, "
               f"subjects {' '.join(data['subjects'])}, frame stride {data['stride']}.")
    if data.get("synthetic"):
        return (trained + " This model has never seen a real person: on real footage expect poses off by decimetres "
                "(docs/INFERENCE.md). For weights trained on Human3.6M, see " + TRAINING_DOC + ".")
    return trained
