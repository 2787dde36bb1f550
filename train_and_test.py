"""Train, test, predict or demo the canonical-fusion multi-view 3D pose model (Remelli et al., CVPR 2020).

    python train_and_test.py --mode demo                      # no download: synthetic data, tiny model
    python train_and_test.py --mode train --config paper      # Human3.6M under Data/ and Labels/
    python train_and_test.py --mode test --weights checkpoints/best.weights.h5
    python train_and_test.py --mode predict --weights W --videos DIR --calibration Calib.toml

The hub only wires: options.py defines every flag (``--help`` lists them by mode), and each mode's
work lives with its idea: training in train/run.py (splits in train/splits.py), the protocol in
evaluation.py, the model test and predict load in common/model_loading.py, the own-rig path in
rig/, the demo's data in synthetic/demo.py. TensorFlow loads only once a mode starts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import options
from options import UsageError


def run_train(args) -> str:
    from train import run
    return run.run_train(args)


def run_test(args, weights: str | None = None) -> dict:
    """Run the protocol on the test subjects with ``weights`` (--weights); print, write and plot.
    Returns the metrics.json content."""
    import data_loader
    import evaluation
    import h36m_utils
    from common import model_loading
    from common import weights_files
    from rig import weights_origin
    from train import splits
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
    predictions = evaluation.predict(network, sequences, cameras, stride=args.test_stride,
                                     image_size=config.image_size, box_mm=args.box_mm, root=args.root,
                                     batch_size=args.batch_size, refinements=args.refinements,
                                     camera_ids=camera_ids, progress=args.verbose > 0)
    summary, covered = evaluation.summarize(predictions), evaluation.coverage(sequences, report, predictions,
                                                                                 args.test_stride)
    print(evaluation.format_table(summary, args.root, covered))
    json_path, csv_path = evaluation.write_metrics(
        args.output_dir, summary, weights=weights, config=config.name, root=args.root, covered=covered,
        weights_info={"file": weights, **{k: v for k, v in (info or {}).items() if k != "logs"}},
        extra={"subjects": test_subjects, "test_stride": args.test_stride, "box_mm": args.box_mm,
               "cameras": list(camera_ids)})
    written = evaluation.write_predictions(args.output_dir, predictions, camera_ids)
    pictures = evaluation.draw_pictures(predictions, args.images_dir)
    print(f"Wrote {json_path}, {csv_path}, {written[0]}, {written[1]}, {pictures[0]} and {pictures[1]}.")
    evaluation.require_complete(covered, args.output_dir, args.allow_partial)
    with open(json_path, encoding="utf-8") as handle:
        return json.load(handle)


def run_predict(args) -> dict:
    from rig import predict
    return predict.command(args)


def run_demo(args) -> dict:
    """Synthetic data (no download) -> train tiny -> test on the held-out subject, with the root found
    in the videos (the protocol) and, for comparison, the labelled one."""
    from synthetic import demo
    args = demo.demo_args(args)
    start = time.time()
    demo.ensure_synthetic_data(os.path.abspath(args.demo_dir))
    generated = time.time()
    chosen = run_train(args)
    trained = time.time()
    metrics = run_test(args, chosen)
    print("For comparison, the same weights on crops around the labelled pelvis (--root labels):")
    run_test(argparse.Namespace(**{**vars(args), "root": "labels",
                                   "output_dir": os.path.join(args.output_dir, "root-labels"),
                                   "images_dir": os.path.join(args.images_dir, "root-labels")}), chosen)
    print(f"Demo wall time: {time.time() - start:.0f} s (data {generated - start:.0f} s, training "
          f"{trained - generated:.0f} s, tests {time.time() - trained:.0f} s). These are results on "
          "SYNTHETIC data, not Human3.6M.")
    return metrics


def main(argv=None) -> int:
    from common import progress
    with progress.plain_text_unless_terminal():
        return run(argv)


def run(argv=None) -> int:
    """Parse, run the mode; the exit code (2: a usage error, 1: a failure explained, 130: Ctrl-C)."""
    args = None
    try:
        args = options.parse(argv)
        from common import devices
        devices.import_tensorflow_quietly()
        {"train": run_train, "test": run_test, "predict": run_predict, "demo": run_demo}[args.mode](args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = " Run the same command with --resume to continue." if args and args.mode != "test" else ""
        print(f"\nInterrupted.{resume}", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as error:
        # Raised with a message saying what is wrong and what to do (see the modules).
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # TensorFlow's runtime errors: say which file or worker, if we can
        from common import runtime_errors
        message = runtime_errors.explain(error, args)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
