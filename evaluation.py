"""The test protocol: predict every test frame, score it, print the per-action table, write files.

Scores per frame (``h36m_utils`` metrics): MPJPE in world mm (absolute), MPJPE after aligning
the pelvis, P-MPJPE (Procrustes with scale) and the 2D error in crop pixels (mean over the
views). Two averages are reported: over actions (each action's mean, then the mean of those, as
most papers report) and over frames (every test frame counts once, as Iskakov et al. report).
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


@dataclasses.dataclass(frozen=True)
class Summary:
    """The numbers of the test table.

    per_action: {action: {metric: mean over its frames}}, actions sorted; frames: {action: number
    of frames}; over_actions: {metric: mean of the per-action means} (the papers' convention);
    over_frames: {metric: mean over every test frame} (Iskakov et al.'s convention).
    """

    per_action: dict
    frames: dict
    over_actions: dict
    over_frames: dict

    @property
    def num_frames(self) -> int:
        """Test frames in all."""
        return int(sum(self.frames.values()))

    def averages(self) -> tuple[tuple[str, dict], ...]:
        """``(("actions", over_actions), ("frames", over_frames))``: the final rows, in order."""
        return ("actions", self.over_actions), ("frames", self.over_frames)


AVERAGES_NOTE = ("The top-level metric keys are the mean over actions (each action's mean, then "
                 "their mean: the papers' convention), the same numbers as average_over_actions; "
                 "average_over_frames counts every test frame once (Iskakov et al.'s convention).")


def summarize(predictions: Predictions) -> Summary:
    """Score every frame of ``predictions``; average per action, over actions and over frames."""
    per_frame = per_frame_metrics(predictions)
    per_action, over_actions = h36m_utils.summarize_per_action(predictions.actions, per_frame)
    actions, counts = np.unique(predictions.actions, return_counts=True)
    return Summary(per_action=per_action, frames=dict(zip(actions.tolist(), counts.tolist())),
                   over_actions=over_actions,
                   over_frames={key: float(np.mean(values)) for key, values in per_frame.items()})


def format_table(summary: Summary) -> str:
    """The per-action table (mm, px), ending with the rows "Avg (actions)" and "Avg (frames)"."""
    header = f"{'Action':<14}" + "".join(f"{title:>13}" for _, title in METRICS) + f"{'frames':>9}"
    rule = "-" * len(header)

    def row(name, values, count):
        return f"{name:<14}" + "".join(f"{values[key]:>13.1f}" for key, _ in METRICS) + f"{count:>9d}"

    lines = [header, rule] + [row(action, values, summary.frames[action])
                              for action, values in summary.per_action.items()]
    lines += [rule] + [row(f"Avg ({name})", values, summary.num_frames)
                       for name, values in summary.averages()]
    return "\n".join(lines)


def write_metrics(output_dir: str, summary: Summary, *, weights: str, config: str,
                  weights_info: dict | None = None, extra: dict | None = None) -> tuple[str, str]:
    """Write ``metrics.json`` and ``metrics.csv`` to ``output_dir``; return their paths.

    metrics.json: see ``_metrics_content``. metrics.csv: one row per action, then "Average over
    actions" and "Average over frames". An ``extra`` key that would replace one of the
    protocol's own keys is a ValueError.
    """
    content = _metrics_content(summary, weights=weights, config=config, weights_info=weights_info)
    clashes = sorted(set(extra or {}) & set(content))
    if clashes:
        raise ValueError(f"write_metrics: extra fields {clashes} would overwrite the protocol's own "
                         "keys in metrics.json; rename them.")
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, "metrics.json")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump({**content, **(extra or {})}, handle, indent=2)
    csv_path = os.path.join(output_dir, "metrics.csv")
    _write_csv(csv_path, summary)
    return json_path, csv_path


def _metrics_content(summary: Summary, *, weights: str, config: str,
                     weights_info: dict | None) -> dict:
    """The protocol's fields of metrics.json.

    The ``METRICS`` keys at the top level are the mean over actions (as before, for existing
    readers); ``average_over_actions`` / ``average_over_frames`` name both averages explicitly
    and ``averages_note`` says so. Also ``per_action`` ({action: {metric: value, "num_frames":
    n}}), ``num_frames``, ``weights``, ``weights_info`` (which weights were scored and how they
    were selected; null when not given) and ``config``.
    """
    return {**{key: summary.over_actions[key] for key, _ in METRICS},
            **{f"average_over_{name}": {key: values[key] for key, _ in METRICS}
               for name, values in summary.averages()},
            "averages_note": AVERAGES_NOTE,
            "per_action": {action: {**values, "num_frames": summary.frames[action]}
                           for action, values in summary.per_action.items()},
            "num_frames": summary.num_frames, "weights": weights, "weights_info": weights_info,
            "config": config}


def _write_csv(path: str, summary: Summary) -> None:
    """metrics.csv: a row per action, then one per average, metrics to 3 decimals."""
    def row(name, values, count):
        return [name] + [f"{values[key]:.3f}" for key, _ in METRICS] + [count]

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["action"] + [key for key, _ in METRICS] + ["num_frames"])
        writer.writerows(row(action, values, summary.frames[action])
                         for action, values in summary.per_action.items())
        writer.writerows(row(f"Average over {name}", values, summary.num_frames)
                         for name, values in summary.averages())


def draw_pictures(predictions: Predictions, images_dir: str) -> tuple[str, str]:
    """imgs/kpts_preds.png (2D over the crops) and imgs/3d_prediction.png (3D skeletons)."""
    rows, p = predictions.picture_rows, predictions
    titles = [f"{p.subjects[i]} {p.sequences[i]} #{p.frames[i]}" for i in rows]
    path_2d = visualize.plot_keypoints_2d(p.picture_images, p.kp2d_pred[rows], p.kp2d_true[rows],
                                          os.path.join(images_dir, "kpts_preds.png"), titles)
    path_3d = visualize.plot_skeletons_3d(p.kp3d_pred[rows], p.kp3d_true[rows],
                                          os.path.join(images_dir, "3d_prediction.png"), titles)
    return path_2d, path_3d
