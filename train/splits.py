"""Which Human3.6M sequences train, validate and test: the subjects a run names, the held-out trials
of validation, and the error that says where the data was looked for when there is none."""
from __future__ import annotations

import os

import h36m_utils
from options import UsageError


def load_split(args, subjects, purpose: str):
    """(sequences, cameras, the index's report) of ``subjects``."""
    sequences, report = h36m_utils.find_sequences(args.data_dir, args.labels_dir, subjects)
    if not sequences:
        print(f"[{purpose}: {', '.join(subjects)}] {report}")
        raise UsageError(
            f"No Human3.6M sequences of {', '.join(subjects)} found. Looked for videos "
            f"(<subject>/Videos/<Action>.<camera>.mp4, at any depth) under --data-dir "
            f"{os.path.abspath(args.data_dir)} and pose CDFs (<subject>/MyPoseFeatures/"
            f"D3_Positions/*.cdf and D2_Positions/*.cdf) under --labels-dir "
            f"{os.path.abspath(args.labels_dir)}. Get the data set from "
            "http://vision.imar.ro/human3.6m/ (registration required) and unpack it there (see "
            "Data/README.md). To try everything without a download, run: "
            "python train_and_test.py --mode demo")
    cameras = h36m_utils.load_cameras(args.cameras)
    h36m_utils.check_cameras(cameras, sorted({s.subject for s in sequences}), args.cameras)
    return sequences, cameras, report


def validation_subjects(args, train_subjects) -> list:
    """--val-subjects: default the last training subject; 'none' for no validation."""
    if args.val_subjects is None:
        return [train_subjects[-1]]
    return [] if [s.lower() for s in args.val_subjects] == ["none"] else list(args.val_subjects)


def load_training_splits(args):
    """(train sequences, validation sequences, cameras, a sentence saying what validates)."""
    train_subjects = args.train_subjects or list(h36m_utils.TRAIN_SUBJECTS)
    val_subjects = validation_subjects(args, train_subjects)
    sequences, cameras, report = load_split(args, train_subjects, "training")
    held_in = [s for s in val_subjects if s in train_subjects]
    sequences, validation = h36m_utils.hold_out_last_trials(sequences, held_in)
    others, reports = [s for s in val_subjects if s not in train_subjects], [report]
    if others:
        extra, extra_cameras, extra_report = load_split(args, others, "validation")
        validation, cameras, reports = validation + extra, {**cameras, **extra_cameras}, reports + [extra_report]
    print(h36m_utils.describe_sequences({"training": sequences, "validation": validation}, reports))
    h36m_utils.require_complete(reports, "training", args.allow_partial)
    if val_subjects and not validation:
        raise UsageError(f"Validation has 0 sequences of {', '.join(val_subjects)} (see above): choose "
                         "--val-subjects that have data, or pass --val-subjects none to train without validation.")
    if not val_subjects:
        return sequences, [], cameras, "No validation (--val-subjects none): best.weights.h5 is not written."
    parts = [f"the last trial of every action of {', '.join(held_in)} (held out of training)"] if held_in else []
    parts += [f"all of {', '.join(others)}"] if others else []
    names = ", ".join(f"{s.subject} {s.name}" for s in validation)
    text = (f"Validation (picks best.weights.h5): {' and '.join(parts)}, frame stride {args.val_stride}: "
            f"{len(validation)} sequences ({names}).")
    leaked = sorted(set(val_subjects) & set(h36m_utils.TEST_SUBJECTS))
    if leaked:
        text += (f" WARNING: {', '.join(leaked)} are test subjects: weights picked on them are tuned to the "
                 "test set, and test numbers from them are not comparable with the papers'.")
    return sequences, validation, cameras, text
