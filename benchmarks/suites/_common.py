"""What every benchmark suite shares: the header, timing, busy processes, tables, output.

A suite prints its results with ``print``; the dispatcher (``bench.py``) copies
everything printed to the suite's raw output file (:func:`tee`).  Progress
messages go to stderr (:func:`log`) and are not part of the output.
"""

import contextlib
import datetime
import io
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time

import numba
import numpy as np

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT_DIR = os.path.join(BENCH_DIR, "output")

# ------------------------------------------------------------------------- machine


def usable_cpus():
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib():
    """Physical memory in GiB, or None where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def loadavg():
    try:
        return os.getloadavg()
    except OSError:
        return (float("nan"),) * 3


def versions(torch=False):
    """Versions of the libraries the suites compare, as ``{name: version}``.

    ``torch``: include PyTorch (``"not installed"`` where it is absent).
    """
    import scipy
    import sklearn

    import skbp

    v = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "numba": numba.__version__,
        "skbp": skbp.__version__,
    }
    if torch:
        try:
            import torch as _torch

            v["torch"] = _torch.__version__
        except ImportError:
            v["torch"] = "not installed"
    return v


def threading_layer():
    """Numba's threading layer, started the way skbp starts it."""
    from skbp._runtime import parallel_available

    parallel_available()
    try:
        return numba.threading_layer()
    except ValueError:  # no layer could be started
        return "none"


def blas_info():
    from threadpoolctl import threadpool_info

    return sorted(
        {
            f"{d['internal_api']} {d.get('version', '?')} ({d.get('architecture', '?')})"
            for d in threadpool_info()
            if d["user_api"] == "blas"
        }
    )


@numba.njit(nogil=True, fastmath=True)
def _fma(x, n):
    for _ in range(n):
        for j in range(x.shape[0]):
            x[j] = x[j] * np.float32(0.9999999) + np.float32(1e-7)


def two_thread_speedup(seconds=0.5, repeats=3):
    """Whether two CPUs are separate cores right now: the same register-bound work
    twice on one thread / once on each of two threads at the same time (best of
    ``repeats``).  About 2 on separate cores; much less on one core's two
    hardware threads (a VM's two vCPUs may be either, hour by hour)."""
    xs = [np.ones(256, np.float32) for _ in range(2)]
    _fma(xs[0], 10)
    n = 1000
    t0 = time.perf_counter()
    _fma(xs[0], n)
    n = max(1000, int(n * seconds / 2 / max(time.perf_counter() - t0, 1e-6)))
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        _fma(xs[0], n)
        _fma(xs[1], n)
        serial = time.perf_counter() - t0
        threads = [threading.Thread(target=_fma, args=(x, n)) for x in xs]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        best = max(best, serial / (time.perf_counter() - t0))
    return best


def cores_line(quick=False):
    """One line: the two-thread check of :func:`two_thread_speedup`."""
    s = two_thread_speedup(0.1 if quick else 0.5)
    return (
        f"two threads of independent vector work: {s:.2f}x one thread (about 2x: separate "
        "cores; much less: one core's two hardware threads)"
    )


def header(args, title, torch=False):
    """Print the header of a suite's output: command, date, machine, versions, load.

    ``torch``: name PyTorch's version too (the suites that time it).
    """
    mem = memory_gib()
    cores = f"{usable_cpus()} usable cores of {os.cpu_count()}"
    print(f"# {title}" + (" (--quick)" if args.quick else ""))
    print()
    print(f"* command: `{command_line()}`")
    print(f"* date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(
        f"* machine: {cpu_model()}, {cores}"
        + (f", {mem:.0f} GiB memory" if mem else "")
        + f"; {platform.system()} {platform.machine()}"
    )
    print("* versions: " + ", ".join(f"{k} {v}" for k, v in versions(torch).items()))
    print(f"* threading layer: {threading_layer()}; BLAS: {'; '.join(blas_info()) or '-'}")
    print(f"* {cores_line(args.quick)}")
    print(f"* load average at start: {' '.join(f'{x:.2f}' for x in loadavg())}")
    print()


def command_line():
    """The command that started this process, as the user would type it."""
    argv = list(sys.argv)
    with contextlib.suppress(ValueError):
        argv[0] = os.path.relpath(argv[0])
    return "python " + " ".join(shlex.quote(a) for a in argv)


# -------------------------------------------------------------------------- timing


def timed(fn, *a, **kw):
    """``(seconds, result)`` of one call of ``fn``."""
    t0 = time.perf_counter()
    result = fn(*a, **kw)
    return time.perf_counter() - t0, result


def median(xs):
    return statistics.median(xs)


