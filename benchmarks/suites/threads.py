"""Thread settings on a quiet machine: scaling beside the peers, governor, split, threads.

Five sections, on the machine as it is (run it quiet; the ``busy`` suite adds
load on purpose):

1. **Cores**: whether two CPUs are separate cores right now (two threads of
   register-bound vector work against one, before and after the run) and how
   long one thread takes to read data the other has just written (the cost a
   split product pays when its blocks' operands change cores).
2. **W2 and W3 by thread count, next to the peers**: the ``workloads`` suite's
   W2 and W3 at 1 and N threads (N: every usable core) for skbp, scikit-learn
   and PyTorch, rounds alternating so that a drift of the machine's speed hits
   every setting alike; for W2 also skbp's thread governor without the load
   monitor's snapshot (each fit's first 0.1 s serial while the monitor waits
   for its first window) and switched off (``skbp._runtime.ADAPTIVE``, every
   step on N threads): the governor's cost is "off" against the default.  A
   pause of 1.2 s before each skbp fit lets the monitor's last reading go
   stale, as between the fits of a user's session.
3. **Where W2's update time goes**: W2 fitted with the governor off on 1, 2,
   4, 8 and N threads, for each block width ``skbp._matmul.PAR_BLOCK_COLS``
   (the narrowest block a split product is cut into; 32 is skbp's), against
   the eight matrix products of one W2 update timed alone in a compiled loop;
   the rest (row gather, activations, loss, Adam's sweeps, fork/joins) is the
   difference; the weights must be bit-identical to the one-thread fit of the
   same width.  Then W2 with the optimizer and the row order changed (Adam;
   SGD without momentum; SGD with momentum; Adam unshuffled) on 1 and N
   threads, which separates the Adam sweep and the random row gather.
4. **Where splitting a product pays**: one-hidden-layer networks (F inputs, H
   units, 10 classes) at batch 64, 128 and 256, first-layer products from 1 M
   to 64 M multiply-adds, every product from ``--min-work`` up split over N
   threads (governor off) against one thread; then the two fits behind skbp's
   split threshold (``skbp._matmul.PAR_MIN_WORK``): digits with the default
   network, and a 20,000 x 50 L-BFGS fit.
5. **skbp inside Python threads**: a ``GridSearchCV`` on digits (12 fits),
   8 fits of digits' fold size in plain Python threads, and the ``search``
   suite's 30-fit pipeline search, each sequential against N threads
   (joblib's threading backend); the threaded runs must give the same CV
   scores and weights as the sequential ones (checked).

That a fit's weights do not depend on the thread count is a test
(``tests/test_parallel.py::test_same_weights_for_any_n_jobs``), not a benchmark.
"""

import hashlib
import statistics
import threading
import time
import warnings

import joblib
import numba
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import skbp._matmul as mm
import skbp._runtime as th
from skbp import BPClassifier

from . import workloads
from ._common import (
    LoadMeter,
    cores_line,
    gemm_peak,
    log,
    md_table,
    median,
    plural,
    ratio,
    usable_cpus,
)
from ._common import header as print_header
from ._search_child import pipeline_search, search_data

SECTIONS = ("sweep", "scaling", "split", "pythreads")


def add_arguments(p):
    p.add_argument(
        "--sections", default=",".join(SECTIONS),
        help=f"sections 2-5 to run, of {','.join(SECTIONS)} (all); section 1 always runs",
    )  # fmt: skip
    p.add_argument("--rounds", type=int, default=5, help="rounds of the W2/W3 sweep (5)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument(
        "--counts", default=None,
        help="thread counts of section 3 (1,2,4,8 and N, those up to N)",
    )  # fmt: skip
    p.add_argument("--widths", default="16,32,64", help="block widths of section 3 (16,32,64)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per fit in section 3 (2)")
    p.add_argument("--reps", type=int, default=200, help="product loops per timing (200)")
    p.add_argument(
        "--min-work", type=int, default=1 << 20,
        help="section 4 splits products from this many multiply-adds (2^20)",
    )  # fmt: skip
    p.add_argument("--dtypes", default="float32,float64", help="dtypes of section 4")
    p.add_argument("--repeats", type=int, default=4, help="fits per setting in section 4 (4)")
    p.add_argument("--py-repeats", type=int, default=10, help="runs of each case, section 5 (10)")


