"""What a predict run did with the root, said plainly: counts, a warning, an error, ``summary.json``.

A root that was not found in a frame is interpolated or held (``root_finder.fill_gaps``): crops
cut around it may miss the person, so a run must say how many there were. More than
``WARN_SHARE`` of the frames without a root of their own is a warning naming the flags that help;
fewer than ``MIN_FOUND_SHARE`` of the frames with one is an error before the model runs (a
prediction around guessed roots is not worth writing). The "centre" source, asked for by name,
has no root of its own in any frame and says so instead.
"""
from __future__ import annotations

import json
import os

import numpy as np

from rig import weights_origin

ROOT_SOURCES = ("silhouettes", "detections", "centre")  # inference.find_root_track's
WARN_SHARE = 0.05
MIN_FOUND_SHARE = 0.5
STATUSES = ("found", "interpolated", "held", "centre", "labels")
HELP = ("--detections DIR (the 2D keypoints you already have, OpenPose-format JSON per camera: the root is "
        "triangulated from them), --background-videos DIR (the same cameras filming the room without the person, "
        "for the silhouettes), or --root-source centre (crops around the point the cameras look at, for one person "
        "who stays near it)")


def root_counts(status) -> dict:
    """{status: frames} for every status in ``STATUSES`` (zeros included), of a (T,) str array."""
    status = np.asarray(status)
    return {kind: int(np.sum(status == kind)) for kind in STATUSES}


def check_roots(track) -> tuple:
    """(warning,) or () for a ``root_finder.RootTrack``; ValueError when fewer than
    ``MIN_FOUND_SHARE`` of its frames have a root of their own (its source not "centre")."""
    counts, total = root_counts(track.status), len(track.status)
    if track.source == "centre":
        return (f"Warning: the root is the point the cameras look at in every one of the {total} frames "
                "(--root-source centre), not found: the crops follow the person only where the model's own pelvis "
                "is consistent across views.",)
    if counts["found"] < MIN_FOUND_SHARE * total:
        raise ValueError(f"The root was found in only {counts['found']} of {total} frames from the {track.source} "
                         f"({counts['interpolated']} interpolated, {counts['held']} held): fewer than "
                         f"{100 * MIN_FOUND_SHARE:.0f}%, so the crops would be cut around guessed roots. Pass {HELP}.")
    guessed = counts["interpolated"] + counts["held"]
    if guessed > WARN_SHARE * total:
        return (f"Warning: the root was not found in {guessed} of {total} frames ({100 * guessed / total:.0f}%: "
                f"{counts['interpolated']} interpolated, {counts['held']} held; see root_status in predictions.npz). "
                f"Their crops may miss the person. Pass {HELP}.",)
    return ()


def summary(predicted, *, seconds: float, warnings=(), notes=(), weights: dict | None = None,
            refinements: int = 0) -> dict:
    """The run's account as a JSON-able dict: frames, the root's source and shares (found,
    interpolated, held, centre), the refinements accepted and refused, warnings, notes, the
    weights' sidecar and what they were trained on, seconds and frames per second. predicted: ``inference.VideoPrediction``."""
    total = len(predicted.frames)
    counts = root_counts(predicted.root_status)
    refined = int(np.sum(predicted.refined)) if predicted.refined is not None else 0
    return {
        "frames": total,
        "root_source": predicted.root_source,
        "root": {**counts, **{f"share_{kind}": counts[kind] / max(total, 1) for kind in counts}},
        "refinement": {"refinements": refinements, "model_pelvis_used": refined,
                       "first_root_kept": total - refined if refinements else 0},
        "warnings": list(warnings), "notes": list(notes), "weights": weights or {},
        "trained_on": weights_origin.statement(weights),
        "seconds": round(seconds, 3), "frames_per_second": total / max(seconds, 1e-9),
    }


def write_summary(output_dir: str, content: dict) -> str:
    """``summary.json`` in ``output_dir``; returns its path."""
    path = os.path.join(output_dir, "summary.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=1)
    return path
