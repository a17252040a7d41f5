"""Whether this machine's CPUs are separate cores right now: two threads against one.

Runs the same register-bound vector work (multiply-adds on 256 float32 held in
the first-level cache) once on one thread and once on each of two threads at
the same time, and prints the speed-up.  Separate physical cores give about
2x.  Two hardware threads of one core share its vector units and give much
less; on the 2-core development machine (a VM) this read 1.92-1.98x in some
hours and 1.58-1.76x in others.  Two-thread fits slowed in those hours (W2 on
two threads: 0.90-0.94 s against 0.63-0.66 s), while one-thread figures did
not.  It is one cause of the VM's slow phases, not the only one: W2's
two-thread fits also ran at 0.93 s while this read 1.97x.  The other
benchmarks print this figure in their headers, so that a two-thread result can
be read against the machine it ran on.

It also times how long one thread takes to read data the other has just
written, against reading what it wrote itself (``cross_core_line``): the cost a
split product pays when its blocks' operands change cores: 2 us for 64 KiB
(29 GB/s) and 22 us for 1 MiB (45 GB/s) on the 2-core VM (``split.py``).

    python benchmarks/cores.py
"""

import threading
import time

import numba
import numpy as np


@numba.njit(nogil=True, fastmath=True)
def _fma(x, n):
    for _ in range(n):
        for j in range(x.shape[0]):
            x[j] = x[j] * np.float32(0.9999999) + np.float32(1e-7)


def two_thread_speedup(seconds=0.5, repeats=3):
    """Best of ``repeats``: the time of the work twice on one thread / on two at once."""
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


@numba.njit(parallel=True, nogil=True)
def _hand_over(buf, writer, reader, reps):
    # in turn: thread `writer` rewrites buf, then thread `reader` reads it all
    s = np.zeros(2)
    for _ in range(reps):
        for i in numba.prange(2):
            if i == writer:
                for k in range(buf.shape[0]):
                    buf[k] += 1.0
        for i in numba.prange(2):
            if i == reader:
                acc = 0.0
                for k in range(buf.shape[0]):
                    acc += buf[k]
                s[i] += acc
    return s


def cross_core_seconds(kib=64, reps=2000):
    """Extra seconds for one thread to read ``kib`` KiB the other has just written.

    Against the same rewrite and read by one thread.  Needs two of Numba's threads.
    """
    buf = np.zeros(kib * 128)
    previous = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        _hand_over(buf, 0, 1, 2)
        best = {}
        for writer in (0, 1):  # thread 1 reads what thread 0 wrote, or what it wrote itself
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                _hand_over(buf, writer, 1, reps)
                times.append((time.perf_counter() - t0) / reps)
            best[writer] = min(times)
    finally:
        numba.set_num_threads(previous)
    return best[0] - best[1]


def cross_core_line():
    """One line: how fast data moves from one thread's core to the other's."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        return "data between two threads: not measured (one thread)"
    parts = []
    for kib in (64, 1024):
        extra = cross_core_seconds(kib, reps=max(50, 128_000 // kib))
        rate = kib / 1024**2 / max(extra, 1e-9)
        parts.append(f"{kib} KiB {extra * 1e6:.1f} us ({rate:.1f} GB/s)")
    return "data written by one thread, read by the other, extra time: " + ", ".join(parts)


def header():
    """One line for a benchmark's header."""
    return (
        f"two threads of independent vector work: {two_thread_speedup():.2f}x one thread (about "
        "2x: separate cores; much less: one core's two hardware threads; benchmarks/cores.py)"
    )


if __name__ == "__main__":
    print(header())
    print(cross_core_line())