def run(args):
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--sections: unknown {sorted(unknown)}; choose from {SECTIONS}")
    if args.quick:
        args.rounds, args.widths, args.epochs, args.reps = 1, "32", 1, 10
        args.dtypes, args.repeats, args.py_repeats = "float32", 1, 1
    warnings.simplefilter("ignore", ConvergenceWarning)
    n = max(th.max_threads(), 1)
    print_header(args, "skbp benchmark: threads", torch=not args.no_torch)
    print(f"N = {n}: the threads Numba may use here ({usable_cpus()} usable cores).")
    print()
    print("## 1. Cores")
    print()
    print(f"* {cross_core_line(args.quick)}")
    print()
    w2 = workloads.scaled("W2", args.quick)
    X2, y2 = workloads.make_data(w2, np.float32)
    BPClassifier((8,), max_iter=1).fit(X2[:300], y2[:300]).predict(X2[:300])  # load kernels
    adaptive, snapshot = th.ADAPTIVE, th.MONITOR._snapshot_ok
    min_work, block_cols = mm.PAR_MIN_WORK, mm.PAR_BLOCK_COLS
    try:
        for section in sections:
            if section == "sweep":
                sweep(args, n)
            elif section == "scaling":
                scaling(args, n, w2, X2, y2)
            elif section == "split":
                split(args, n)
            else:
                python_threads(args, n)
            # every section starts from skbp's own settings
            th.ADAPTIVE, th.MONITOR._snapshot_ok = adaptive, snapshot
            mm.PAR_MIN_WORK, mm.PAR_BLOCK_COLS = min_work, block_cols
            mm._TUNE_CACHE.clear()
    finally:
        th.ADAPTIVE, th.MONITOR._snapshot_ok = adaptive, snapshot
        mm.PAR_MIN_WORK, mm.PAR_BLOCK_COLS = min_work, block_cols
        mm._TUNE_CACHE.clear()
    print(f"After the run: {cores_line(args.quick)}.")


# ------------------------------------------------------------------ 1. cores


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
    """Extra seconds for one thread to read ``kib`` KiB the other has just written,
    against the same rewrite and read by one thread.  Needs two of Numba's threads."""
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


