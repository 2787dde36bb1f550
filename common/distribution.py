"""Training on several devices or machines with ``tf.distribute``, the way Keras ``fit`` needs it.

* ``make_strategy``: ``default`` (one device), ``mirrored`` (all GPUs of one machine, or the CPU
  split into N logical devices), ``multiworker`` (several processes or machines, configured by
  ``TF_CONFIG``, or inside a SLURM job step by the variables ``srun`` sets: ``tf_config_from_slurm``).
  ``--batch-size`` is the GLOBAL batch; each replica gets ``batch / replicas`` and every worker reads its own share of the crop cache's shards (``distributed_dataset``).
* BatchNormalization is synchronised across replicas (``synchronize_batch_norm``), so a step
  sees the statistics of the global batch, as on one device.
* Only the chief writes checkpoints and logs (``is_chief_process``).
* Keras 3.15 cannot ``fit`` under MultiWorkerMirroredStrategy with more than one worker
  (keras-team/keras#20585), and under any strategy dies at the second epoch's validation;
  ``enable_distributed_fit`` works around both.
* A worker that never joins ends the others after ``start_timeout`` seconds (exit 1) instead of
  a silent wait; a worker lost during training surfaces as a ``tf.errors.OpError`` in every other
  worker within seconds (TensorFlow's coordination service heartbeats).
"""
from __future__ import annotations

import faulthandler
import json
import os
import re

import keras
import tensorflow as tf

import options

STRATEGIES = options.OPTIONS["strategy"].choices  # typed once, with --strategy
SLURM_PORT_VARIABLE = "MULTIWORKER_PORT"  # the first port of the workers on each node of a SLURM job step
# What TensorFlow raises in the surviving workers when a peer is gone or unreachable.
LOST_WORKER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
                      tf.errors.CancelledError)


def make_strategy(name: str, cpu_replicas: int = 0, start_timeout: float = 600.0) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy called ``name`` (one of ``STRATEGIES``).

    ``mirrored`` uses every GPU of this machine; with ``cpu_replicas`` N > 0 (a machine without
    GPUs) it splits the CPU into N logical devices, one replica each, to try multi-replica
    training anywhere. ``multiworker`` needs ``TF_CONFIG`` (the cluster and this process's task),
    set the same in every process except for ``task.index``, or else runs in a SLURM job step
    (``tf_config_from_slurm``); a process whose cluster is not complete after ``start_timeout``
    seconds exits with a message saying who is missing.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(split_cpu(cpu_replicas) if cpu_replicas else None)
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            os.environ["TF_CONFIG"] = tf_config_from_slurm()
        return _join_cluster(start_timeout)
    raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


def tf_config_from_slurm() -> str:
    """TF_CONFIG (JSON) for this process of a SLURM job step, from the variables ``srun`` sets.

    ``SlurmClusterResolver`` reads the step's nodes (``SLURM_STEP_NODELIST``), tasks per node
    (``SLURM_STEP_TASKS_PER_NODE``), task count and this task's rank (``SLURM_PROCID``); task k
    of a node listens on ``slurm_port() + k``. Tasks must be placed in blocks (srun's default),
    so that the ranks follow the node list. The GPUs are left to SLURM: each task trains on the
    GPUs it sees, as under TF_CONFIG (the resolver's own GPU split is off, and it is given a slot
    per task so that it keeps them all). Raises ValueError, naming both ways, outside a job step.
    """
    if "SLURM_STEP_NUM_TASKS" not in os.environ or "SLURM_PROCID" not in os.environ:
        inside_job = " This is a SLURM job but not a job step: start the command with srun." \
            if "SLURM_JOB_ID" in os.environ else ""
        raise ValueError(
            "--strategy multiworker needs the TF_CONFIG environment variable in every worker process, e.g. "
            "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": "
            "{\"type\": \"worker\", \"index\": 0}}' (index 1 in the second), or a SLURM job step (srun), whose "
            f"variables give the cluster.{inside_job} See TRAINING.md, 'Several machines' and 'SLURM'.")
    tasks = int(os.environ["SLURM_STEP_NUM_TASKS"])
    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=slurm_port(), auto_set_gpu=False, gpus_per_node=tasks, gpus_per_task=1)
    cluster = resolver.cluster_spec().as_dict()
    print(f"SLURM job step: task {resolver.task_id} of {tasks}; TF_CONFIG built from SLURM_STEP_NODELIST and "
          f"SLURM_STEP_TASKS_PER_NODE (ports from {SLURM_PORT_VARIABLE}).", flush=True)
    return json.dumps({"cluster": cluster, "task": {"type": resolver.task_type, "index": resolver.task_id}})


