"""The test protocol: predict every test frame, score it, print the per-action table, write files.

Scores per frame (``h36m_utils`` metrics): MPJPE in world mm (absolute), MPJPE after aligning
the pelvis, P-MPJPE (Procrustes with scale) and the 2D error in crop pixels (mean over the
views). They are averaged per action, then over actions, as papers report them.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np

import h36m_utils
import visualize

# (key in metrics.json / metrics.csv, column title of the printed table)
METRICS = (("mpjpe_mm", "MPJPE"), ("mpjpe_relative_mm", "MPJPE rel."),
           ("p_mpjpe_mm", "P-MPJPE"), ("error_2d_px", "2D err (px)"))


@dataclasses.dataclass
class Predictions:
    """Everything the protocol needs, for N test frames.

    kp3d_pred, kp3d_true: (N, J, 3) world mm; kp2d_pred, kp2d_true: (N, V, J, 2) crop px;
    subjects, actions, sequences: (N,) str; frames: (N,) int; picture_images: (F, V, S, S, 3)
    uint8 crops of the F frames at ``picture_rows`` (row indices into the N) for the plots.
    """

    kp3d_pred: np.ndarray
    kp3d_true: np.ndarray
    kp2d_pred: np.ndarray
    kp2d_true: np.ndarray
    subjects: np.ndarray
    actions: np.ndarray
    sequences: np.ndarray
    frames: np.ndarray
    picture_images: np.ndarray
    picture_rows: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def picture_rows(num_frames: int, count: int) -> np.ndarray:
    """``count`` frame rows spread evenly over ``num_frames`` (first and last included)."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int))


def predict(model, dataset, num_frames: int, num_pictures: int = 3) -> Predictions:
    """Run ``model`` over a ``(inputs, targets, metadata)`` dataset of ``num_frames`` frames.

    num_frames: the frames the dataset yields (``data_loader.count_frames``), used to pick the
    ``num_pictures`` frames whose crops are kept for the plots. A prediction that is not
    finite is an error naming the frame (never averaged into the table).
    """
    wanted = set(picture_rows(num_frames, num_pictures).tolist())
    parts, pictures, row = {key: [] for key in ("kp3d_pred", "kp3d_true", "kp2d_pred", "kp2d_true",
                                                "subjects", "actions", "sequences", "frames")}, [], 0
    for inputs, targets, metadata in dataset:
        outputs = model.predict_on_batch(inputs)
        batch = {"kp3d_pred": np.asarray(outputs["kp3d"], np.float64),
                 "kp2d_pred": np.asarray(outputs["kp2d"], np.float64),
                 "kp3d_true": targets["kp3d"].numpy().astype(np.float64),
                 "kp2d_true": targets["kp2d"].numpy().astype(np.float64),
                 "subjects": metadata["subject"].numpy().astype(str),
                 "actions": metadata["action"].numpy().astype(str),
                 "sequences": metadata["sequence"].numpy().astype(str),
                 "frames": metadata["frame"].numpy()}
        _check_finite(batch, row)
        for key, value in batch.items():
            parts[key].append(value)
        images = inputs["images"].numpy()
        pictures += [images[i - row] for i in sorted(wanted) if row <= i < row + len(images)]
        row += len(images)
    if row == 0:
        raise ValueError("The test set is empty: no frame to evaluate. Check --test-stride and "
                         "the index report printed above.")
    joined = {key: np.concatenate(value) for key, value in parts.items()}
    return Predictions(**joined, picture_images=np.stack(pictures),
                       picture_rows=np.array(sorted(i for i in wanted if i < row)))


def _check_finite(batch: dict, first_row: int) -> None:
    for key in ("kp3d_pred", "kp2d_pred"):
        bad = ~np.isfinite(batch[key]).reshape(len(batch[key]), -1).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise FloatingPointError(
                f"The model predicted non-finite {key[:4]} for test frame {first_row + i} "
                f"({batch['subjects'][i]} '{batch['sequences'][i]}' frame {batch['frames'][i]}); "
                "these weights are broken (diverged training?). Use an earlier checkpoint.")