def cross_core_line(quick=False):
    """One line: how fast data moves from one thread's core to the other's."""
    if th.max_threads() < 2:
        return "data between two threads: not measured (one thread)"
    parts = []
    for kib in (64, 1024):
        extra = cross_core_seconds(kib, reps=max(20 if quick else 50, 128_000 // kib))
        rate = kib / 1024**2 / max(extra, 1e-9)
        parts.append(f"{kib} KiB {extra * 1e6:.1f} us ({rate:.1f} GB/s)")
    return "data written by one thread, read by the other, extra time: " + ", ".join(parts)


# ------------------------------------------------------------------ 2. sweep

# (label, implementation, governor) of the W2 sweep; W3 has the first three only
GOVERNOR = {"skbp": "on", "skbp, no snapshot": "no-snapshot", "skbp, governor off": "off"}


def _fit_setting(impl, gov, w, X, y, threads, snapshot):
    """Seconds and others' CPU of one fit of ``impl`` under governor setting ``gov``
    (``snapshot``: whether the load monitor may take snapshots here at all)."""
    if impl == "skbp":  # run() restores both settings
        th.MONITOR._snapshot_ok = snapshot and gov != "no-snapshot"
        th.ADAPTIVE = gov != "off"
        time.sleep(1.2)  # the load monitor's last reading goes stale (1 s)
    with workloads.limit_threads(threads), LoadMeter() as meter:
        _, elapsed, _, _ = workloads.fit_impl(impl, w, X, y, np.float32, threads)
    return elapsed, meter.others


def sweep(args, n):
    impls = workloads.peers(args.no_torch)
    counts = sorted({1, n})
    snapshot = th.MONITOR._snapshot_ok
    times, others = {}, {}  # (workload, label, threads) -> list over rounds
    plan = {}
    for name in ("W2", "W3"):
        w = workloads.scaled(name, args.quick)
        X, y = workloads.make_data(w, np.float32)
        labels = [("skbp", "skbp", "on")] + [(i, i, None) for i in impls if i != "skbp"]
        if name == "W2":
            labels[1:1] = [(lab, "skbp", gov) for lab, gov in GOVERNOR.items() if lab != "skbp"]
        plan[name] = labels
        for r in range(args.rounds):
            for label, impl, gov in labels:
                for t in counts if gov in ("on", None) else [n]:
                    s, o = _fit_setting(impl, gov, w, X, y, t, snapshot)
                    times.setdefault((name, label, t), []).append(s)
                    others.setdefault((name, label, t), []).append(o)
                    log(f"  {name} {label:<20} {t:>2} thr round {r + 1}: {s:.3f} s")

    def med(key):
        limit = max(0, usable_cpus() - key[2]) + 0.1
        quiet = [s for s, o in zip(times[key], others[key], strict=True) if o <= limit]
        return median(quiet or times[key]), not quiet

    print(f"## 2. W2 and W3 by thread count, next to the peers (float32, median of {args.rounds})")
    print()
    rows = []
    for name, labels in plan.items():
        base = med((name, "skbp", n))[0]
        for label, _, _ in labels:
            t1 = med((name, label, 1))[0] if (name, label, 1) in times else None
            tn, disturbed = med((name, label, n))
            oth = " / ".join(f"{median(others[(name, label, t)]):.1f}" for t in counts
                             if (name, label, t) in others)  # fmt: skip
            rows.append([
                name, label, "-" if t1 is None else f"{t1:.3f}", f"{tn:.3f}",
                "-" if t1 is None else f"{t1 / tn:.2f}x",
                "-" if label.startswith("skbp") else ratio(tn, base),
                oth + (" !" if disturbed else ""),
            ])  # fmt: skip
    head = [
        "workload", "impl", "1 thread s", f"{n} threads s", f"speed-up 1 -> {n}",
        f"peer/skbp at {n}", "others' CPU",
    ]  # fmt: skip
    print(md_table(head, rows, ["l", "l"] + ["r"] * 5))
    print()

    def paired(a, b, ta=n):
        pairs = zip(times[("W2", a, ta)], times[("W2", b, n)], strict=True)
        return statistics.median(x / y for x, y in pairs)

    print(
        f"W2 round by round (median of the rounds' ratios): skbp 1 thread / {n} threads "
        f"{paired('skbp', 'skbp', 1):.2f}x; "
        f"no snapshot / default {paired('skbp, no snapshot', 'skbp'):.3f}; "
        f"default / governor off {paired('skbp', 'skbp, governor off'):.3f} "
        "(the governor's cost)."
    )
    peaks = {}
    for t in counts:
        with threadpool_limits(limits=t):
            peaks[t] = gemm_peak(np.float32, repeats=3 if args.quick else 7, threads=t)
    gp = "; ".join(f"{t} thread{plural(t)} {p:.1f}" for t, p in peaks.items())
    print(f"numpy float32 GEMM peak GFLOP/s (the physical bound): {gp}.")
    print(
        "others' CPU: median cores other processes used during the fits (1 / N threads; "
        "! every fit disturbed: the median is over all of them)."
    )
    print()


# ---------------------------------------------------------------- 3. scaling

# (M, K, N, trans_x, trans_y) of one W2 update at batch 128: forward, then
# the weight gradients and the gradients sent down (none below the first layer)
PRODUCTS = [
    (128, 784, 256, False, False), (128, 256, 128, False, False), (128, 128, 10, False, False),
    (128, 128, 10, True, False), (128, 10, 128, False, True),
    (256, 128, 128, True, False), (128, 128, 256, False, True),
    (784, 128, 256, True, False),
]  # fmt: skip


@numba.njit(nogil=True)
def _products(ops, tune, reps):
    for _ in range(reps):
        for X, tx, Y, ty, C in ops:
            mm.matmul(X, tx, Y, ty, C, False, tune)


def _operands(rng):
    ops = []
    for M, K, N, tx, ty in PRODUCTS:
        X = rng.standard_normal((K, M) if tx else (M, K)).astype(np.float32)
        Y = rng.standard_normal((N, K) if ty else (K, N)).astype(np.float32)
        ops.append((X, tx, Y, ty, np.zeros((M, N), np.float32)))
    return tuple(ops)


def _digest(est):
    h = hashlib.sha256()
    for a in (*est.coefs_, *est.intercepts_):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def _w2_fit(w, X, y, epochs, n_jobs, **kw):
    params = dict(solver="adam", learning_rate_init=w["lr"], batch_size=w["batch"],
                  max_iter=epochs, tol=0.0, n_iter_no_change=10**6, random_state=0,
                  n_jobs=n_jobs)  # fmt: skip
    est = BPClassifier(w["hidden"], **{**params, **kw})
    t = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - t, est


def scaling(args, n, w, X, y):
    top = n
    counts = (
        [int(s) for s in args.counts.split(",")]
        if args.counts
        else sorted({1, 2, 4, 8, top} & set(range(1, top + 1)))
    )
    if args.quick:
        counts = sorted({1, top})
    widths = [int(s) for s in args.widths.split(",")]
    updates = args.epochs * -(-X.shape[0] // w["batch"])
    ops = _operands(np.random.default_rng(0))
    th.ADAPTIVE = False
    fits = 1 if args.quick else 2
    print(f"## 3. Where W2's update time goes (float32, governor off, min of {fits} fits)")
    print()
    print(
        f"W2 {X.shape[0]:,} x {X.shape[1]}, {args.epochs} epoch{plural(args.epochs)} = "
        f"{updates} updates per fit; products: the 8 products of one update alone, "
        f"{args.reps} loops.  Threading layer {numba.threading_layer()}."
    )
    print()
    rows = []
    for width in widths:
        mm.PAR_BLOCK_COLS = width
        mm._TUNE_CACHE.clear()
        tune = mm.tune_array()
        blocks = f"{mm.n_blocks(128, 784, 256, tune)}/{mm.n_blocks(784, 128, 256, tune)}"
        base = None
        for k in counts:
            numba.set_num_threads(k)
            with threadpool_limits(1):
                _products(ops, tune, 2)
                t = time.perf_counter()
                _products(ops, tune, args.reps)
                prod = (time.perf_counter() - t) / args.reps
            numba.set_num_threads(top)
            runs = [_w2_fit(w, X, y, args.epochs, k) for _ in range(fits)]
            per = min(s for s, _ in runs) / updates
            digest = _digest(runs[0][1])
            if base is None:
                base = (per, prod, digest)
            same = "yes" if digest == base[2] else f"NO ({digest})"
            ms = [f"{v * 1e3:.3f}" for v in (per, prod, per - prod)]
            rows.append(
                [width, k, blocks, *ms, f"{base[0] / per:.2f}x", f"{base[1] / prod:.2f}x", same]
            )
            log(f"  scaling width {width} {k} threads: {per * 1e3:.3f} ms/update")
    head = [
        "width", "threads", "blocks fwd/dW1", "fit ms/update", "products ms/update",
        "rest ms/update", "fit speed-up", "products speed-up", "same bits as 1 thread",
    ]  # fmt: skip
    print(md_table(head, rows, ["r", "r", "l"] + ["r"] * 5 + ["l"]))
    print()
    variants = [
        ("adam", dict(solver="adam")),
        ("sgd m=0", dict(solver="sgd", momentum=0.0)),
        ("sgd m=0.9", dict(solver="sgd", momentum=0.9)),
        ("adam no shuffle", dict(solver="adam", shuffle=False)),
    ]
    rows = []
    for name, kw in variants[:1] if args.quick else variants:
        per = {
            k: min(_w2_fit(w, X, y, args.epochs, k, **kw)[0] for _ in range(fits)) / updates
            for k in sorted({1, top})
        }
        rows.append([name, *(f"{per[k] * 1e3:.3f}" for k in per), f"{per[1] / per[top]:.2f}x"])
    print(f"W2 by optimizer and row order (ms per update, min of {fits}, governor off):")
    print()
    cols = [f"{k} thread{plural(k)}" for k in sorted({1, top})]
    print(md_table(["variant", *cols, f"speed-up 1 -> {top}"], rows))
    print()


# ------------------------------------------------------------------ 4. split

SHAPES = [(128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]  # (F, H)


def _split_fits():
    from sklearn.datasets import load_digits, make_classification
    from sklearn.preprocessing import StandardScaler

    Xd, yd = load_digits(return_X_y=True)
    Xd, yd = Xd[:1198], yd[:1198]
    Xl, yl = make_classification(20000, 50, n_informative=10, n_redundant=0, random_state=0)
    Xl = StandardScaler().fit_transform(Xl).astype(np.float32)
    return {
        "digits, Adam, 30 epochs": lambda k: BPClassifier(
            max_iter=30, random_state=0, n_jobs=k
        ).fit(Xd, yd),
        "L-BFGS, 20 iterations": lambda k: BPClassifier(
            hidden_layer_sizes=(100,), solver="lbfgs", max_iter=20, random_state=0, n_jobs=k,
            alpha=0.0, tol=0.0,
        ).fit(Xl, yl),
    }  # fmt: skip


def split(args, n):
    th.ADAPTIVE = False
    mm.PAR_MIN_WORK = args.min_work
    mm._TUNE_CACHE.clear()
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):  # load every kernel (prediction too) before timing
        Xw = rng.standard_normal((400, 8)).astype(dtype)
        BPClassifier((16,), max_iter=1).fit(Xw, np.arange(400) % 10).predict(Xw)
    print(
        f"## 4. Where splitting a product over {n} threads pays (governor off, products split "
        f"from {args.min_work:,} multiply-adds, best of {args.repeats})"
    )
    print()
    batches = (64,) if args.quick else (64, 128, 256)
    shapes = SHAPES[::4] if args.quick else SHAPES
    rows = []
    for dtype in args.dtypes.split(","):
        for B in batches:
            for F, H in shapes:
                work = B * F * H
                n_rows = 2 * B if args.quick else max(2000, int(4e9 / work / 20) // B * B)
                X = rng.standard_normal((n_rows, F)).astype(dtype)
                y = rng.integers(0, 10, n_rows)

                def fit(k, X=X, y=y, B=B, H=H):
                    est = BPClassifier(
                        hidden_layer_sizes=(H,), batch_size=B, max_iter=3, random_state=0,
                        n_jobs=k, tol=0.0, n_iter_no_change=10**6,
                    )  # fmt: skip
                    t0 = time.perf_counter()
                    est.fit(X, y)
                    return time.perf_counter() - t0

                fit(1), fit(n)
                t = {1: [], n: []}
                for _ in range(args.repeats):
                    for k in (1, n):
                        t[k].append(fit(k))
                s, q = min(t[1]), min(t[n])
                updates = n_rows * 3 / B
                rows.append([
                    dtype, B, F, H, f"{work / 2**20:.2f}", f"{s / updates * 1e6:.1f}",
                    f"{q / updates * 1e6:.1f}", f"{s / q:.2f}x",
                ])  # fmt: skip
                log(f"  split {dtype} B={B} F={F} H={H}: {s / q:.2f}x")
    head = [
        "dtype", "batch", "F", "H", "first-layer product M", "1 thread us/update",
        f"{n} threads us/update", f"{n} threads' gain",
    ]  # fmt: skip
    print(md_table(head, rows, ["l"] + ["r"] * 7))
    print()
    rows = []
    for name, fit in _split_fits().items():
        fit(1), fit(n)
        t = {1: [], n: []}
        for _ in range(1 if args.quick else 2 * args.repeats + 2):
            for k in (1, n):
                t0 = time.perf_counter()
                fit(k)
                t[k].append(time.perf_counter() - t0)
        s, q = median(t[1]), median(t[n])
        rows.append([name, f"{s * 1e3:.1f}", f"{q * 1e3:.1f}", f"{s / q:.2f}x"])
    print(md_table(["fit", "1 thread ms", f"split, {n} threads ms", f"{n} threads' gain"], rows))
    print()


# -------------------------------------------------------------- 5. pythreads

GRID = {"hidden_layer_sizes": [(50,), (100,)], "learning_rate_init": [1e-3, 1e-2]}


def _search(X, y, backend, n_jobs, epochs):
    from sklearn.model_selection import GridSearchCV

    g = GridSearchCV(BPClassifier(max_iter=epochs, random_state=0), GRID, cv=3, n_jobs=n_jobs)
    t0 = time.perf_counter()
    with joblib.parallel_backend(backend):
        g.fit(X, y)
    return time.perf_counter() - t0, g.cv_results_["mean_test_score"]


def _pipeline_search(X, y, backend, n_jobs, epochs):
    g = pipeline_search(BPClassifier, epochs, n_jobs)
    t0 = time.perf_counter()
    with joblib.parallel_backend(backend):
        g.fit(X, y)
    return time.perf_counter() - t0, g.cv_results_["mean_test_score"]


def _fits(X, y, n_threads, epochs, n_fits=8):
    models = [None] * n_fits

    def work(ids):
        for i in ids:
            models[i] = BPClassifier(max_iter=epochs, random_state=i).fit(X, y)

    t0 = time.perf_counter()
    if n_threads == 1:
        work(range(n_fits))
    else:
        ths = [
            threading.Thread(target=work, args=(range(k, n_fits, n_threads),))
            for k in range(n_threads)
        ]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
    return time.perf_counter() - t0, [m.coefs_[0] for m in models]


def python_threads(args, n):
    from sklearn.datasets import load_digits

    k = max(n, 2)
    X, y = load_digits(return_X_y=True)
    Xf, yf = X[:1198], y[:1198]
    Xg, yg = search_data()
    epochs = 5 if args.quick else 30
    g_epochs = 4 if args.quick else 40
    BPClassifier(max_iter=2).fit(X, y)  # compile / load the cache outside the timings
    BPClassifier((64, 32), batch_size=32, max_iter=2).fit(Xg, yg).predict(Xg)
    cases = {
        "search": lambda b, j: _search(X, y, b, j, epochs),
        "fits": lambda b, j: _fits(Xf, yf, j, epochs),
        "gridsearch": lambda b, j: _pipeline_search(Xg, yg, b, j, g_epochs),
    }
    rows = {c: [] for c in cases}
    for _ in range(args.py_repeats):
        for case, fn in cases.items():
            ts, rs = fn("loky", 1)  # n_jobs=1: joblib runs it sequentially
            tt, rt = fn("threading", k)
            same = all(np.array_equal(a, b) for a, b in zip(rs, rt, strict=True))
            assert same, f"{case}: the threaded run gave other results than the sequential one"
            rows[case].append((ts, tt))
            log(f"  pythreads {case}: {ts:.3f} s / {tt:.3f} s")
    print(f"## 5. skbp inside Python threads: sequential against {k} threads")
    print()
    print(
        f"search: GridSearchCV on digits, 2 x 2 candidates x 3 folds, BPClassifier(max_iter="
        f"{epochs}); fits: 8 fits on 1,198 rows of digits, {k} plain Python threads; "
        f"gridsearch: the search suite's 30-fit pipeline search, {g_epochs} epochs.  Threaded: "
        f"joblib's threading backend with n_jobs={k}.  Medians of {args.py_repeats} runs."
    )
    print()
    out = []
    for case, runs in rows.items():
        r = [s / t for s, t in runs]
        tt = [t for _, t in runs]
        out.append([
            case, f"{median([s for s, _ in runs]):.3f}", f"{median(tt):.3f}",
            f"{median(r):.2f}x", f"{min(r):.2f}x", f"{max(r):.2f}x", f"{max(tt) / min(tt):.2f}",
        ])  # fmt: skip
    head = [
        "case", "sequential s", "threaded s", "sequential / threaded", "min", "max",
        "threaded runs: slowest / fastest",
    ]  # fmt: skip
    print(md_table(head, out))
    print()
    print("Threaded results equal the sequential ones (CV scores and weights): checked.")
    print()
