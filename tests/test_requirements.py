"""requirements-gpu.txt resolves with pip, keeping every pin of requirements.txt, and brings TensorFlow's CUDA
libraries. Needs a package index (skipped without one); pip only resolves (``--dry-run``), installs nothing."""
import json
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CUDA_PACKAGES = ("nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12", "nvidia-nccl-cu12")
# What pip says when it cannot reach an index (as opposed to a pin that cannot be met).
NO_INDEX = ("(from versions: none)", "NewConnectionError", "Failed to establish a new connection",
            "Temporary failure in name resolution", "Network is unreachable", "ConnectTimeout")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: pathlib.Path) -> dict[str, str]:
    """{package: version} of the ``name==version`` lines of a requirements file."""
    found = re.findall(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;#]+)", path.read_text(), re.M)
    return {normalized(name): version for name, version in found}


def resolve(requirements: pathlib.Path, report: pathlib.Path) -> dict[str, str]:
    """{package: version} that pip would install for ``requirements`` into an empty environment."""
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                             "--timeout", "30", "--retries", "1", "--report", str(report), "-r", str(requirements)],
                            capture_output=True, text=True, timeout=900)
    if result.returncode and any(marker in result.stderr for marker in NO_INDEX):
        pytest.skip(f"no package index reachable: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    return {normalized(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}


def test_gpu_requirements_resolve_with_every_pin_kept_and_the_cuda_libraries(tmp_path):
    assert "-r requirements.txt" in (REPO / "requirements-gpu.txt").read_text()
    resolved = resolve(REPO / "requirements-gpu.txt", tmp_path / "report.json")
    print(", ".join(f"{name} {version}" for name, version in sorted(resolved.items())))
    for name, version in pins(REPO / "requirements.txt").items():
        assert resolved.get(name) == version, f"{name}: pinned {version}, resolved {resolved.get(name)}"
    assert resolved["tensorflow"] == pins(REPO / "requirements-gpu.txt")["tensorflow"]
    missing = [name for name in CUDA_PACKAGES if name not in resolved]
    assert not missing, f"tensorflow[and-cuda] brought no {missing}"
