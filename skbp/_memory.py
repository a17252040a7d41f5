"""The memory a fit will need, checked against what the machine has before it starts.

A network far too large for the machine (``hidden_layer_sizes=(20000, 20000)``
is 400 million parameters) would otherwise draw its initial weights, allocate
optimizer state and work buffers for many seconds, swap or grow to gigabytes,
and end in NumPy's ``MemoryError`` -- or in the kernel's out-of-memory killer.
:func:`check_fit_memory` adds up the arrays a fit keeps alive together (a lower
bound of its peak: temporaries are left out) and raises ``MemoryError`` before
anything is allocated when even that exceeds :func:`available_memory`.  Where
the available memory is unknown nothing is checked.
"""

from __future__ import annotations

import math
import os
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import DTypeLike

#: rows of a chunk of the full-batch (L-BFGS) gradient (``skbp._predict.CHUNK_ROWS``)
_CHUNK_ROWS = 256
#: L-BFGS-B's memory: scipy's default number of correction pairs (``maxcor``)
_LBFGS_PAIRS = 10
#: a cgroup memory limit at least this large means no limit
_NO_LIMIT = 1 << 60
#: a fit is refused when its arrays need more than this share of the available
#: memory: they are a lower bound of its peak (temporaries, the interpreter and
#: the rest of the machine need the remainder), and a fit that takes nearly all
#: of the memory ends in swapping, a late MemoryError or the out-of-memory killer
HEADROOM = 0.85
#: ``SKBP_MEMORY_CHECK=0`` in the environment: no check (a user who knows better)
ENABLED = os.environ.get("SKBP_MEMORY_CHECK", "1") != "0"
#: fits needing less are not checked: reading the available memory costs more
#: than a small fit's validation, and no machine that runs skbp lacks this much
CHECK_FROM = 64 << 20

_GIB = float(1 << 30)


def _read_kib(path: str, field: str) -> int | None:
    """The value of ``field`` (in kB) in a ``/proc`` file like ``meminfo``, in bytes."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):  # absent, or "max": no limit
        return None


def _cgroup_limit() -> int | None:
    """The memory limit of this process's cgroup (a container's), in bytes, or ``None``.

    cgroup v2's ``memory.max`` or v1's ``memory.limit_in_bytes``, at the
    process's cgroup path or, where the container sees its own cgroup as the
    root, at the root of the hierarchy.
    """
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hier == "0" and controllers == "":
            base, name = "/sys/fs/cgroup", "memory.max"
        elif "memory" in controllers.split(","):
            base, name = "/sys/fs/cgroup/memory", "memory.limit_in_bytes"
        else:
            continue
        for folder in (base + path, base):
            value = _read_int(os.path.join(folder, name))
            if value is not None:
                limits.append(value)
                break
    limits = [v for v in limits if 0 < v < _NO_LIMIT]
    return min(limits) if limits else None


def available_memory() -> int | None:
    """Bytes this process can still allocate, or ``None`` where unknown.

    On Linux ``MemAvailable`` plus free swap (``/proc/meminfo``), at most the
    memory limit of the process's cgroup (a container) and the room left under
    its address-space limit (``ulimit -v``); elsewhere the physical memory, as
    far as ``os.sysconf`` knows it (a fit larger than the whole machine cannot
    run).  Generous on purpose: a fit is refused only when it cannot fit.
    """
    avail = _read_kib("/proc/meminfo", "MemAvailable")
    if avail is not None:
        avail += _read_kib("/proc/meminfo", "SwapFree") or 0
        limit = _cgroup_limit()
        if limit is not None:
            avail = min(avail, limit)
    else:
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            avail = None
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        soft = None
    if soft is not None and soft != resource.RLIM_INFINITY:
        used = _read_kib("/proc/self/status", "VmSize")
        if used is not None:
            room = max(0, soft - used)
            avail = room if avail is None else min(avail, room)
    return avail


def n_parameters(
    layer_units: Sequence[int], batch_norm: bool, embedding: tuple[int, int, int] = (0, 0, 0)
) -> int:
    """Weights, biases and batch norm's scales and shifts of a network of these widths,
    and the periodic embedding's parameters (``embedding``: its columns, k and d)."""
    units = [int(u) for u in layer_units]
    n = sum(a * b + b for a, b in pairwise(units))
    n_e, k, d = embedding
    return n + (2 * sum(units[1:-1]) if batch_norm else 0) + n_e * (k + 2 * k * d + d)


def _batch_rows(batch_size: str | int, n_rows: int) -> int:
    """The mini-batch rows of a stochastic fit (``skbp._training._resolve_batch_size``)."""
    if batch_size == "auto":
        return min(200, n_rows)
    if batch_size == "full":
        return n_rows
    return max(1, min(int(batch_size), n_rows))