def slurm_port() -> int:
    """The first port of the workers on each node: ``$MULTIWORKER_PORT``, else one from the job ID
    (20000 to 29999), so that two jobs sharing a node rarely collide."""
    value = os.environ.get(SLURM_PORT_VARIABLE) or str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 10000)
    if not value.isdigit() or not 1024 <= int(value) <= 65000:
        raise ValueError(f"{SLURM_PORT_VARIABLE}={value}: give a port number between 1024 and 65000 (the tasks of a "
                         "node use it and the ports after it).")
    return int(value)


def split_cpu(replicas: int) -> list[str]:
    """Split the CPU into ``replicas`` logical devices; returns their names.

    Must run before TensorFlow initialises its devices (before any tensor is made).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as error:  # already initialised: only an unchanged split is usable
        if len(tf.config.list_logical_devices("CPU")) != replicas:
            raise ValueError(f"Cannot split the CPU into {replicas} devices after TensorFlow has started "
                             f"({error}); split it first.") from error
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def per_replica_batch_size(global_batch_size: int, strategy: tf.distribute.Strategy) -> int:
    """The batch each replica sees; the global batch must split evenly across replicas."""
    replicas = strategy.num_replicas_in_sync
    if global_batch_size < replicas or global_batch_size % replicas:
        raise ValueError(f"--batch-size {global_batch_size} is the global batch and must be a "
                         f"multiple of the {replicas} replicas of the strategy; use e.g. "
                         f"{max(1, global_batch_size // replicas) * replicas}.")
    return global_batch_size // replicas


def synchronize_batch_norm(model: keras.Model, strategy: tf.distribute.Strategy) -> int:
    """Make every BatchNormalization in ``model`` (backbone included) use global-batch statistics.

    With several replicas each would otherwise normalise over its own slice of the global batch,
    so training would differ from one device. Only for TensorFlow strategies with more than one
    replica: a single device needs nothing, and a saved model stays loadable by other backends.
    Returns how many layers were switched.
    """
    if strategy.num_replicas_in_sync <= 1:
        return 0
    batch_norms = [layer for layer in _all_layers(model)
                   if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in batch_norms:
        layer.synchronized = True  # read at call time by Keras' BatchNormalization
    return len(batch_norms)


def _all_layers(layer):
    """``layer`` and every layer nested in it (sub-models such as the ResNet backbone)."""
    yield layer
    for child in getattr(layer, "layers", []):
        yield from _all_layers(child)


def distributed_dataset(strategy: tf.distribute.Strategy, make_dataset, global_batch_size: int):
    """The training data, split across the strategy's replicas.

    make_dataset(batch_size, input_context) -> tf.data.Dataset yields batches of
    ``batch_size``; under a distributing strategy it is called once per input pipeline (one
    per worker) with the per-replica batch and an ``InputContext`` to shard the sequences by.
    """
    per_replica = per_replica_batch_size(global_batch_size, strategy)
    if strategy.num_replicas_in_sync == 1 and not isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return make_dataset(global_batch_size, None)
    return strategy.distribute_datasets_from_function(
        lambda context: make_dataset(per_replica, context))


def is_chief_process(strategy: tf.distribute.Strategy) -> bool:
    """True where checkpoints and logs are written: single-machine runs and the multi-worker chief."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is None or not resolver.task_type or is_chief(resolver)


