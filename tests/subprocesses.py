"""What the tests give the processes they start."""
import os


def subprocess_env() -> dict:
    """Read when a process starts, so that it gets the session's crop-cache folder (set by conftest
    once the session begins, after the test modules were imported): quiet TensorFlow, no GPU."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
