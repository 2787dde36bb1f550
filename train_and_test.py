"""Train, test, predict or demo the canonical-fusion multi-view 3D pose model (Remelli et al., CVPR 2020).

    python train_and_test.py --mode demo                      # no download: synthetic data, tiny model
    python train_and_test.py --mode train --config paper      # Human3.6M under Data/ and Labels/
    python train_and_test.py --mode test --weights checkpoints/best.weights.h5
    python train_and_test.py --mode predict --weights W --videos DIR --calibration Calib.toml

The hub only wires: options.py defines every flag (``--help`` lists them by mode), and each mode's
work lives with its idea: training in train/run.py (splits in train/splits.py), the protocol in
evaluation.py, the model test and predict load in common/model_loading.py, the own-rig path in
rig/, the demo (its data and its run) in synthetic/demo.py. TensorFlow loads only once a mode starts.
"""
from __future__ import annotations

import sys

import options
from options import UsageError


# Each mode's function, imported when the mode starts (so --help loads no deep-learning framework).

def run_train(args) -> str:
    from train import run
    return run.run_train(args)


def run_test(args) -> dict:
    import evaluation
    return evaluation.run_test(args)


def run_predict(args) -> dict:
    from rig import predict
    return predict.command(args)


def run_demo(args) -> dict:
    from synthetic import demo
    return demo.run_demo(args)


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
