"""Threads: how many a fit or prediction uses, and staying fast on a busy machine.

Python only: nothing here reaches compiled code (the one kernel the thread
machinery needs, ``_probe``, lives in ``skbp._threads``), so editing this
module changes no kernel's stamp (``skbp._cache.kernel_modules``).

* ``n_jobs`` caps the threads of one call, with scikit-learn's values: ``-1``
  every thread Numba may use, ``-2`` all but one, ``k`` at most ``k``.  The
  default ``None`` means every thread Numba may use (inside a joblib worker:
  the worker's share of the cores; in a ``joblib.parallel_config(n_jobs=k)``
  context: ``k``).  It is an upper bound, not an order: see the governor.
* Concurrent calls share the cores.  Every fit or prediction that runs compiled
  code registers itself; ``k`` calls running at once in Python threads (a
  ``GridSearchCV`` on joblib's threading backend, fits in a thread pool) get
  ``cores // k`` threads each, so they never oversubscribe the machine.
* The :class:`ThreadGovernor` picks, step by step, between the serial path and
  the parallel one.  Training runs in steps of a few milliseconds (some
  mini-batches, one L-BFGS evaluation, some thousand rows of a prediction);
  since the weights are bit-identical for any thread count, each step may run
  on any number of threads at no cost to reproducibility.  The governor runs
  a step in parallel only while (a) the cores are free -- on Linux, what other
  processes used of this process's CPUs over the last ~0.1 s (``/proc/stat``),
  see :class:`LoadMonitor` -- and (b) parallel steps measured faster than serial
  ones, re-probing the other option now and then.  A parallel region whose
  worker thread has been descheduled by the operating system waits for it, so
  on a busy machine a naive parallel path is several times slower than the
  serial one (``python benchmarks/bench.py busy``); the governor falls back to the serial path
  within a step or two and comes back when the cores are free again.
* :func:`thread_context` sets Numba's thread count (a per-Python-thread
  setting) for one call and restores it afterwards; nothing is set at import.
* BLAS runs on one thread while any skbp call is running: skbp splits the large
  products itself (``skbp._matmul``), and OpenBLAS threads spinning next to
  Numba's make such a product many times slower.  It also makes results
  independent of BLAS's thread count.  The limit is process-wide (BLAS has no
  per-thread setting); it is reference-counted, so the first of several
  concurrent calls sets it, and the user's setting comes back
  ``BLAS_RESTORE_DELAY`` seconds after the last one ends (see
  :func:`_restore_loop` for why not at once).  A setting user code makes in
  that moment (a ``threadpool_limits`` context) is neither overwritten by the
  delayed restore nor taken for skbp's limit by the next call; such a context
  does take skbp's one thread for the count it restores on exit.

Threading layer: Numba picks TBB if installed, else GNU OpenMP, else its
``workqueue``; skbp leaves that choice to Numba and the user
(``NUMBA_THREADING_LAYER``) but runs its parallel kernels only on a thread-safe
layer (``tbb`` or ``omp``), because ``workqueue`` aborts the process when two
threads launch parallel kernels at once.  On ``workqueue`` skbp runs serially.
TBB (the ``tbb`` extra: ``pip install -e ".[tbb]"`` from a checkout) lets a
parallel region finish without a descheduled worker (work stealing), so it
loses least on a busy machine.
GNU OpenMP is not safe across ``fork()``: a child forked from a process whose
OpenMP threads have started (any fit starts them) is killed by Numba on its
first parallel region.  So such a child (``multiprocessing``'s default start
method on Linux before Python 3.14, a ``Pool``, ``ProcessPoolExecutor``) runs
skbp serially: :func:`parallel_available` is false there, and the kernels,
told so by ``tune[7]`` (``skbp._matmul.tune_array``), run the blocks of a
split product and of the update sweep one after the other -- the same bits as
on any number of threads.  For all the cores in such children use joblib's
default ``loky`` backend (fork + exec), the ``spawn``/``forkserver`` start
methods, or TBB, which is fork-safe.
"""

import os
import threading
import time
from contextlib import contextmanager

import numba
import numpy as np

_lock = threading.Lock()
#: skbp calls running now (they share the cores; BLAS is limited while any runs)
_active_calls = 0
_blas_limiter = None
_controller = None
_layer_ok = None


