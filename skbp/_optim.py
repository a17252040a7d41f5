"""Optimizers as element-wise updates over the flat parameter vector.

Same update rules as scikit-learn's ``SGDOptimizer`` and ``AdamOptimizer``:

* SGD with momentum: ``v = momentum * v - lr * g``; the step is ``v``, or for
  Nesterov's momentum ``momentum * v - lr * g`` (the look-ahead form).
* Adam: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2`` and the step
  ``-lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``.
* Decoupled weight decay (AdamW, SGDW: Loshchilov and Hutter, "Decoupled
  Weight Decay Regularization", ICLR 2019): before either step the
  parameters shrink, ``w <- (1 - lr * weight_decay) * w``, with the update's
  learning rate ``lr`` as PyTorch's ``AdamW`` (:func:`decay_step`).

The learning rate of each update comes from :func:`scheduled_lr`: the rate
the Python loop set for the epoch, or a schedule stepped per update inside the
compiled epoch (cosine, one-cycle, cosine with restarts).

The optimizer state (velocity or moments, Adam's step count) lives in arrays the
estimator owns, so ``partial_fit`` continues exactly where the last call stopped.
"""

import math

import numpy as np

from ._jit import jit

SOLVER_SGD, SOLVER_ADAM = 0, 1
SOLVER_CODES = {"sgd": SOLVER_SGD, "adam": SOLVER_ADAM}
#: learning-rate schedules stepped per update in the compiled epoch; the others
#: ('constant', 'invscaling', 'adaptive', 'exponential') set the rate per epoch
#: in Python and have code 0
SCHED_EPOCH, SCHED_COSINE, SCHED_ONE_CYCLE, SCHED_RESTARTS = 0, 1, 2, 3
SCHEDULE_CODES = {
    "cosine": SCHED_COSINE,
    "one_cycle": SCHED_ONE_CYCLE,
    "cosine_restarts": SCHED_RESTARTS,
}


@jit()
def scheduled_lr(code, lr, lr_min, warmup, n_cycles, u, total):
    """The learning rate of update ``u`` (0-based) of a schedule over ``total`` updates.

    ``code`` 0 returns ``lr``, the rate the Python loop set for the epoch.
    Otherwise ``lr`` is the peak and ``lr_min`` the floor: cosine annealing
    ``lr_min + (lr - lr_min) (1 + cos(pi p)) / 2`` at ``p = u / total``; for
    one-cycle a linear warm-up over the first ``warmup * total`` updates
    (update ``u`` at ``(u + 1) / (warmup * total)`` of the way up) then the
    cosine over the rest; for restarts the cosine repeated over ``n_cycles``
    equal cycles (``u``, ``total`` and ``n_cycles`` are integers).  From
    ``u = total`` on (``partial_fit`` past its horizon) the rate stays at the
    floor.  In float64, from run-time values only: one compiled version serves
    every schedule.
    """
    if code == SCHED_EPOCH:
        return lr
    if u >= total:
        return lr_min
    p = u / total
    if code == SCHED_ONE_CYCLE:
        n_warm = warmup * total
        if u < n_warm:
            return lr_min + (lr - lr_min) * min(1.0, (u + 1.0) / n_warm)
        p = (u - n_warm) / (total - n_warm)
    elif code == SCHED_RESTARTS:
        # the place in the cycle in integers: each cycle's first update is
        # exactly at p = 0 (fastmath may divide through a reciprocal)
        p = ((u * n_cycles) % total) / total
    return lr_min + (lr - lr_min) * 0.5 * (1.0 + math.cos(math.pi * p))


#: the smallest normal float32 and float64 (``np.finfo`` in a kernel costs compile time)
_TINY32 = float(np.finfo(np.float32).tiny)
_TINY64 = float(np.finfo(np.float64).tiny)


@jit()
def _tiny(w):
    """The smallest normal number of ``w``'s dtype.

    A moment or velocity that only decays (its gradient stays 0, as a dead
    relu unit's) becomes subnormal after some thousand updates, and arithmetic
    on subnormal numbers is many times slower on x86 processors; the steps set
    such values to 0 instead (a select: a NaN is kept).
    """
    return w.dtype.type(_TINY32 if w.itemsize == 4 else _TINY64)


@jit()
def decay_step(w, rate):
    """Decoupled weight decay ``w <- (1 - rate) * w``, ``rate = lr * weight_decay``.

    A pass of its own before the optimizer step (as PyTorch's ``AdamW``:
    ``mul_`` then the step), so the steps' loops are those without decay.
    """
    keep = w.dtype.type(1.0 - rate)
    for k in range(w.shape[0]):
        w[k] *= keep