def per_frame_metrics(predictions: Predictions) -> dict[str, np.ndarray]:
    """{metric key: (N,) value per frame} for the keys of ``METRICS``."""
    p = predictions
    return {"mpjpe_mm": h36m_utils.mpjpe(p.kp3d_pred, p.kp3d_true),
            "mpjpe_relative_mm": h36m_utils.mpjpe_relative(p.kp3d_pred, p.kp3d_true),
            "p_mpjpe_mm": h36m_utils.p_mpjpe(p.kp3d_pred, p.kp3d_true),
            "error_2d_px": h36m_utils.error_2d(p.kp2d_pred, p.kp2d_true).mean(axis=-1)}


def summarize(predictions: Predictions) -> tuple[dict, dict, dict]:
    """(per_action {action: {metric: mean}}, averages {metric: mean over actions},
    frames per action {action: count})."""
    per_action, averages = h36m_utils.summarize_per_action(predictions.actions,
                                                           per_frame_metrics(predictions))
    actions, counts = np.unique(predictions.actions, return_counts=True)
    return per_action, averages, dict(zip(actions.tolist(), counts.tolist()))


def format_table(per_action: dict, averages: dict, frames: dict) -> str:
    """The per-action table (mm, px) with the average over actions as its last row."""
    header = f"{'Action':<14}" + "".join(f"{title:>13}" for _, title in METRICS) + f"{'frames':>9}"
    rule = "-" * len(header)

    def row(name, values, count):
        return f"{name:<14}" + "".join(f"{values[key]:>13.1f}" for key, _ in METRICS) + f"{count:>9d}"

    lines = [header, rule] + [row(action, per_action[action], frames[action]) for action in per_action]
    lines += [rule, row("Average", averages, sum(frames.values()))]
    return "\n".join(lines)


def write_metrics(output_dir: str, per_action: dict, averages: dict, frames: dict, *,
                  weights: str, config: str, extra: dict | None = None) -> tuple[str, str]:
    """Write ``metrics.json`` and ``metrics.csv`` to ``output_dir``; return their paths.

    metrics.json: the ``METRICS`` keys averaged over actions at the top level, plus
    ``per_action`` ({action: {metric: value, "num_frames": n}}), ``num_frames``, ``weights``,
    ``config`` and any ``extra`` fields. metrics.csv: one row per action, then "Average".
    """
    os.makedirs(output_dir, exist_ok=True)
    content = {**{key: averages[key] for key, _ in METRICS},
               "per_action": {action: {**values, "num_frames": frames[action]}
                              for action, values in per_action.items()},
               "num_frames": int(sum(frames.values())), "weights": weights, "config": config,
               **(extra or {})}
    json_path = os.path.join(output_dir, "metrics.json")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2)
    csv_path = os.path.join(output_dir, "metrics.csv")
    with open(csv_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["action"] + [key for key, _ in METRICS] + ["num_frames"])
        for action, values in per_action.items():
            writer.writerow([action] + [f"{values[key]:.3f}" for key, _ in METRICS] + [frames[action]])
        writer.writerow(["Average"] + [f"{averages[key]:.3f}" for key, _ in METRICS]
                        + [sum(frames.values())])
    return json_path, csv_path


def draw_pictures(predictions: Predictions, images_dir: str) -> tuple[str, str]:
    """imgs/kpts_preds.png (2D over the crops) and imgs/3d_prediction.png (3D skeletons)."""
    rows, p = predictions.picture_rows, predictions
    titles = [f"{p.subjects[i]} {p.sequences[i]} #{p.frames[i]}" for i in rows]
    path_2d = visualize.plot_keypoints_2d(p.picture_images, p.kp2d_pred[rows], p.kp2d_true[rows],
                                          os.path.join(images_dir, "kpts_preds.png"), titles)
    path_3d = visualize.plot_skeletons_3d(p.kp3d_pred[rows], p.kp3d_true[rows],
                                          os.path.join(images_dir, "3d_prediction.png"), titles)
    return path_2d, path_3d