def compile_interrupted():
    """Whether a kernel compile of this thread was cut short (a Ctrl-C) since the
    last call; clears the record (``skbp._cache.compile_interrupted``).

    Always false on the plain Numba path (``skbp._numba_support``), whose cache,
    Numba's own, keeps no such record and is not imported.
    """
    from ._numba_support import PLAIN

    if PLAIN:
        return False
    from ._cache import compile_interrupted as interrupted

    return interrupted()


def max_threads():
    """Threads Numba may use in this process (``NUMBA_NUM_THREADS``)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def effective_n_threads(n_jobs):
    """Resolve ``n_jobs`` to a thread count between 1 and :func:`max_threads`."""
    limit = max_threads()
    if n_jobs is None:
        from joblib.parallel import get_active_backend

        outer = get_active_backend()[1]
        if outer is None:
            return limit
        n_jobs = outer
    n_jobs = int(n_jobs)
    if n_jobs < 0:
        n = (os.cpu_count() or 1) + 1 + n_jobs
        return max(1, min(limit, n))
    return max(1, min(limit, n_jobs))


def parallel_available():
    """Whether skbp may run parallel regions: Numba's threading layer is
    thread-safe (``tbb`` or ``omp``) and usable in this process (not GNU OpenMP
    inherited across a ``fork()``).

    Starting Numba's thread pool initialises the layer the first time.
    """
    global _layer_ok
    if _layer_ok is None:
        try:
            try:  # start the layer without compiling anything
                from numba.np.ufunc.parallel import _launch_threads

                _launch_threads()
            except ImportError:  # a Numba without that internal: launch a tiny kernel
                from ._threads import _probe

                _probe(np.zeros(2))
            _layer_ok = numba.threading_layer() in ("tbb", "omp")
        except Exception:  # no layer could be loaded at all
            _layer_ok = False
    return _layer_ok


def _started_layer():
    """The threading layer Numba has started in this process, ``None`` if none yet."""
    try:
        return numba.threading_layer()
    except ValueError:  # not initialised
        return None


def _after_fork_in_child():
    """Make a ``fork()`` child safe to fit and predict in.

    GNU OpenMP's thread pool does not survive a fork: Numba terminates a child
    that enters a parallel region after its parent started OpenMP threads.
    Such a child runs skbp serially (the same bits).  The locks and counts of
    this module start afresh: a thread of the parent may have held the lock
    at the fork, and the calls it counted do not run in the child.
    """
    global _lock, _blas_wakeup, _active_calls, _blas_restorer, _blas_idle_since, _layer_ok
    if _started_layer() == "omp":
        _layer_ok = False
    _lock = threading.Lock()
    _blas_wakeup = threading.Condition(_lock)
    _active_calls = 0
    _blas_restorer = None
    _blas_idle_since = None if _blas_limiter is None else time.monotonic()
    MONITOR._lock = threading.Lock()


def _blas_controller():
    global _controller
    if _controller is None:
        # Numba's np.dot calls SciPy's BLAS; load it so that threadpoolctl sees it.
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


#: the user's BLAS thread count comes back this long after the last skbp call (seconds)
BLAS_RESTORE_DELAY = 0.25
_blas_idle_since = None
_blas_wakeup = threading.Condition(_lock)
_blas_restorer = None
_blas_libs = None  # the BLAS libraries of _blas_controller() (selected once)


def _as_blas_controller(set_counts):
    """Call ``set_counts()`` (which sets BLAS thread counts) with the right to do so.

    threadpoolctl >= 3.8 lets only one Python thread set OpenBLAS's
    process-wide thread count -- the first to set it, until a
    ``threadpool_limits`` context of that thread ends -- and silently ignores
    the others.  skbp limits BLAS from whichever thread starts a call and
    restores it from its restorer thread, so it takes that right for the
    moment of the change and hands it back (without this, the restore never
    happens and numpy's BLAS stays on one thread after the first fit).  Older
    threadpoolctl versions have no such right.
    """
    import threadpoolctl

    openblas = getattr(threadpoolctl, "OpenBLASController", None)  # (a 3.x class)
    clear = getattr(openblas, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)
    try:
        return set_counts()
    finally:
        if clear is not None:
            clear(force=True)


def _blas_still_limited():
    """Whether every BLAS library still runs on the one thread skbp set.

    Not so when user code changed it while skbp held the limit (say a
    ``threadpool_limits`` context entered in the moment before a delayed
    restore): then skbp's next call must limit again, and the restore must
    leave the user's setting alone.
    """
    global _blas_libs
    if _blas_libs is None:
        _blas_libs = _blas_controller().select(user_api="blas").lib_controllers
    return all(lib.get_num_threads() == 1 for lib in _blas_libs)


def _enter_call():
    """Count a call in, and hold BLAS to one thread (if not held already)."""
    global _active_calls, _blas_limiter, _blas_idle_since
    with _lock:
        if _blas_limiter is None or not _blas_still_limited():
            # (a limit another setting has replaced is dropped unrestored: what
            # it would restore is no longer what the user has now)
            controller = _blas_controller()
            _blas_limiter = _as_blas_controller(lambda: controller.limit(limits=1, user_api="blas"))
        _active_calls += 1
        _blas_idle_since = None


def _exit_call():
    """Count a call out; the last one out starts the clock of the BLAS restore."""
    global _active_calls, _blas_idle_since, _blas_restorer
    with _lock:
        _active_calls -= 1
        if _active_calls == 0:
            _blas_idle_since = time.monotonic()
            if _blas_restorer is None or not _blas_restorer.is_alive():
                _blas_restorer = threading.Thread(
                    target=_restore_loop, name="skbp-blas-restore", daemon=True
                )
                _blas_restorer.start()
            _blas_wakeup.notify_all()


def _restore_loop():
    """Give BLAS back its thread count once no skbp call has run for a moment.

    Restoring at the end of every call would be simplest, but lifting the limit
    brings back OpenBLAS's worker threads, which spin for a while waiting for
    work: fits in Python threads then fight one spinning thread per call and
    run slower than one after the other, and so does a threaded search that
    follows a sequential one (``python benchmarks/bench.py threads``).  So the
    limit stays while calls follow each other (a grid search) and goes
    ``BLAS_RESTORE_DELAY`` seconds after the last one.
    """
    with _lock:
        while True:
            left = None  # nothing to restore: sleep until a call ends
            if _active_calls == 0 and _blas_limiter is not None:
                left = _blas_idle_since + BLAS_RESTORE_DELAY - time.monotonic()
                if left <= 0:
                    _restore_blas_locked()
                    left = None
            _blas_wakeup.wait(left)


def _restore_blas_locked():
    global _blas_limiter
    if _active_calls == 0 and _blas_limiter is not None:
        if _blas_still_limited():  # else user code has set its own count since: keep it
            _as_blas_controller(_blas_limiter.restore_original_limits)
        _blas_limiter = None


def restore_blas_now():
    """Restore BLAS's thread count now if no skbp call is running (tests, benchmarks)."""
    with _lock:
        _restore_blas_locked()


# ------------------------------------------------------------------ load monitor

#: others' CPU use is averaged over at least this long a window (seconds) ...
LOAD_WINDOW = 0.1
#: ... and a reading older than this says nothing about now
LOAD_STALE = 1.0


class LoadMonitor:
    """How many of this process's CPUs other processes are keeping busy (Linux).

    Reads the busy and total time of the CPUs in this process's affinity mask
    from ``/proc/stat`` and this process's own CPU time from
    ``/proc/self/stat``; what the CPUs were busy with beyond this process is
    other processes' load.  Samples are taken at most every ``LOAD_WINDOW / 4``
    seconds and averaged over a window of at least ``LOAD_WINDOW``; the clock
    behind them ticks every 10 ms, so the window is what makes the estimate
    meaningful.  One monitor serves the whole process (thread-safe).
    Until the first window has passed (the first 0.1 s of a call after a second
    without one), the monitor answers with a snapshot instead: the tasks
    runnable right now (``/proc/loadavg``) less this process's own
    (``/proc/self/task``), taken only where this process may run on every CPU,
    since the count is machine-wide.  A process that keeps a core busy is
    always runnable, so the snapshot sees it; one that comes and goes may be
    missed, and the governor's timing catches that instead.  Without the
    snapshot a call would stay serial for its first window
    (``python benchmarks/bench.py threads``).  Elsewhere (no
    ``/proc``) :meth:`free_cores` returns ``None`` and the governor relies on
    timing alone.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._samples = []  # (time, others' busy ticks, total ticks)
        self._free = None
        self._ok = os.path.exists("/proc/stat") and os.path.exists("/proc/self/stat")
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = list(range(os.cpu_count() or 1))
        self._cpus = {f"cpu{c}".encode() for c in cpus}
        self.n_cpus = len(cpus)
        # the runnable count of /proc/loadavg is machine-wide: only meaningful
        # for a process that may run on every CPU
        self._snapshot_ok = (
            self._ok and os.path.exists("/proc/loadavg") and self.n_cpus == os.cpu_count()
        )

    @property
    def available(self):
        """Whether this platform lets the monitor read the load (Linux)."""
        return self._ok

    def _read(self):
        busy = total = 0
        with open("/proc/stat", "rb") as f:
            for line in f:
                if not line.startswith(b"cpu"):
                    break
                parts = line.split()
                if parts[0] not in self._cpus:
                    continue
                v = [int(x) for x in parts[1:9]]
                # user nice system idle iowait irq softirq steal
                total += sum(v)
                busy += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        own = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return busy - own, total

    @staticmethod
    def _runnable():
        """Tasks runnable now: on the whole machine, and of this process."""
        with open("/proc/loadavg", "rb") as f:
            runnable = int(f.read().split()[3].split(b"/")[0])
        own = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat", "rb") as f:
                    own += f.read().rsplit(b")", 1)[1].split()[0] == b"R"
            except OSError:  # the thread ended meanwhile
                pass
        return runnable, own

    def _snapshot(self):
        """Cores not taken by other processes' runnable tasks right now, or ``None``."""
        try:
            runnable, own = self._runnable()
        except (OSError, ValueError, IndexError):
            self._snapshot_ok = False
            return None
        # the thread reading is runnable: never count fewer than one task of ours
        return float(max(0, self.n_cpus - max(0, runnable - max(1, own))))

    def free_cores(self, now=None):
        """Cores of this process's CPUs not used by other processes, or ``None``.

        Over the last ``LOAD_WINDOW`` seconds or more; before such a window
        has passed, a snapshot of the tasks runnable now (see the class).
        ``None`` when unknown: no ``/proc``, or no window yet and no snapshot.
        """
        if not self._ok:
            return None
        now = time.monotonic() if now is None else now
        with self._lock:
            s = self._samples
            if s and now - s[-1][0] < LOAD_WINDOW / 4:
                return self._free
            try:
                others, total = self._read()
            except (OSError, ValueError, IndexError):
                self._ok = False
                return None
            if s and now - s[-1][0] > LOAD_STALE:
                s.clear()
            s.append((now, others, total))
            while len(s) > 2 and now - s[1][0] >= LOAD_WINDOW:
                s.pop(0)
            t0, others0, total0 = s[0]
            if now - t0 < LOAD_WINDOW or total <= total0:
                self._free = self._snapshot() if self._snapshot_ok else None
            else:
                used = self.n_cpus * max(0, others - others0) / (total - total0)
                self._free = max(0.0, self.n_cpus - used)
            return self._free


MONITOR = LoadMonitor()


# ---------------------------------------------------------- sharing the cores


def _share(n_max):
    """Threads one of the skbp calls running now may use: ``n_max // calls``."""
    return max(1, n_max // max(1, _active_calls))


# ------------------------------------------------------------------- governor

#: parallel steps must be at least this much faster than serial ones to be used
PARALLEL_GAIN = 0.9
#: steps between two probes of the option not in use: from ... to ...
PROBE_MIN, PROBE_MAX = 4, 64
#: a thread count's cost is the lower median of its last this many steps
COST_WINDOW = 3
#: whether the governor adapts at all (``SKBP_ADAPTIVE_THREADS=0``: always the cap)
ADAPTIVE = os.environ.get("SKBP_ADAPTIVE_THREADS", "1") != "0"


class ThreadGovernor:
    """Chooses the threads of each step of one call: serial, or up to ``n_max``.

    Call :meth:`threads` before a step (it also sets Numba's thread count) and
    :meth:`record` after it with the step's wall time and size (rows,
    evaluations: any unit proportional to its work).  The rule:

    1. the cap is ``n_max`` (from ``n_jobs``), shared among the skbp calls
       running at once in this process, and lowered to the cores that other
       processes leave free (:class:`LoadMonitor`, a snapshot of the runnable
       tasks until its first window has passed; serial while it has no
       reading at all); a cap of 1 is serial;
    2. the first step runs serially, the next in parallel, and from then on the
       faster of the two (by time per unit, parallel only when at least
       ``1 - PARALLEL_GAIN`` faster), each the lower median of its last
       ``COST_WINDOW`` steps: one slow step (a hiccup of the machine) moves
       nothing, two in a row do;
    3. every ``PROBE_MIN`` to ``PROBE_MAX`` steps one step tries the other
       option (its figures are replaced, not added to, since they may be
       stale), so a change of load is noticed; the interval doubles each time
       the probe confirms the choice and restarts when it does not, or when
       the steps themselves change the choice.  A probe is usually the slower
       option, so :class:`~skbp._steps.GovernedSteps` makes it a shorter step
       (:attr:`probing`).

    Every step gives the same numbers on any number of threads, so none of
    this changes a fitted model.  With ``ADAPTIVE`` off the cap is used as is.
    """

    def __init__(self, n_max):
        self.n_max = int(n_max)
        self.cost = {}  # threads -> seconds per unit (lower median of `recent`)
        self.recent = {}  # threads -> seconds per unit of its last COST_WINDOW steps
        self.interval = PROBE_MIN
        self.wait = PROBE_MIN
        self._probe = False
        self._probe_from = 1  # the choice a probe is measured against

    def cap(self):
        """Threads allowed now (before timing is taken into account)."""
        n = _share(self.n_max)
        if n > 1 and MONITOR.available:
            free = MONITOR.free_cores()
            # no reading at all (no window yet and no snapshot): stay serial until one
            # says the cores are free, rather than risk a parallel step on a busy machine
            n = 1 if free is None else min(n, max(1, int(free + 0.25)))
        return n

    def _choose(self):
        if self.n_max <= 1:
            return 1
        if not ADAPTIVE:
            return self.n_max
        n = self.cap()
        if n <= 1:
            return 1
        if 1 not in self.cost:
            return 1
        if n not in self.cost:
            return n
        best = self._best(n)
        self.wait -= 1
        if self.wait <= 0:
            self._probe = True
            self._probe_from = best
            return 1 if best == n else n
        return best

    @property
    def probing(self):
        """Whether the step :meth:`threads` just chose is a probe of the other option."""
        return self._probe

    def _best(self, n):
        """``n`` if parallel steps on ``n`` threads measured enough faster, else 1."""
        return n if self.cost[n] < PARALLEL_GAIN * self.cost.get(1, np.inf) else 1

    def threads(self):
        """Threads for the next step; sets Numba's thread count to it."""
        n = self._choose()
        _set_numba_threads(n)
        return n

    def record(self, n, seconds, units=1):
        """The step just run on ``n`` threads took ``seconds`` for ``units`` of work."""
        if units <= 0:
            return
        c = seconds / units
        before = self._best(max(self.cost)) if len(self.cost) > 1 else None
        recent = self.recent.setdefault(n, [])
        if self._probe:
            recent.clear()  # a probe replaces what may be long-stale figures
        recent.append(c)
        del recent[:-COST_WINDOW]
        self.cost[n] = sorted(recent)[(len(recent) - 1) // 2]
        if len(self.cost) < 2:
            return
        after = self._best(max(self.cost))
        if self._probe:
            self._probe = False
            if after == self._probe_from:
                self.interval = min(PROBE_MAX, 2 * self.interval)
            else:
                self.interval = PROBE_MIN
            self.wait = self.interval
        elif before is not None and after != before:
            # the steps themselves changed the choice: look at the other one again soon
            self.interval = self.wait = PROBE_MIN


_tls = threading.local()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _set_numba_threads(n, force=False):
    """Set Numba's thread count (per Python thread) when it changes.

    ``numba.set_num_threads`` is not free next to a step of a small fit.  What
    was set last is remembered per Python thread; :func:`thread_context` sets
    it unconditionally on entry and exit (user code may change it in between),
    and inside a call only skbp changes it.
    """
    if force or getattr(_tls, "n", None) != n:
        numba.set_num_threads(n)
        _tls.n = n


@contextmanager
def thread_context(n_jobs):
    """Run skbp's compiled code inside on up to ``n_jobs`` threads (BLAS on one).

    Yields the call's :class:`ThreadGovernor`; the call is counted among the
    concurrent skbp calls that share the cores until it leaves.
    """
    n = effective_n_threads(n_jobs) if parallel_available() else 1
    previous = numba.get_num_threads()
    _enter_call()
    try:
        _set_numba_threads(1, force=True)
        yield ThreadGovernor(n)
    finally:
        _exit_call()
        _set_numba_threads(previous, force=True)