@jit()
def sgd_step(w, grad, velocity, lr, momentum, nesterov, scale):
    """One SGD/momentum/Nesterov update on ``scale * grad`` (``scale``: clipping).

    Computed in the parameters' dtype, as scikit-learn's NumPy update (a Python
    float times a float32 array is float32): float32 vectors twice as wide.
    """
    f = w.dtype.type
    lr, momentum, scale = f(lr), f(momentum), f(scale)
    tiny, zero = _tiny(w), f(0.0)
    for k in range(w.shape[0]):
        g = grad[k] * scale
        v = momentum * velocity[k] - lr * g
        v = zero if abs(v) < tiny else v
        velocity[k] = v
        if nesterov:
            w[k] += momentum * v - lr * g
        else:
            w[k] += v


@jit()
def adam_step(w, grad, m, v, t, lr, beta_1, beta_2, epsilon, scale):
    """One Adam update on ``scale * grad``; ``t`` is the step number after it (1-based).

    The step size is computed in float64, the element-wise update in the
    parameters' dtype (as scikit-learn; float32 square roots and divisions run
    at twice the width of float64's).
    """
    f = w.dtype.type
    lr_t = f(lr * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t))
    b1, c1 = f(beta_1), f(1.0 - beta_1)
    b2, c2 = f(beta_2), f(1.0 - beta_2)
    eps, scale = f(epsilon), f(scale)
    tiny, zero = _tiny(w), f(0.0)
    for k in range(w.shape[0]):
        g = grad[k] * scale
        mk = b1 * m[k] + c1 * g
        vk = b2 * v[k] + c2 * g * g
        mk = zero if abs(mk) < tiny else mk
        vk = zero if vk < tiny else vk
        m[k] = mk
        v[k] = vk
        w[k] -= lr_t * mk / (math.sqrt(vk) + eps)


class OptimizerState:
    """Arrays and counters of a stochastic optimizer; owned by the estimator.

    Parameters
    ----------
    solver : {"sgd", "adam"}
    n_params : int
    dtype : numpy dtype
    learning_rate_init : float
    """

    def __init__(self, solver, n_params, dtype, learning_rate_init):
        self.code = SOLVER_CODES[solver]
        self.learning_rate = float(learning_rate_init)
        # SGD's velocity or Adam's first moment.
        self.m = np.zeros(n_params, dtype=dtype)
        # Adam's second moment (size 0 for SGD: unused branches get empty arrays).
        self.v = np.zeros(n_params if solver == "adam" else 0, dtype=dtype)
        # Adam's step count, an array so that compiled code can advance it.
        self.t = np.zeros(1, dtype=np.int64)
        # epochs trained with this state: where a per-update schedule goes on
        # from (partial_fit continues it; a new fit starts a new state)
        self.epochs = 0

    def to_state(self):
        """The state as builtins and arrays (pickled by the estimator; see ``Layout.to_state``)."""
        return {"code": self.code, "learning_rate": self.learning_rate, "m": self.m,
                "v": self.v, "t": self.t, "epochs": self.epochs}  # fmt: skip

    @classmethod
    def from_state(cls, state):
        """Rebuild from :meth:`to_state`; ``ValueError`` if it is not one."""
        try:
            code, lr = int(state["code"]), float(state["learning_rate"])
            m, v, t = (np.asarray(state[k]) for k in ("m", "v", "t"))
            # (a state saved before schedules counted epochs: none counted)
            epochs = state.get("epochs", 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("not a skbp optimizer state") from exc
        if code not in SOLVER_CODES.values() or m.ndim != 1 or v.ndim != 1 or t.shape != (1,):
            raise ValueError("not a skbp optimizer state")
        opt = cls.__new__(cls)
        opt.code, opt.learning_rate, opt.m, opt.v, opt.t = code, lr, m, v, t
        opt.epochs = epochs  # checked by the estimator (a count)
        return opt

    def astype(self, dtype):
        """Return the state with its arrays in ``dtype`` (warm start on new data)."""
        # np.require copies read-only arrays (e.g. after joblib.load(mmap_mode="r"))
        self.m = np.require(self.m, dtype=dtype, requirements=["C", "W"])
        self.v = np.require(self.v, dtype=dtype, requirements=["C", "W"])
        self.t = np.require(self.t, dtype=np.int64, requirements=["C", "W"])
        return self
