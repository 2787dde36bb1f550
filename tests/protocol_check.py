"""What ``--mode test`` wrote, checked against the protocol run again in the test's own process.

The weights are loaded as the test loads them (``common.model_loading.load_model``), the sequences come
straight from the index (``h36m_utils.find_sequences``), and ``evaluation.predict`` +
``evaluation.summarize`` run with the command line's settings; metrics.json must hold the same
numbers and the protocol's frame count (``data_loader.count_frames``).
"""
import json

import numpy as np

import data_loader
import evaluation
import h36m_utils
import options
from common import model_loading

# metrics.json against a second run of the same float32 model on the same frames: equal up to the
# order of float32 sums (another process's thread pool may reduce in another order).
RTOL = 1e-5


def evaluate_here(argv):
    """(args, sequences, Predictions, Summary) of the protocol that ``argv`` (a --mode test command line) asks for."""
    args = options.parse(argv)
    subjects = args.test_subjects or list(h36m_utils.TEST_SUBJECTS)
    sequences, _ = h36m_utils.find_sequences(args.data_dir, args.labels_dir, subjects)
    cameras = h36m_utils.load_cameras(args.cameras)
    network, config, _ = model_loading.load_model(args, args.weights, len(h36m_utils.CAMERA_IDS), "test")
    predictions = evaluation.predict(network, sequences, cameras, stride=args.test_stride,
                                     image_size=config.image_size, box_mm=args.box_mm, root=args.root,
                                     batch_size=args.batch_size, refinements=args.refinements, progress=False)
    return args, sequences, predictions, evaluation.summarize(predictions)


def assert_metrics_match_the_protocol(metrics_path, argv) -> dict:
    """metrics.json at ``metrics_path``, written by ``argv``, equals an evaluation in this process; returns it."""
    args, sequences, predictions, summary = evaluate_here(argv)
    metrics = json.loads(open(metrics_path, encoding="utf-8").read())
    frames = data_loader.count_frames(sequences, args.test_stride)
    assert frames > 0 and metrics["num_frames"] == len(predictions) == frames, (metrics["num_frames"], frames)
    assert (metrics["root"], metrics["weights"], metrics["test_stride"]) == (args.root, args.weights, args.test_stride)
    keys = [key for key, _ in evaluation.METRICS]
    for name, values in summary.averages():
        written = metrics[f"average_over_{name}"]
        np.testing.assert_allclose([written[key] for key in keys], [values[key] for key in keys], rtol=RTOL,
                                   err_msg=f"average over {name}")
    np.testing.assert_allclose([metrics[key] for key in keys], [summary.over_actions[key] for key in keys], rtol=RTOL)
    assert {action: row["num_frames"] for action, row in metrics["per_action"].items()} == summary.frames
    for action, values in summary.per_action.items():
        np.testing.assert_allclose([metrics["per_action"][action][key] for key in keys], [values[key] for key in keys],
                                   rtol=RTOL, err_msg=action)
    return metrics
