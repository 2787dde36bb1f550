"""README.md's and INFERENCE.md's commands, run as written in a fresh copy of the repository (slow:
minutes). Commands that would train for hours run with --help; the demo runs at a tiny budget on a
small synthetic set of its subjects placed where it looks (it reuses a complete set); INFERENCE's
"try it" runs exactly as written after it."""
import os
import shlex
import subprocess
import sys

import pytest

from test_docs import FENCE, ROOT

pytestmark = pytest.mark.slow
TINY_DEMO = ["--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--train-stride", "10", "--val-stride", "20",
             "--test-stride", "20"]


def shell_commands(path) -> list[str]:
    """The ``python ...`` commands of a document's code blocks (a line's parts joined by && apart),
    continuation lines joined, ``[optional]`` parts dropped."""
    import re
    lines = []
    for block in FENCE.finditer(path.read_text(encoding="utf-8")):
        for line in re.sub(r"\\\n\s*", " ", block.group(0)).splitlines():
            for part in re.sub(r"\[[^\]]*\]", "", line).split("&&"):  # the set-up before && is not ours to run
                if part.strip().startswith("python "):
                    lines.append(part.strip())
    return lines


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """The tracked files of this checkout, copied as a clone holds them, with a small complete demo set."""
    folder = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    from synthetic import synthetic_h36m
    synthetic_h36m.generate_dataset(folder / "synthetic_data", frames=40, size=256, seed=0, progress=False)
    (folder / "synthetic_data" / "COMPLETE").write_text("small set for the test\n")
    return folder


def run(command: str, folder, timeout: int = 900) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    assert argv[0] == "python"
    result = subprocess.run([sys.executable, *argv[1:]], cwd=folder, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"})
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def test_the_documented_commands_run_as_written_in_a_clone(clone):
    readme = [line for line in shell_commands(clone / "README.md") if "train_and_test.py" in line]
    demo = [line for line in readme if "--mode demo" in line]
    assert demo and len(readme) >= 4, readme
    run(demo[0] + " " + " ".join(TINY_DEMO), clone)
    assert (clone / "checkpoints" / "best.weights.h5").is_file()
    for line in readme:
        if "--mode demo" not in line:  # trains for hours or reads files of the user's: the flags parse
            assert "usage:" in run(line + " --help", clone).stdout
    inference = shell_commands(clone / "docs" / "INFERENCE.md")
    try_it = inference[inference.index(next(line for line in inference if line.startswith("python -c"))):]
    assert len(try_it) == 3, try_it
    for line in try_it:
        run(line, clone)
    assert (clone / "outputs" / "try_rig" / "predicted" / "predictions.npz").is_file()
