"""distribution: strategies from the command line, synchronised BatchNorm, the chief, and real
multi-process runs (MultiWorkerMirroredStrategy on 127.0.0.1, MirroredStrategy on split CPUs)."""
import csv
import json
import math
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from common import distribution
from subprocesses import subprocess_env


def without_cluster_variables(monkeypatch):
    for name in [name for name in os.environ if name.startswith("SLURM_")] + ["TF_CONFIG", "MULTIWORKER_PORT"]:
        monkeypatch.delenv(name, raising=False)


def test_bad_strategy_inputs(monkeypatch):
    without_cluster_variables(monkeypatch)
    with pytest.raises(ValueError, match="TF_CONFIG.*or a SLURM job step"):
        distribution.make_strategy("multiworker")
    monkeypatch.setenv("SLURM_JOB_ID", "77")  # inside sbatch's script, outside srun
    with pytest.raises(ValueError, match="not a job step: start the command with srun"):
        distribution.make_strategy("multiworker")
    with pytest.raises(ValueError, match=", ".join(distribution.STRATEGIES)):
        distribution.make_strategy("horovod")
    with pytest.raises(ValueError, match="multiple of the 1 replicas|global batch"):
        distribution.per_replica_batch_size(0, tf.distribute.get_strategy())


def test_only_the_chief_writes():
    def strategy_as(task_type, task_id, jobs):
        spec = tf.train.ClusterSpec({job: [f"host{i}:2222" for i in range(n)] for job, n in jobs.items()})
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, task_type=task_type, task_id=task_id)
        return type("FakeStrategy", (), {"cluster_resolver": resolver})()

    assert distribution.is_chief_process(tf.distribute.get_strategy())
    assert distribution.is_chief_process(strategy_as("worker", 0, {"worker": 2}))
    assert distribution.is_chief_process(strategy_as("chief", 0, {"chief": 1, "worker": 2}))
    for other in (strategy_as("worker", 1, {"worker": 2}), strategy_as("worker", 0, {"chief": 1, "worker": 2})):
        assert not distribution.is_chief_process(other)


def srun_variables(rank: int, tasks_per_node: str, nodes: str, tasks: int, job_id: str = "4242") -> dict:
    """What srun sets in each task of a job step (the ones SlurmClusterResolver reads, and more)."""
    return {"SLURM_JOB_ID": job_id, "SLURM_PROCID": str(rank), "SLURM_NTASKS": str(tasks),
            "SLURM_STEP_NUM_TASKS": str(tasks), "SLURM_JOB_NODELIST": nodes, "SLURM_STEP_NODELIST": nodes,
            "SLURM_TASKS_PER_NODE": tasks_per_node, "SLURM_STEP_TASKS_PER_NODE": tasks_per_node}


def test_tf_config_from_slurm_variables(monkeypatch):
    without_cluster_variables(monkeypatch)
    for name, value in {**srun_variables(3, "2(x2)", "node[07-08]", 4), "CUDA_VISIBLE_DEVICES": "1"}.items():
        monkeypatch.setenv(name, value)  # SLURM gave this task GPU 1
    config = json.loads(distribution.tf_config_from_slurm())
    port = 20000 + 4242  # from the job ID: two jobs on one node rarely collide
    assert config == {"cluster": {"worker": [f"node07:{port}", f"node07:{port + 1}", f"node08:{port}",
                                             f"node08:{port + 1}"]},
                      "task": {"type": "worker", "index": 3}}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"  # the GPUs stay SLURM's choice
    monkeypatch.setenv("MULTIWORKER_PORT", "31000")
    assert json.loads(distribution.tf_config_from_slurm())["cluster"]["worker"][0] == "node07:31000"
    monkeypatch.setenv("MULTIWORKER_PORT", "80")
    with pytest.raises(ValueError, match="MULTIWORKER_PORT=80"):
        distribution.tf_config_from_slurm()


# --------------------------------------------------------------------------- the command line, several processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for handle in sockets:
            handle.bind(("127.0.0.1", 0))
        return [handle.getsockname()[1] for handle in sockets]
    finally:
        for handle in sockets:
            handle.close()


