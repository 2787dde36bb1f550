"""The test protocol: predict every test frame from the videos, score it, print the table, write files
(``run_test``: ``--mode test``).

Each test sequence goes through the same loop as a user's own rig (``inference``): the root
(pelvis) is found in the videos (``root="estimated"``, the default; the labels are read only to
score) or taken from the labels (``root="labels"``, the box around the labelled pelvis that
papers cropping with ground-truth boxes use; kept as a named comparison).

Scores per frame (``h36m_utils`` metrics): MPJPE in world mm (absolute), MPJPE after aligning
the pelvis, P-MPJPE (Procrustes with scale), the 2D error in crop pixels and in full-frame
pixels (mean over the views), and the root error: how far the final crops' root lies from the
labelled pelvis. Two averages are reported: over actions (each action's mean, then the mean of
those, as most papers report) and over frames (every test frame counts once, as Iskakov et al.
report).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np

import h36m_utils
import options
from common import geometry
from common import metrics
from common import model_loading
from common import skeleton
from common import visibility
from common import visualize
from rig import weights_origin
from train import splits

ROOTS = options.OPTIONS["root"].choices  # typed once, with --root
ROOT_DESCRIPTIONS = {"estimated": "crops around the root found in the videos (root_finder, refined by the model)",
                     "labels": "crops around the LABELLED pelvis (a comparison with papers that crop with "
                               "ground-truth boxes; not a protocol result)"}
# (key in metrics.json / metrics.csv, column title of the printed table)
METRICS = (("mpjpe_mm", "MPJPE"), ("mpjpe_relative_mm", "MPJPE rel."), ("p_mpjpe_mm", "P-MPJPE"),
           ("error_2d_px", "2D crop px"), ("error_2d_frame_px", "2D frame px"), ("root_error_mm", "root err"))


@dataclasses.dataclass
class Predictions:
    """Everything the protocol needs, for N test frames of V views.

    kp3d_pred, kp3d_true: (N, J, 3) world mm; kp2d_pred, kp2d_true: (N, V, J, 2) crop px;
    kp2d_pred_frame, kp2d_true_frame: (N, V, J, 2) full-frame px; root: (N, 3) world mm, the root
    the final crops are centred on; first_root: (N, 3) world mm, the root before the model's
    refinements (the root finder's, or the labels'); subjects, actions, sequences: (N,) str;
    frames: (N,) int; visible: (N, V, J) per-joint visibility; picture_images: (F, V, S, S, 3) uint8 crops of the F frames at
    ``picture_rows`` (row indices into the N) for the plots.
    """

    kp3d_pred: np.ndarray
    kp3d_true: np.ndarray
    kp2d_pred: np.ndarray
    kp2d_true: np.ndarray
    kp2d_pred_frame: np.ndarray
    kp2d_true_frame: np.ndarray
    root: np.ndarray
    first_root: np.ndarray
    subjects: np.ndarray
    actions: np.ndarray
    sequences: np.ndarray
    frames: np.ndarray
    picture_images: np.ndarray
    picture_rows: np.ndarray
    visible: np.ndarray  # (N, V, J) 1 visible, 0 hidden, NaN unknown (``common.visibility``)

    def __len__(self) -> int:
        return len(self.frames)


def picture_rows(num_frames: int, count: int) -> np.ndarray:
    """``count`` frame rows spread evenly over ``num_frames`` (first and last included)."""
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int))


def sequence_labels(sequence, frames, camera_ids=h36m_utils.CAMERA_IDS) -> tuple[np.ndarray, np.ndarray]:
    """The labels of ``frames`` of a sequence: ((T, J, 3) world mm, (T, V, J, 2) distorted frame px).

    Read only to score (and for ``root="labels"``); a short or non-finite file is an error
    naming it (``crop_cache.read_labels``)."""
    from pipeline.crop_cache import read_labels
    count = int(frames[-1]) + 1
    kp3d = read_labels(sequence.d3_path, count, 3, skeleton.J17)[frames]
    kp2d = np.stack([read_labels(sequence.d2_paths[c], count, 2, skeleton.J17)[frames] for c in camera_ids], axis=1)
    return kp3d, kp2d


def predict(network, sequences, cameras, *, stride: int, image_size: int, box_mm: float, root: str = "estimated",
            batch_size: int = 8, refinements: int | None = None, num_pictures: int = 3,
            camera_ids=h36m_utils.CAMERA_IDS, moved_labels=None, progress: bool = True) -> Predictions:
    """Run ``network`` over every ``stride``-th frame of ``sequences`` (``cameras``: ``load_cameras``
    output) from their videos; ``root``: "estimated" (found in the videos) or "labels";
    camera_ids: the views the model gets, in its order (a subset or another order of the four);
    moved_labels: with ``root="labels"``, a function of the labelled pelvis (T, 3) giving the roots
    instead (e.g. moved by a random offset, to measure what the root's accuracy is worth).

    A prediction that is not finite is an error naming the frame (never averaged into the table).
    """
    from rig import inference
    if root not in ROOTS:
        raise ValueError(f"root must be one of {ROOTS}, got {root!r}")
    frames_of = [np.arange(0, s.num_frames, stride) for s in sequences]
    total = sum(len(f) for f in frames_of)
    if total == 0:
        raise ValueError("The test set is empty: no frame to evaluate. Check --test-stride and "
                         "the index report printed above.")
    wanted, first_row, parts, shown = picture_rows(total, num_pictures), 0, [], []
    # A camera's background is learned from all of its subject's test videos: in one sequence the
    # person may stay in one place (sitting, turning), where the median of its own frames holds them.
    backgrounds = {(s.subject, c): [o.videos[c] for o in sequences if o.subject == s.subject]
                   for s in sequences for c in camera_ids}
    for number, (sequence, frames) in enumerate(zip(sequences, frames_of)):
        kp3d_true, kp2d_true = sequence_labels(sequence, frames, camera_ids)
        rows = wanted[(wanted >= first_row) & (wanted < first_row + len(frames))] - sum(len(f) for f in frames_of[:number])
        predicted = inference.poses_from_videos(
            network, [cameras[sequence.subject][c] for c in camera_ids],
            [sequence.videos[c] for c in camera_ids], frames, image_size=image_size, box_mm=box_mm,
            roots=_labelled_roots(kp3d_true, moved_labels) if root == "labels" else None,
            refinements=inference.DEFAULT_REFINEMENTS if refinements is None else refinements,
            batch_size=batch_size, picture_frames=frames[rows], progress=progress,
            background_videos=[backgrounds[sequence.subject, c] for c in camera_ids],
            what=f"[{number + 1}/{len(sequences)}] {sequence.subject} {sequence.name}")
        for note in predicted.notes:  # a video cut short: the frames before its end are scored
            print(f"Note: {sequence.subject} {sequence.name}: {note}")
        kept = len(predicted.frames)
        _check_finite(predicted, sequence, first_row)
        rows = rows[rows < kept]
        parts.append(_sequence_part(predicted, sequence, kp3d_true[:kept], kp2d_true[:kept], frames[rows]))
        parts[-1]["visible"] = visibility.read_visibility(sequence, frames[:kept], camera_ids)
        shown += (first_row + rows).tolist()
        first_row += kept
    pictures = np.stack([image for part in parts for image in part.pop("picture_images")])
    joined = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return Predictions(**joined, picture_images=pictures, picture_rows=np.asarray(shown, int))


def _labelled_roots(kp3d_true: np.ndarray, moved=None) -> np.ndarray:
    """(T, 3) world mm: the labelled pelvis, or ``moved`` of it."""
    pelvis = kp3d_true[:, skeleton.PELVIS]
    return pelvis if moved is None else moved(pelvis)


def _sequence_part(predicted, sequence, kp3d_true, kp2d_true, picture_frames) -> dict:
    """One sequence's rows of ``Predictions`` (as a dict of arrays)."""
    count = len(predicted.frames)
    return {"kp3d_pred": predicted.joints_3d, "kp3d_true": kp3d_true,
            "kp2d_pred": predicted.kp2d_crop, "kp2d_true": geometry.apply_affine(kp2d_true, predicted.crops),
            "kp2d_pred_frame": predicted.joints_2d, "kp2d_true_frame": kp2d_true,
            "root": predicted.root, "first_root": predicted.first_root,
            "subjects": np.full(count, sequence.subject), "actions": np.full(count, sequence.action),
            "sequences": np.full(count, sequence.name), "frames": predicted.frames,
            "picture_images": [predicted.pictures[int(f)] for f in picture_frames]}


def _check_finite(predicted, sequence, first_row: int) -> None:
    for name, values in (("3D", predicted.joints_3d), ("2D", predicted.joints_2d)):
        bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise FloatingPointError(
                f"The model predicted non-finite {name} joints for test frame {first_row + i} "
                f"({sequence.subject} '{sequence.name}' frame {predicted.frames[i]}); "
                "these weights are broken (diverged training?). Use an earlier checkpoint.")


def per_frame_metrics(predictions: Predictions) -> dict[str, np.ndarray]:
    """{metric key: (N,) value per frame} for the keys of ``METRICS``."""
    p = predictions
    return {"mpjpe_mm": metrics.mpjpe(p.kp3d_pred, p.kp3d_true),
            "mpjpe_relative_mm": metrics.mpjpe_relative(p.kp3d_pred, p.kp3d_true),
            "p_mpjpe_mm": metrics.p_mpjpe(p.kp3d_pred, p.kp3d_true),
            "error_2d_px": metrics.error_2d(p.kp2d_pred, p.kp2d_true).mean(axis=-1),
            "error_2d_frame_px": metrics.error_2d(p.kp2d_pred_frame, p.kp2d_true_frame).mean(axis=-1),
            "root_error_mm": np.linalg.norm(p.root - p.kp3d_true[:, skeleton.PELVIS], axis=-1)}


@dataclasses.dataclass(frozen=True)
class Summary:
    """The numbers of the test table.

    per_action: {action: {metric: mean over its frames}}, actions sorted; frames: {action: number
    of frames}; over_actions: {metric: mean of the per-action means} (the papers' convention);
    over_frames: {metric: mean over every test frame} (Iskakov et al.'s convention); visibility:
    the errors on visible and hidden joints (over frames; NaN without visibility labels).
    """

    per_action: dict
    frames: dict
    over_actions: dict
    over_frames: dict
    visibility: dict  # the errors split by per-joint visibility (``common.visibility.breakdown``)

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
    per_action, over_actions = metrics.summarize_per_action(predictions.actions, per_frame)
    actions, counts = np.unique(predictions.actions, return_counts=True)
    return Summary(per_action=per_action, frames=dict(zip(actions.tolist(), counts.tolist())),
                   over_actions=over_actions,
                   over_frames={key: float(np.mean(values)) for key, values in per_frame.items()},
                   visibility=visibility.breakdown(predictions.visible, predictions.kp2d_pred, predictions.kp2d_true,
                                                   predictions.kp3d_pred, predictions.kp3d_true,
                                                   image_size=predictions.picture_images.shape[2]))


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Which sequences a test scored and which it could not, so no partial number passes as whole.

    scored: [{"subject", "action", "sequence", "trial" (the number in the name, None without one),
    "num_frames" (scored), "cut_short" (why fewer frames than the index's, else absent)}];
    left_out: [{"subject", "sequence", "reason"}] the sequences (or whole subjects, sequence "-")
    that could not be used; excluded: the same for those left out by design (the S9 list, a
    video damaged in the release, ``_ALL`` recordings).
    """

    scored: list
    left_out: list
    excluded: list

    @property
    def complete(self) -> bool:
        return not self.left_out and not any("cut_short" in row for row in self.scored)

    def describe(self) -> str:
        """"complete: N of N sequences" or "partial: N of M sequences (...)"."""
        whole = sum("cut_short" not in row for row in self.scored)
        total = len(self.scored) + sum(row["sequence"] != "-" for row in self.left_out)
        if self.complete:
            return f"complete: {whole} of {total} sequences"
        subjects = [row["subject"] for row in self.left_out if row["sequence"] == "-"]
        details = [f"{len(self.scored) - whole} cut short"] if whole < len(self.scored) else []
        details += [f"{total - len(self.scored)} left out"] if total > len(self.scored) else []
        details += [f"no file of {', '.join(subjects)}"] if subjects else []
        return f"partial: {whole} of {total} sequences ({'; '.join(details)})"

    def lines(self) -> list:
        """The coverage, then, for a partial test, every sequence scored and every one left out."""
        lines = [self.describe()]
        if not self.complete:
            lines += ["  scored: " + ", ".join(f"{r['subject']} {r['sequence']} ({r['num_frames']} frames)"
                                                for r in self.scored)]
            lines += [f"  cut short: {r['subject']} {r['sequence']}: {r['cut_short']}"
                      for r in self.scored if "cut_short" in r]
            lines += [f"  left out: {r['subject']} {r['sequence']}: {r['reason']}" for r in self.left_out]
        return lines


def coverage(sequences, report, predictions: Predictions, stride: int) -> Coverage:
    """The ``Coverage`` of a test of ``sequences`` (indexed with ``report``, an ``IndexReport``)
    at ``stride``, from the frames ``predictions`` holds."""
    scored = []
    for sequence in sequences:
        count = int(np.sum((predictions.subjects == sequence.subject) & (predictions.sequences == sequence.name)))
        expected = len(range(0, sequence.num_frames, stride))
        row = {"subject": sequence.subject, "action": sequence.action, "sequence": sequence.name,
               "trial": h36m_utils.trial_number(sequence.name) or None, "num_frames": count}
        if count < expected:
            row["cut_short"] = (f"a video ended before its container says: {count} of the {expected} frames "
                                "scored; re-extract its videos from the archive")
        scored.append(row)

    def rows(entries):
        return [{"subject": e.subject, "sequence": e.sequence, "reason": e.reason} for e in entries]
    return Coverage(scored=scored, left_out=rows(report.problems()), excluded=rows(report.of_kind("skipped")))


def require_complete(covered: Coverage, output_dir: str, allow_partial: bool) -> None:
    """After the files are written: a test that scored fewer frames than its sequences hold (a video
    that ended early, found only while predicting) is an error naming them, unless ``allow_partial``."""
    if covered.complete or allow_partial:
        return
    raise h36m_utils.IncompleteDataError(
        "\n".join([f"The test is {covered.describe()}:", *covered.lines()[1:],
                   f"The files in {output_dir} say so. Re-extract those videos for a protocol result, or pass "
                   "--allow-partial to accept a partial one."]))


def format_table(summary: Summary, root: str, covered: Coverage | None = None) -> str:
    """The per-action table (mm, px), ending with the rows "Avg (actions)" and "Avg (frames)",
    under a line saying where the crops' root came from (``root``: one of ``ROOTS``) and, given
    ``covered``, lines saying which sequences were scored (``Coverage.lines``)."""
    header = f"{'Action':<14}" + "".join(f"{title:>13}" for _, title in METRICS) + f"{'frames':>9}"
    rule = "-" * len(header)

    def row(name, values, count):
        return f"{name:<14}" + "".join(f"{values[key]:>13.1f}" for key, _ in METRICS) + f"{count:>9d}"

    lines = [f"--root {root}: {ROOT_DESCRIPTIONS[root]}", *(covered.lines() if covered else []), header, rule] + [row(action, values, summary.frames[action])
                              for action, values in summary.per_action.items()]
    lines += [rule] + [row(f"Avg ({name})", values, summary.num_frames)
                       for name, values in summary.averages()]
    return "\n".join(lines + visibility.format_lines(summary.visibility))


def write_metrics(output_dir: str, summary: Summary, *, weights: str, config: str, root: str,
                  covered: Coverage, weights_info: dict | None = None, extra: dict | None = None) -> tuple[str, str]:
    """Write ``metrics.json`` and ``metrics.csv`` to ``output_dir``; return their paths.

    metrics.json: see ``_metrics_content``. metrics.csv: a row per sequence scored and per sequence
    left out (``covered``), then one per action, then "Average over actions" and "Average over
    frames"; every row has the ``root`` the crops came from and the coverage ("complete: ..." or
    "partial: ..."). An ``extra`` key that would replace one of the protocol's own keys is a ValueError.
    """
    content = _metrics_content(summary, weights=weights, config=config, weights_info=weights_info, root=root)
    content.update(coverage=covered.describe(), complete=covered.complete, sequences=covered.scored,
                   sequences_left_out=covered.left_out, sequences_excluded=covered.excluded)
    clashes = sorted(set(extra or {}) & set(content))
    if clashes:
        raise ValueError(f"write_metrics: extra fields {clashes} would overwrite the protocol's own "
                         "keys in metrics.json; rename them.")
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, "metrics.json")
    with open(json_path, "w", encoding="utf-8") as handle:
        json.dump({**content, **(extra or {})}, handle, indent=2)
    csv_path = os.path.join(output_dir, "metrics.csv")
    _write_csv(csv_path, summary, root, covered)
    return json_path, csv_path


def _metrics_content(summary: Summary, *, weights: str, config: str, weights_info: dict | None,
                     root: str) -> dict:
    """The protocol's fields of metrics.json.

    The ``METRICS`` keys at the top level are the mean over actions (as before, for existing
    readers); ``average_over_actions`` / ``average_over_frames`` name both averages explicitly
    and ``averages_note`` says so. Also ``per_action`` ({action: {metric: value, "num_frames":
    n}}), ``num_frames``, ``weights``, ``weights_info`` (which weights were scored and how they
    were selected; null when not given), ``config``, ``root`` (where the crops' root came from)
    and ``root_note``, ``visibility`` (the errors on visible and hidden joints) and its note.
    """
    return {**{key: summary.over_actions[key] for key, _ in METRICS},
            **{f"average_over_{name}": {key: values[key] for key, _ in METRICS}
               for name, values in summary.averages()},
            "averages_note": AVERAGES_NOTE,
            "per_action": {action: {**values, "num_frames": summary.frames[action]}
                           for action, values in summary.per_action.items()},
            "num_frames": summary.num_frames, "weights": weights, "weights_info": weights_info,
            "config": config, "root": root, "root_note": ROOT_DESCRIPTIONS[root],
            "visibility": summary.visibility, "visibility_note": visibility.__doc__.split("\n\n")[1].replace("\n", " ")}


CSV_SEQUENCE_COLUMNS = ("coverage", "subject", "sequence", "trial", "note")


def _write_csv(path: str, summary: Summary, root: str, covered: Coverage) -> None:
    """metrics.csv: a row per sequence scored or left out (subject, sequence, trial, frames, and why
    it is cut short or left out), a row per action, then one per average; metrics to 3 decimals."""
    coverage_text, blank = covered.describe(), [""] * len(METRICS)

    def row(name, values, count):
        return [name] + [f"{values[key]:.3f}" for key, _ in METRICS] + [count, root, coverage_text, "", "", "", ""]

    def sequence_row(entry, count, note):
        trial = h36m_utils.trial_number(entry["sequence"]) or ""
        action = entry.get("action") or (h36m_utils.canonical_action(entry["sequence"]) if entry["sequence"] != "-"
                                         else "")
        return [action, *blank, count, root, coverage_text, entry["subject"], entry["sequence"], trial, note]

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["action"] + [key for key, _ in METRICS] + ["num_frames", "root", *CSV_SEQUENCE_COLUMNS])
        writer.writerows(sequence_row(entry, entry["num_frames"], entry.get("cut_short", "scored"))
                         for entry in covered.scored)
        writer.writerows(sequence_row(entry, 0, f"left out: {entry['reason']}") for entry in covered.left_out)
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


def write_predictions(output_dir: str, predictions: Predictions, camera_ids=h36m_utils.CAMERA_IDS) -> tuple[str, str]:
    """``predictions.npz`` and ``predictions.csv`` in ``output_dir``: every test frame's 3D joints
    (world mm) and 2D joints (full-frame px) with its subject, sequence and frame, for scoring
    with other tools (``rig.exports``)."""
    from rig import exports
    p = predictions
    arrays = dict(joints_3d=p.kp3d_pred, joints_2d=p.kp2d_pred_frame, frames=p.frames, cameras=list(camera_ids))
    npz = exports.write_npz(os.path.join(output_dir, "predictions.npz"), **arrays, root=p.root,
                                       subject=p.subjects, sequence=p.sequences, frame=p.frames)
    table = exports.write_csv(os.path.join(output_dir, "predictions.csv"), **arrays,
                                         subject=p.subjects, sequence=p.sequences)
    return npz, table


def run_test(args, weights: str | None = None) -> dict:
    """``--mode test``: run the protocol on the test subjects with ``weights`` (default --weights);
    print, write and plot. Returns the metrics.json content."""
    import data_loader  # these two load TensorFlow and Keras: only once a test runs
    from common import weights_files
    weights = weights or args.weights
    test_subjects = args.test_subjects or list(h36m_utils.TEST_SUBJECTS)
    sequences, cameras, report = splits.load_split(args, test_subjects, "test")
    print(h36m_utils.describe_sequences({"test": sequences}, [report]))
    h36m_utils.require_complete([report], "the test", args.allow_partial)
    camera_ids = tuple(args.test_cameras or h36m_utils.CAMERA_IDS)
    network, config, info = model_loading.load_model(args, weights, len(camera_ids), "test")
    print(weights_origin.statement(info))
    num_frames = data_loader.count_frames(sequences, args.test_stride)
    print(f"Testing {weights} ({config.name}; {weights_files.describe_weights(info)}) on {num_frames} frames of "
          f"{', '.join(test_subjects)} (frame stride {args.test_stride}), --root {args.root}.")
    predictions = predict(network, sequences, cameras, stride=args.test_stride, image_size=config.image_size,
                          box_mm=args.box_mm, root=args.root, batch_size=args.batch_size,
                          refinements=args.refinements, camera_ids=camera_ids, progress=args.verbose > 0)
    summary, covered = summarize(predictions), coverage(sequences, report, predictions, args.test_stride)
    print(format_table(summary, args.root, covered))
    json_path, csv_path = write_metrics(
        args.output_dir, summary, weights=weights, config=config.name, root=args.root, covered=covered,
        weights_info={"file": weights, **{k: v for k, v in (info or {}).items() if k != "logs"}},
        extra={"subjects": test_subjects, "test_stride": args.test_stride, "box_mm": args.box_mm,
               "cameras": list(camera_ids)})
    written = write_predictions(args.output_dir, predictions, camera_ids)
    pictures = draw_pictures(predictions, args.images_dir)
    print(f"Wrote {json_path}, {csv_path}, {written[0]}, {written[1]}, {pictures[0]} and {pictures[1]}.")
    require_complete(covered, args.output_dir, args.allow_partial)
    with open(json_path, encoding="utf-8") as handle:
        return json.load(handle)