def _system_busy_s():
    """CPU seconds all processes have been busy since boot (Linux), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class LoadMeter:
    """CPU cores used by *other* processes while the block ran (Linux; else NaN).

    On a shared machine this tells a slow measurement caused by someone else's
    work from a slow implementation.  /proc/stat counts in clock ticks (10 ms),
    so a block shorter than ``min_window`` seconds is followed by an idle wait
    that makes the observation window ``min_window`` long.
    """

    def __init__(self, min_window=0.5):
        self.min_window = min_window

    def __enter__(self):
        self._t, self._busy, self._own = time.perf_counter(), _system_busy_s(), _own_cpu_s()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._t
        if wall < self.min_window:
            time.sleep(self.min_window - wall)
            wall = time.perf_counter() - self._t
        busy = _system_busy_s()
        if busy is None or self._busy is None:
            self.others = float("nan")
        else:
            own = _own_cpu_s() - self._own
            self.others = max(0.0, (busy - self._busy - own) / wall)
        return False


GEMM_N = 2048  # the size of the square products that measure the GEMM peak


def gemm_peak(dtype, n=GEMM_N, repeats=7, max_others=0.1, max_rounds=5, threads=None):
    """Best GFLOP/s of ``n x n @ n x n`` with numpy at the current BLAS thread limit.

    Rounds of ``repeats`` products are repeated (up to ``max_rounds``) until one
    runs while other processes use at most ``max_others`` cores beyond the
    cores left free by ``threads`` BLAS threads (default: all usable cores).
    """
    free = max(0, usable_cpus() - (threads or usable_cpus()))
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, n)).astype(dtype)
    B = rng.standard_normal((n, n)).astype(dtype)
    C = np.empty((n, n), dtype=dtype)
    np.matmul(A, B, out=C)
    best = np.inf
    for _ in range(max_rounds):
        with LoadMeter() as meter:
            for _ in range(repeats):
                t0 = time.perf_counter()
                np.matmul(A, B, out=C)
                best = min(best, time.perf_counter() - t0)
        if not meter.others > free + max_others:
            break
    return 2.0 * n**3 / best / 1e9


# --------------------------------------------------------------- busy processes

BUSY_CODE = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


@contextlib.contextmanager
def busy_processes(n, max_seconds=600.0):
    """``n`` processes that keep one core busy each while the block runs.

    Each is a plain ``python -c`` loop started with ``subprocess.Popen`` (no
    wrapper whose child could outlive it), bounded by ``max_seconds`` of its
    own, and ended by its pid when the block exits, also on an exception or
    an interrupt.  Yields the ``Popen`` objects (``poll()`` tells whether one
    ended early).
    """
    procs = []
    try:
        for _ in range(n):
            code = BUSY_CODE.format(s=max_seconds)
            procs.append(subprocess.Popen([sys.executable, "-c", code]))
        if procs:
            time.sleep(0.3)  # let the loops reach the CPU
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()


# -------------------------------------------------------------------------- tables


def md_table(header, rows, align=None):
    """A Markdown table; ``align``: one of ``"l"``/``"r"`` per column (default:
    the first left, the others right)."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def ratio(peer, skbp, digits=2):
    """``peer / skbp`` as text (> 1: skbp faster), ``-`` where either is missing."""
    if peer is None or skbp is None or not skbp > 0:
        return "-"
    return f"{peer / skbp:.{digits}f}"


def plural(n):
    return "s" if n != 1 else ""


def log(msg):
    """A progress message on stderr: not part of the raw output."""
    print(msg, file=sys.stderr, flush=True)


# -------------------------------------------------------------------------- output


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


def output_path(name, args, ext="txt"):
    """Where suite ``name`` writes its raw output: ``--out``, else
    ``benchmarks/output/<name>[_<suffix>].txt`` (``--quick`` adds ``quick``, so a
    smoke run never replaces a real output).

    ``ext``: the default file of another output of the suite, named by the same
    rule (``"json"``: ``benchmarks/output/<name>[_<suffix>][_quick].json``);
    ``--out`` names the text output only.
    """
    if ext == "txt" and getattr(args, "out", None):
        return args.out
    parts = [name.replace("-", "_")]
    if getattr(args, "out_suffix", None):
        parts.append(args.out_suffix)
    if args.quick:
        parts.append("quick")
    return os.path.join(OUTPUT_DIR, "_".join(parts) + "." + ext)


@contextlib.contextmanager
def tee(path):
    """Everything printed inside the block goes to stdout and to the file ``path``
    (written when the block ends, also after an error, so a long run keeps what
    it printed)."""
    buf = io.StringIO()
    old = sys.stdout
    sys.stdout = _Tee(old, buf)
    try:
        yield
    finally:
        sys.stdout = old
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write(buf.getvalue())
        log(f"raw output written to {os.path.relpath(path)}")
