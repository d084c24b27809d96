"""Data-parallel training over all devices (``jax.sharding``) and exact-resume step checkpoints.

The batch is sharded over a 1-D ``data`` mesh, parameters and optimizer state are replicated; XLA inserts the
gradient all-reduce, and BatchNorm statistics are computed over the global batch, so N devices give the same
loss as one. Multi-host launches call :func:`initialize` (``jax.distributed.initialize()``) first; every process
computes the same global batch indices and contributes its slice. Only process 0 logs and writes.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"


_INITIALIZED = []


def initialize() -> None:
    """Join a multi-host run (``jax.distributed.initialize()``); call it before any other JAX work.

    Cluster settings come from the environment: ``JAX_COORDINATOR_ADDRESS`` (host:port of process 0),
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (JAX itself reads only the address outside managed clusters
    such as SLURM or Kubernetes, where it detects the other two).

    Raises:
        ValueError: ``JAX_NUM_PROCESSES`` or ``JAX_PROCESS_ID`` is set but not a valid integer.
    """
    if _INITIALIZED:
        return
    kwargs = {}
    for name, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        value = os.environ.get(name)
        if value is not None:
            if not value.strip().isdigit():
                raise ValueError(f"{name}: a non-negative integer expected, got {value!r}")
            kwargs[key] = int(value)
    jax.distributed.initialize(**kwargs)
    _INITIALIZED.append(True)


def maybe_initialize() -> None:
    """Initialize the multi-host runtime when the launcher set ``JAX_COORDINATOR_ADDRESS``.

    Command-line and pipeline entry points call it first, before anything touches a JAX device.
    """
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        initialize()


def is_main_process() -> bool:
    return jax.process_index() == 0


def data_mesh() -> Mesh:
    """A 1-D mesh over every device of every process."""
    return Mesh(np.asarray(jax.devices()), (AXIS,))


def replicate(tree, mesh: Mesh):
    """Place a pytree replicated on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(arrays: tuple[np.ndarray, ...], mesh: Mesh) -> tuple[jax.Array, ...]:
    """A global batch sharded along its first axis; each process supplies its contiguous slice."""
    sharding = NamedSharding(mesh, PartitionSpec(AXIS))
    n, pid = jax.process_count(), jax.process_index()
    out = []
    for a in arrays:
        if len(a) % mesh.size:
            raise ValueError(f"batch size {len(a)} is not divisible by the {mesh.size} devices")
        per = len(a) // n
        out.append(jax.make_array_from_process_local_data(sharding, a[pid * per : (pid + 1) * per], a.shape))
    return tuple(out)


def _step_dirs(ckpt_dir: Path) -> list[tuple[int, Path]]:
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := re.fullmatch(r"step_(\d+)", p.name))]
    return sorted(found)


def save_train_state(ckpt_dir: str | os.PathLike, step: int, tree, keep: int = 2) -> None:
    """Save the training pytree (params, other state, optimizer state) after ``step`` steps."""
    ckpt_dir = Path(ckpt_dir).absolute()
    leaves = {str(i): np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(tree))}
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(ckpt_dir / f"step_{step}", {"leaves": leaves, "step": np.int64(step)}, force=True)
        ckptr.wait_until_finished()
    if is_main_process():
        for _, old in _step_dirs(ckpt_dir)[:-keep]:
            import shutil

            shutil.rmtree(old, ignore_errors=True)


def restore_train_state(ckpt_dir: str | os.PathLike, like) -> tuple[int, object] | None:
    """The latest ``(step, tree)`` saved in ``ckpt_dir`` (structured like ``like``), or None."""
    dirs = _step_dirs(Path(ckpt_dir).absolute())
    saved, path = None, None
    for i in range(len(dirs) - 1, -1, -1):  # newest first; a corrupted one falls back to the kept older step
        path = dirs[i][1]
        try:
            with ocp.StandardCheckpointer() as ckptr:
                saved = ckptr.restore(path)
            break
        except Exception as exc:  # orbax raises many types for torn or truncated files
            older = f"step {dirs[i - 1][0]}" if i else "the start"
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            warnings.warn(f"{path}: unreadable step checkpoint ({reason}); resuming from {older}", stacklevel=2)
    if saved is None:
        return None
    leaves, treedef = jax.tree.flatten(like)
    if len(saved["leaves"]) != len(leaves):
        raise ValueError(f"{path}: checkpoint has {len(saved['leaves'])} arrays, the model {len(leaves)}")
    restored = [np.asarray(saved["leaves"][str(i)]).astype(np.asarray(leaf).dtype) for i, leaf in enumerate(leaves)]
    return int(saved["step"]), jax.tree.unflatten(treedef, restored)