def fit_bytes(
    layer_units: Sequence[int],
    dtype: DTypeLike,
    n_rows: int,
    *,
    solver: str,
    batch_size: str | int = "auto",
    batch_norm: bool = False,
    dropout: bool = False,
    residual: bool = False,
    early_stopping: bool = False,
    validation_fraction: float = 0.1,
    sparse: bool = False,
    new_network: bool = True,
    new_optimizer: bool = True,
    n_networks: tuple[int, int] = (1, 1),
    embedding: tuple[int, int, int] = (0, 0, 0),
) -> int:
    """Bytes of the arrays a fit allocates and keeps alive together.

    Per parameter, in the model's dtype: the weights and the copy kept to
    restore (``new_network``: not there yet), the gradient, the trainer's
    best and epoch-start copies (and early stopping's new copy of the best
    weights) and the optimizer's state (SGD's velocity,
    Adam's two moments; ``new_optimizer``: not continued from an earlier
    ``partial_fit``); for L-BFGS instead scipy's L-BFGS-B, in float64 (10
    correction pairs, its work arrays, the gradient it is handed).  Plus the
    work buffers: a batch (a chunk for L-BFGS, every row with batch norm) times
    the widths of all layers, per buffer.  Temporaries are not counted, so a
    fit needs more than this: it is the bound below which a fit is never refused.
    ``n_networks``: an ensemble's ``(k, m)``, ``k`` networks each with its
    parameters and optimizer state, ``m`` of them training at once (each with
    its work buffers and, for L-BFGS, scipy's arrays).  ``embedding``: the
    periodic embedding's ``(columns, k, d)``, its parameters and its per-row
    buffer (``layer_units[0]`` is then the embedded width).
    """
    units = [int(u) for u in layer_units]
    size = np.dtype(dtype).itemsize
    n_params = n_parameters(units, batch_norm, embedding)
    kept = 2 if new_network else 0  # the weights and the copy to restore
    copies = 0  # those of a network while it trains
    if solver == "lbfgs":
        rows = n_rows if batch_norm else min(_CHUNK_ROWS, n_rows)
        copies += 2  # the gradient and the best point seen
        # scipy: 2 m n of correction pairs, 5 n of work, the gradient, the two
        # bounds (float64) and 3 n + n of int32 indices; skbp's float64 start
        # and gradient handed to it
        extra = n_params * (8 * (2 * _LBFGS_PAIRS + 5 + 1 + 2) + 4 * 4 + 8 * 2)
    else:
        if early_stopping:
            n_rows -= math.ceil(validation_fraction * n_rows)
        rows = _batch_rows(batch_size, max(1, n_rows)) + int(batch_norm)
        # the gradient, the best and the epoch-start parameters; early stopping
        # copies the best weights anew while the previous copy is alive
        copies += 3 + int(early_stopping)
        if new_optimizer:
            kept += 2 if solver == "adam" else 1
        extra = 0
    widths = units[1:]
    hidden = units[1:-1]
    keep = dropout or (residual and any(a == b for a, b in pairwise(hidden)))
    per_row = sum(widths) * (2 + int(keep) + int(dropout) + int(batch_norm))
    per_row += (0 if sparse else units[0]) + max(hidden, default=0)
    per_row += embedding[0] * (2 * embedding[1] + embedding[2])
    k, at_once = n_networks
    buffers = max(1, rows) * per_row * size
    return k * kept * n_params * size + at_once * (copies * n_params * size + extra + buffers)


def check_fit_memory(
    name: str, hidden: Sequence[int], layer_units: Sequence[int], dtype: DTypeLike,
    n_rows: int, **options: object,
) -> None:  # fmt: skip
    """``MemoryError`` when the fit's arrays (:func:`fit_bytes`) exceed :data:`HEADROOM`
    of the available memory.

    Fits needing less than :data:`CHECK_FROM` are not checked, nor any with
    ``SKBP_MEMORY_CHECK=0`` in the environment.

    ``name`` is the estimator's class name, ``hidden`` its hidden layer sizes
    (for the message); ``options`` go to :func:`fit_bytes`.
    """
    need = fit_bytes(layer_units, dtype, n_rows, **options)
    if need < CHECK_FROM or not ENABLED:
        return
    avail = available_memory()
    if avail is None or need <= HEADROOM * avail:
        return
    n_params = n_parameters(
        layer_units, bool(options.get("batch_norm", False)), options.get("embedding", (0, 0, 0))
    )
    raise MemoryError(
        f"This {name} needs at least {need / _GIB:.1f} GiB of memory to fit, more than "
        f"{HEADROOM:.0%} of the {avail / _GIB:.1f} GiB available (the rest is for "
        f"temporaries and the rest of the machine): its network has {n_params:,} parameters "
        f"(layer sizes {[int(u) for u in layer_units]}, hidden_layer_sizes="
        f"{tuple(int(h) for h in hidden)}), each kept several times in "
        f"{np.dtype(dtype).name} by solver={options.get('solver')!r} (weights, gradient, "
        "optimizer state, copies). Use smaller hidden_layer_sizes, float32 input (half "
        "the memory), solver='sgd' (less state than 'adam', far less than 'lbfgs'), or a "
        "machine with more memory (SKBP_MEMORY_CHECK=0 in the environment turns this "
        "check off). Nothing was allocated."
    )
