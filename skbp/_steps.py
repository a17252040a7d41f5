"""Work in governed steps: row ranges run on the thread count the governor picks.

Training (mini-batches of an epoch) and prediction (row chunks) both run as
consecutive steps of about :data:`STEP_SECONDS`, each on the threads
``skbp._runtime.ThreadGovernor`` chooses and timed for it.  Since the numbers
never depend on the thread count, a step may run serially or in parallel at
no cost to reproducibility.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from . import _matmul, _update
from ._runtime import parallel_available

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._layout import Layout
    from ._runtime import ThreadGovernor

#: a governed step of training or prediction aims at this much wall time (seconds)
STEP_SECONDS = 0.02
#: a probe (a step on the option the governor is not using, usually the slower
#: one) runs this fraction of a step's rows, so that probing costs a fit little
#: even when the probed option is much slower
PROBE_FRACTION = 0.25


def has_parallel_work(layout: Layout, batch_rows: int, sparse: bool) -> bool:
    """Whether a step on ``batch_rows`` rows has a parallel region at all.

    The update sweep runs in parallel from ``PAR_MIN_PARAMS`` parameters, and a
    product is split by ``skbp._matmul.n_blocks`` (run here as plain Python:
    the same rule, no compiled specialisation): the forward ``H W``, the weight
    gradient ``H^T D`` and the back-propagated ``D W^T`` of each layer.  Without
    either a step is serial whatever the thread count, and needs no governor.
    """
    if not parallel_available():
        return False
    if layout.n_params >= _update.PAR_MIN_PARAMS:
        return True
    tune = _matmul.tune_array()
    n_blocks = _matmul.n_blocks.py_func
    sizes = [int(s) for s in layout.sizes]
    B = int(batch_rows)
    for l in range(len(sizes) - 1):
        if l == 0 and sparse:
            continue  # the sparse first layer runs in skbp's own loops
        a, b = sizes[l], sizes[l + 1]
        if max(n_blocks(B, a, b, tune), n_blocks(a, B, b, tune), n_blocks(B, b, a, tune)) > 1:
            return True
    return False


class GovernedSteps:
    """Runs consecutive row ranges as steps of about ``STEP_SECONDS`` each.

    Each step runs on the threads the :class:`~skbp._runtime.ThreadGovernor`
    picks and is timed for it; the step length (a multiple of ``quantum`` rows:
    mini-batches, prediction chunks) follows the measured time per row and is
    kept from one :meth:`run` to the next (epoch after epoch).
    """

    def __init__(self, gov: ThreadGovernor, quantum: int) -> None:
        self.gov = gov
        self.quantum = int(quantum)
        self.rows = self.quantum  # the first step: one quantum

    def run(self, n_rows: int, step: Callable[[int, int, int], int]) -> None:
        """Call ``step(n_threads, start, stop)`` over ``[0, n_rows)``.

        ``step`` returns the row where the next step starts (it may run past
        ``stop`` or stop the loop by returning ``n_rows``).
        """
        start = 0
        q = self.quantum
        while start < n_rows:
            n = self.gov.threads()
            probe = self.gov.probing
            rows = max(q, int(self.rows * PROBE_FRACTION) // q * q) if probe else self.rows
            t0 = time.perf_counter()
            end = step(n, start, min(n_rows, start + rows))
            dt = time.perf_counter() - t0
            self.gov.record(n, dt, end - start)
            if end > start and dt > 0 and not probe:
                # the step length follows the option in use, not the probe
                self.rows = max(q, int(STEP_SECONDS * (end - start) / dt) // q * q)
            start = end