def is_chief(resolver) -> bool:
    """The chief task, or worker 0 when the cluster names no chief (TF_CONFIG's convention)."""
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def _join_cluster(start_timeout: float) -> tf.distribute.MultiWorkerMirroredStrategy:
    """MultiWorkerMirroredStrategy, or exit 1 if the cluster does not form within ``start_timeout`` s.

    TensorFlow waits for every worker of TF_CONFIG without a limit (the chief forever), inside
    a call that holds the GIL, so a typo in a host name or a worker never started would hang
    silently and no Python thread could intervene: faulthandler's C-level timer ends the process.
    """
    workers = json.loads(os.environ["TF_CONFIG"]).get("cluster", {}).get("worker", [])
    print(f"Joining the multi-worker cluster ({len(workers)} workers: {', '.join(workers)}). If not "
          f"every worker has joined within {start_timeout:.0f} s (--worker-start-timeout), this process exits "
          "with code 1: start the same command in every worker (each with its own task index) and check the "
          "host names and ports.", flush=True)
    with open(os.devnull, "w") as quiet:  # the stacks of a waiting process say nothing more
        faulthandler.dump_traceback_later(start_timeout, exit=True, file=quiet)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)  # every worker answers
        finally:
            faulthandler.cancel_dump_traceback_later()
    print(f"All {len(workers)} workers joined.", flush=True)
    return strategy


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def enable_distributed_fit(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Let ``model.fit`` with validation run under a distribution strategy (Keras 3.15).

    Before every ``fit`` and ``evaluate``, Keras' TensorFlow trainer builds the model
    symbolically from one batch that it takes from the data iterator; at the second epoch's
    validation that iterator is the cached, exhausted one of the first, and fit dies with
    StopIteration. Here the model is built once, from this replica's first training batch.
    Under MultiWorkerMirroredStrategy with several workers (keras-team/keras#20585) Keras also
    (1) all-reduces that whole batch just to learn its shapes, which the collective cannot take
    (a dict of tensors), and (2) reduces the scalar logs over an axis 0 they do not have; (1) is
    gone with the local batch, (2) is fixed by averaging scalar logs over the replicas. Nothing
    changes without a strategy. Uses Keras internals: keras is pinned in requirements.txt.
    """
    if strategy is tf.distribute.get_strategy():  # the default strategy: Keras builds lazily
        return
    model._maybe_symbolic_build = _build_once_from_local_batch.__get__(model)
    if not is_multi_worker(strategy):
        return
    from keras.src.backend.tensorflow import trainer as keras_trainer
    if not getattr(keras_trainer.reduce_per_replica, "multi_worker_scalars", False):
        keras_trainer.reduce_per_replica = _reducing_scalars_over_replicas(keras_trainer.reduce_per_replica)


def _reducing_scalars_over_replicas(reduce_per_replica):
    def reduce(values, strategy, reduction):
        if reduction in ("auto", "mean") and is_multi_worker(strategy):
            return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)
    reduce.multi_worker_scalars = True
    return reduce


def _build_once_from_local_batch(model, iterator=None, data_batch=None):
    """Keras' ``_maybe_symbolic_build``, run once, with the batch's shapes read from this replica."""
    if getattr(model, "_built_symbolically", False):
        return
    strategy = model.distribute_strategy
    if iterator is not None:
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(lambda value: strategy.experimental_local_results(value)[0],
                                               next(batches))
            break
    with strategy.scope():
        model._symbolic_build(data_batch=data_batch)
    model._built_symbolically = True


def describe_lost_worker(error: tf.errors.OpError) -> str:
    """The telling part of a collective's failure: gRPC's message (``Socket closed``, ``tasks are
    unhealthy``) rather than the generic first line."""
    message = error.message or ""
    found = re.search(r'grpc_message:"([^"]+)"', message)
    lines = [line.strip() for line in message.splitlines() if line.strip() and "Graph execution error" not in line]
    return found.group(1) if found else (lines[0][:300] if lines else "no details")


def check_same_step(strategy: tf.distribute.Strategy, step: int) -> None:
    """Raise ValueError unless every worker resumes at the same training step.

    Workers that resumed from different backups would run different numbers of steps and
    wait on each other forever; the usual cause is a --checkpoint-dir that is not one shared
    folder (only the chief writes the backup, every worker reads it).
    """
    if not is_multi_worker(strategy):
        return
    value = tf.constant([step, step * step], tf.float64)
    total = strategy.reduce("SUM", strategy.run(lambda: value), axis=None).numpy()
    replicas = strategy.num_replicas_in_sync
    mean, variance = total[0] / replicas, total[1] / replicas - (total[0] / replicas) ** 2
    if abs(mean - step) > 1e-6 or variance > 1e-6:
        raise ValueError(
            f"The workers resumed at different training steps (this one at {step}, the mean is {mean:.1f}): "
            "each read another backup. Put --checkpoint-dir on a file system that every worker sees "
            "(only the chief writes the backup), then start every worker again with --resume.")