def train_command(dataset, folder, *extra) -> list[str]:
    """tiny on the 12 S1 sequences, one frame each (frame 0): a global batch of 12 is every sample,
    whichever worker reads which shard, so every run below sees the same batches."""
    return [sys.executable, "train_and_test.py", "--mode", "train", "--data-dir", str(dataset.data_dir),
            "--labels-dir", str(dataset.labels_dir), "--cameras", str(dataset.cameras_path),
            "--train-subjects", "S1", "--val-subjects", "none", "--train-stride", "40", "--config", "tiny",
            "--batch-size", "12", "--verbose", "2", "--seed", "1", "--checkpoint-dir", str(folder / "checkpoints"),
            "--log-dir", str(folder / "logs"), *extra]


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 (SLURM's tasks of a node use port + k)."""
    for _ in range(100):
        base = free_ports(1)[0]
        sockets = [socket.socket() for _ in range(count)]
        try:
            for offset, handle in enumerate(sockets):
                handle.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for handle in sockets:
                handle.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def start_workers(command, ports, folder, indices=None) -> list[subprocess.Popen]:
    """A process per worker (all, or ``indices``) of a TF_CONFIG cluster on 127.0.0.1; output in
    <folder>/worker<i>.log."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(len(ports)) if indices is None else indices:
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(folder / f"worker{index}.log", "w")
        processes.append(subprocess.Popen([*command, "--strategy", "multiworker"], cwd=REPO, stdout=log,
                                          stderr=subprocess.STDOUT, env={**subprocess_env(), "TF_CONFIG": config}))
    return processes


def wait_all(processes, timeout: float) -> list[int]:
    """Exit codes of ``processes``; every one still running at the deadline is killed (and fails the test)."""
    deadline, codes = time.time() + timeout, []
    try:
        for process in processes:
            codes.append(process.wait(timeout=max(1.0, deadline - time.time())))
    except subprocess.TimeoutExpired:
        pytest.fail(f"a process was still running after {timeout} s")
    finally:
        for process in processes:
            process.kill()
            process.wait()
    return codes


def read_log(folder) -> list[dict]:
    path = folder / "logs" / "training.csv"
    if not path.exists():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


def losses_of(folder) -> list[float]:
    return [float(row["loss"]) for row in read_log(folder)]


def backup_step(folder) -> int:
    try:
        return json.loads((folder / "checkpoints" / "backup" / "state.weights.h5.json").read_text())["step"]
    except (FileNotFoundError, json.JSONDecodeError):
        return -1


EPOCHS = ["--epochs", "3", "--steps-per-epoch", "3", "--backup-every", "1"]
# Validation after every epoch (on S11, which does not change the training batches): Keras 3.15
# under a strategy reads the cached validation iterator again at the second epoch.
VALIDATE = ["--val-subjects", "S11", "--val-stride", "20"]


def assert_validated_every_epoch(folder, epochs=3):
    rows = read_log(folder)
    assert [int(row["epoch"]) for row in rows] == list(range(epochs))
    assert all(math.isfinite(float(row["val_kp3d_mpjpe"])) for row in rows), rows


@pytest.fixture(scope="module")
def one_device_losses(synthetic_dataset, tmp_path_factory):
    """The reference: the same command on one device; the loss of each epoch."""
    folder = tmp_path_factory.mktemp("one_device")
    result = subprocess.run(train_command(synthetic_dataset, folder, *EPOCHS), cwd=REPO, env=subprocess_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return losses_of(folder)


def test_two_workers_train_like_one_device_survive_a_lost_worker_and_resume(synthetic_dataset, one_device_losses,
                                                                           tmp_path):
    """Two worker processes on 127.0.0.1: the chief alone writes checkpoints and the log, and its
    first epoch's loss equals one device's on the same global batches. Worker 1 is then killed:
    the chief stops at once, saying so and how to resume, and both finish with --resume."""
    command = train_command(synthetic_dataset, tmp_path, *EPOCHS, *VALIDATE)
    workers = start_workers(command, free_ports(2), tmp_path)
    deadline = time.time() + 300
    while not read_log(tmp_path) and time.time() < deadline and all(w.poll() is None for w in workers):
        time.sleep(0.1)  # until the first epoch is logged
    workers[1].kill()
    killed = time.time()
    assert wait_all(workers[:1], 180) == [1]  # the chief must stop, not hang (a guard, not a speed bound)
    stopped_after = time.time() - killed
    log = (tmp_path / "worker0.log").read_text()
    assert "a worker of the multi-worker run was lost" in log and "--resume" in log, log[-3000:]
    saved = backup_step(tmp_path)
    assert 3 <= saved < 9 and f"training state at step {saved} is saved" in log, log[-3000:]
    np.testing.assert_allclose(losses_of(tmp_path)[:1], one_device_losses[:1], rtol=1e-4)

    workers = start_workers(command + ["--resume"], free_ports(2), tmp_path)
    codes = wait_all(workers, 300)
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert all(f"(training step {saved})" in text for text in logs)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["best.weights.h5", "best.weights.h5.json",
                                                            "last.weights.h5", "last.weights.h5.json"]
    assert_validated_every_epoch(tmp_path)  # every epoch, once
    print(f"the chief stopped {stopped_after:.1f} s after worker 1 was killed; resumed at step {saved}")


def test_mirrored_from_the_command_line_on_two_cpu_replicas(synthetic_dataset, one_device_losses, tmp_path):
    command = train_command(synthetic_dataset, tmp_path, *EPOCHS, *VALIDATE, "--strategy", "mirrored",
                            "--cpu-replicas", "2")
    result = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "global batch 12 on 2 replica(s)" in result.stdout
    assert_validated_every_epoch(tmp_path)
    losses = losses_of(tmp_path)
    np.testing.assert_allclose(losses[:1], one_device_losses[:1], rtol=3e-5)
    # Later epochs drift apart: sums in another order, amplified by every Adam update (0.12% by the
    # third epoch on CI's machine). A wrong split of the global batch shows in the first epoch already.
    np.testing.assert_allclose(losses, one_device_losses, rtol=1e-2)


def test_a_worker_that_never_joins_is_reported(synthetic_dataset, tmp_path):
    command = train_command(synthetic_dataset, tmp_path, "--epochs", "1", "--worker-start-timeout", "15")
    alone = start_workers(command, free_ports(2), tmp_path, indices=[0])  # worker 1 never starts
    codes = wait_all(alone, 300)  # a guard against a hang, not a measure of speed
    log = (tmp_path / "worker0.log").read_text()
    assert codes == [1] and "within 15 s (--worker-start-timeout)" in log and "workers joined" not in log, log[-3000:]


def test_validation_smaller_than_a_global_batch_is_a_clear_error(synthetic_dataset, tmp_path):
    command = train_command(synthetic_dataset, tmp_path, "--val-subjects", "S11", "--val-stride", "40",
                            "--strategy", "mirrored", "--cpu-replicas", "2")
    result = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Validation has 11 frames, fewer than one global batch of 12" in result.stderr + result.stdout
    assert "--val-stride" in result.stderr + result.stdout


def test_two_slurm_tasks_train_without_tf_config(synthetic_dataset, tmp_path):
    """Two processes given the variables srun sets for a 2-task step on one node (127.0.0.1), no
    TF_CONFIG: each finds its task, they form the cluster, and only task 0 (the chief) writes."""
    base = consecutive_free_ports(2)
    command = [*train_command(synthetic_dataset, tmp_path, "--epochs", "1", "--steps-per-epoch", "2"),
               "--strategy", "multiworker", "--worker-start-timeout", "120"]
    environment = {name: value for name, value in subprocess_env().items()
                   if not name.startswith("SLURM_") and name != "TF_CONFIG"}
    processes = []
    for rank in range(2):
        log = open(tmp_path / f"task{rank}.log", "w")
        processes.append(subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={
            **environment, **srun_variables(rank, "2", "127.0.0.1", 2), "SLURM_LOCALID": str(rank),
            "SLURM_NODEID": "0", "MULTIWORKER_PORT": str(base)}))
    codes = wait_all(processes, 300)
    logs = [(tmp_path / f"task{rank}.log").read_text() for rank in range(2)]
    print("\n".join(line for text in logs for line in text.splitlines() if "SLURM" in line or "joined" in line))
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    for rank, text in enumerate(logs):
        assert f"SLURM job step: task {rank} of 2" in text and "All 2 workers joined." in text, text[-3000:]
        assert f"127.0.0.1:{base}, 127.0.0.1:{base + 1}" in text
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["last.weights.h5", "last.weights.h5.json"]
    assert len(read_log(tmp_path)) == 1  # one epoch, logged once, by the chief
