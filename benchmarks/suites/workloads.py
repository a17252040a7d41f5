"""Training and prediction of W1-W4 next to scikit-learn's MLP and PyTorch (CPU).

Every implementation trains on the same standardised synthetic data with the
same architecture, optimizer, learning rate, batch size, number of epochs and
initial weights (scikit-learn's Glorot-uniform draws for ``random_state=0``),
without L2 penalty (``alpha=0``).  Only the order of the mini-batches differs
(each library shuffles with its own generator).  The training table gives the
median wall time over the repeats and the ratio peer time / skbp time (> 1: skbp
is faster), the final training loss of each implementation and, for W2, the
achieved GFLOP/s against the machine's measured GEMM peak (the physical bound).
Then, unless turned off: an unshuffled run of skbp and scikit-learn on 1/10 of
the rows, whose loss curves must agree to rounding (``--no-parity``), and the
single-row latency and large-batch throughput of ``predict`` on the W1 model
(``--no-predict``).  Thread scaling of W2 and W3 is the ``threads`` suite.

    python benchmarks/bench.py workloads                 # default run, float32
    python benchmarks/bench.py workloads --quick         # smoke run
    python benchmarks/bench.py workloads --repeats 5 --dtype float64 --workloads W1,W4

Workloads (X standardised with StandardScaler; regression targets too):

* W1 small tabular: make_classification 20,000 x 20, 2 classes; (64, 64)
  relu; adam lr 1e-3; batch 32; 10 epochs.
* W2 MNIST shape: make_classification 60,000 x 784, 10 classes; (256, 128)
  relu; adam lr 1e-3; batch 128; 3 epochs.
* W3 regression: make_regression 50,000 x 50; (128, 64) relu; adam lr 1e-3;
  batch 64; 5 epochs.
* W4 pure SGD: make_classification 10,000 x 10, 2 classes; (32,) relu; sgd
  lr 0.01, Nesterov momentum 0.9; batch 1; 2 epochs.

skbp is warmed up (tiny fits of each estimator with adam and sgd in the run's
dtype) before anything is timed, so Numba compile / cache-load time is
excluded; the warm-up time is printed separately (the ``first-use`` suite
measures cold compilation).  PyTorch is optional (``pip install torch``):
without it the PyTorch rows are skipped with a note.  Threads: every
implementation gets ``--num-threads`` (default: all usable cores): skbp through
``n_jobs``, with BLAS limited by ``threadpoolctl`` for skbp and scikit-learn
alike; PyTorch through ``torch.set_num_threads``.

On a shared machine, every fit records how many CPU cores *other* processes
kept busy meanwhile (from /proc/stat).  A fit during which they used more than
the cores the run leaves free plus ``--max-others`` is "disturbed": it is left
out of the median when undisturbed fits exist, and extra fits are made
(``--max-extra``) while most fits are disturbed.  With two cores and a
concurrent test run, a multi-threaded fit can be 10-100x slower (threads wait
for a core at every parallel region), so read the "others' CPU" and "quiet
fits" columns before the times.  The meter is coarse (10 ms clock ticks; an
average over the fit): even 0.05 cores of bursty load can slow a 2-thread fit
noticeably, so compare runs, and prefer ``--num-threads 1`` on a busy machine.
"""

import contextlib
import dataclasses
import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skbp import BPClassifier, BPRegressor

from ._common import LoadMeter, gemm_peak, header, log, md_table, plural, usable_cpus

try:
    import torch
except ImportError:  # optional peer
    torch = None

# --------------------------------------------------------------------------- workloads

WORKLOADS = {
    "W1": dict(
        title="small tabular", task="binary", n_rows=20_000, n_features=20, n_classes=2,
        n_informative=10, hidden=(64, 64), solver="adam", lr=1e-3, batch=32, epochs=10,
    ),
    "W2": dict(
        title="MNIST shape", task="multiclass", n_rows=60_000, n_features=784, n_classes=10,
        n_informative=50, hidden=(256, 128), solver="adam", lr=1e-3, batch=128, epochs=3,
    ),
    "W3": dict(
        title="regression", task="regression", n_rows=50_000, n_features=50, n_classes=None,
        n_informative=25, hidden=(128, 64), solver="adam", lr=1e-3, batch=64, epochs=5,
    ),
    "W4": dict(
        title="pure SGD", task="binary", n_rows=10_000, n_features=10, n_classes=2,
        n_informative=5, hidden=(32,), solver="sgd", lr=1e-2, batch=1, epochs=2,
    ),
}  # fmt: skip
QUICK_ROW_DIVISOR = 10
QUICK_MAX_EPOCHS = 2
IMPLS = ("skbp", "sklearn", "torch")


def describe(w):
    opt = "adam" if w["solver"] == "adam" else "sgd nesterov m=0.9"
    shape = f"{w['n_rows']:,} x {w['n_features']}"
    return (
        f"{w['title']}: {shape}, {w['task']}, {w['hidden']} relu, {opt} lr {w['lr']:g}, "
        f"batch {w['batch']}, {w['epochs']} epochs"
    )


def make_data(w, dtype, seed=0):
    """Standardised synthetic data of workload ``w`` in ``dtype``."""
    if w["task"] == "regression":
        X, y = make_regression(
            n_samples=w["n_rows"], n_features=w["n_features"],
            n_informative=w["n_informative"], noise=10.0, random_state=seed,
        )  # fmt: skip
        y = StandardScaler().fit_transform(y.reshape(-1, 1)).ravel().astype(dtype)
    else:
        X, y = make_classification(
            n_samples=w["n_rows"], n_features=w["n_features"],
            n_informative=w["n_informative"], n_redundant=0, n_classes=w["n_classes"],
            n_clusters_per_class=1 if w["n_classes"] > 2 else 2, random_state=seed,
        )  # fmt: skip
    X = StandardScaler().fit_transform(X).astype(dtype)
    return np.ascontiguousarray(X), y


def layer_units(w, n_out):
    return [w["n_features"], *w["hidden"], n_out]


def n_outputs(w):
    return 1 if w["task"] in ("binary", "regression") else w["n_classes"]


def sk_params(w):
    return dict(
        hidden_layer_sizes=w["hidden"], activation="relu", solver=w["solver"], alpha=0.0,
        batch_size=w["batch"], learning_rate="constant", learning_rate_init=w["lr"],
        max_iter=w["epochs"], tol=0.0, n_iter_no_change=np.inf, shuffle=True,
        random_state=0, momentum=0.9, nesterovs_momentum=True,
    )  # fmt: skip


def glorot_init(units, seed=0):
    """The initial weights scikit-learn (and skbp) draw for relu and ``random_state=seed``."""
    rs = np.random.RandomState(seed)
    params = []
    for fi, fo in zip(units[:-1], units[1:], strict=True):
        bound = np.sqrt(6.0 / (fi + fo))
        params.append((rs.uniform(-bound, bound, (fi, fo)), rs.uniform(-bound, bound, fo)))
    return params


# ---------------------------------------------------------------------------- trainers


def fit_sklearn_like(est_cls, w, X, y, threads):
    params = sk_params(w)
    if est_cls in (BPClassifier, BPRegressor):
        params["n_jobs"] = threads
    est = est_cls(**params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(X, y)
        elapsed = time.perf_counter() - t0
    notes = sorted({f"{c.category.__name__}: {c.message}" for c in caught})
    return est, elapsed, float(est.loss_), notes


def torch_model(w, dtype):
    units = layer_units(w, n_outputs(w))
    layers = []
    for i, (fi, fo) in enumerate(zip(units[:-1], units[1:], strict=True)):
        layers.append(torch.nn.Linear(fi, fo))
        if i < len(units) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for lin, (coef, intercept) in zip(linears, glorot_init(units), strict=True):
            lin.weight.copy_(torch.from_numpy(coef.T.copy()))
            lin.bias.copy_(torch.from_numpy(intercept))
    return model.to(torch.float64 if dtype == np.float64 else torch.float32)


def torch_loss_fn(w):
    if w["task"] == "binary":
        return torch.nn.BCEWithLogitsLoss()
    if w["task"] == "multiclass":
        return torch.nn.CrossEntropyLoss()
    mse = torch.nn.MSELoss()
    return lambda out, target: 0.5 * mse(out, target)  # scikit-learn's half squared error


def torch_targets(w, y, tdtype):
    if w["task"] == "multiclass":
        return torch.from_numpy(np.asarray(y, dtype=np.int64))
    return torch.from_numpy(np.asarray(y).reshape(-1, 1)).to(tdtype)


def fit_torch(w, X, y, dtype):
    """A plain PyTorch training loop: manual shuffling with randperm, slicing."""
    torch.manual_seed(0)
    model = torch_model(w, dtype)
    Xt = torch.from_numpy(X)
    Yt = torch_targets(w, y, Xt.dtype)
    loss_fn = torch_loss_fn(w)
    if w["solver"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=w["lr"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=w["lr"], momentum=0.9, nesterov=True)
    n, bs = Xt.shape[0], w["batch"]
    t0 = time.perf_counter()
    for _ in range(w["epochs"]):
        perm = torch.randperm(n)
        total = 0.0
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            xb, yb = Xt[idx], Yt[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        epoch_loss = total / n
    elapsed = time.perf_counter() - t0
    return model, elapsed, float(epoch_loss), []


def train_score(impl, w, model, X, y):
    """Training accuracy (classification) or R^2 (regression), outside the timing."""
    if impl != "torch":
        return float(model.score(X, y))
    with torch.no_grad():
        out = model(torch.from_numpy(X)).numpy()
    if w["task"] == "binary":
        return float(np.mean((out[:, 0] > 0) == (y == 1)))
    if w["task"] == "multiclass":
        return float(np.mean(out.argmax(1) == y))
    y = np.asarray(y, dtype=np.float64)
    return float(1 - np.sum((out[:, 0] - y) ** 2) / np.sum((y - y.mean()) ** 2))


def fit_impl(impl, w, X, y, dtype, threads):
    if impl == "torch":
        return fit_torch(w, X, y, dtype)
    reg = w["task"] == "regression"
    cls = {"skbp": BPRegressor if reg else BPClassifier, "sklearn": MLPRegressor}[impl]
    if impl == "sklearn" and not reg:
        cls = MLPClassifier
    return fit_sklearn_like(cls, w, X, y, threads)


@contextlib.contextmanager
def limit_threads(n):
    """BLAS (threadpoolctl) and torch intra-op threads limited to ``n``."""
    old = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(old)


def forward_flops(w):
    """FLOPs of one forward pass over all rows (one epoch): 2 * rows * sum(fan_in*fan_out)."""
    units = layer_units(w, n_outputs(w))
    return 2.0 * w["n_rows"] * sum(a * b for a, b in zip(units[:-1], units[1:], strict=True))


def run_workload(
    name, w, dtype, impls, repeats, threads, log, max_others=0.1, max_extra=None, budget=None
):
    """Fit each implementation ``repeats`` times, round-robin; return the results.

    A fit during which other processes kept more than ``max_others`` cores busy
    beyond the cores this run leaves free (usable cores - ``threads``) counts
    as disturbed.  While fewer than half of an implementation's fits are
    undisturbed, up to ``max_extra`` (default ``repeats``) further fits are
    made, as long as ``budget["extra_s"]`` (seconds for extra fits, shared by
    all calls) lasts; the median is then taken over the undisturbed fits (over
    all fits if none is undisturbed, which the table flags).
    """
    X, y = make_data(w, dtype)
    res = {
        impl: {"times": [], "others_cores": [], "loss": None, "notes": set(), "nonfinite": False}
        for impl in impls
    }
    max_extra = repeats if max_extra is None else max_extra
    need_quiet = (repeats + 1) // 2

    limit = quiet_limit(threads, max_others)

    def fit_once(impl, label):
        with LoadMeter() as meter:
            model, elapsed, loss, notes = fit_impl(impl, w, X, y, dtype, threads)
        d = res[impl]
        d["times"].append(elapsed)
        d["others_cores"].append(meter.others)
        d["loss"] = loss
        d["notes"].update(notes)
        if not np.isfinite(loss):
            d["nonfinite"] = True
        d["model"] = model  # kept for the prediction benchmark, never dumped
        log(
            f"  {name} {impl:<8} {threads} thr {label}: {elapsed:8.3f} s  loss {loss:.5f}  "
            f"others {meter.others:.2f} cores"
        )

    with limit_threads(threads):
        for r in range(repeats):
            for impl in impls:
                fit_once(impl, f"repeat {r + 1}/{repeats}")
        budget = {"extra_s": np.inf} if budget is None else budget
        for extra in range(max_extra):
            redo = [impl for impl in impls if len(quiet_times(res[impl], limit)) < need_quiet]
            if not redo:
                break
            for impl in redo:
                if budget["extra_s"] <= 0:
                    log(f"  {name} {impl:<8} no extra fit: --extra-budget spent")
                    continue
                t0 = time.perf_counter()
                fit_once(impl, f"extra fit {extra + 1} (earlier fits disturbed)")
                budget["extra_s"] -= time.perf_counter() - t0
        for impl in impls:
            d = res[impl]
            d["score"] = train_score(impl, w, d["model"], X, y)
            if impl != "torch":
                d["n_iter"] = int(d["model"].n_iter_)
    for d in res.values():
        summarise(d, w, limit)
    return res


def quiet_limit(threads, max_others):
    """Others' CPU (cores) up to which a fit on ``threads`` threads counts as undisturbed."""
    return max(0, usable_cpus() - threads) + max_others


def quiet_times(d, limit):
    """The times of the fits during which others used at most ``limit`` cores."""
    return [t for t, o in zip(d["times"], d["others_cores"], strict=True) if o <= limit]


def summarise(d, w, limit):
    """An implementation's medians etc. from its ``times`` and ``others_cores``."""
    q = quiet_times(d, limit)
    d["n_fits"], d["n_quiet"] = len(d["times"]), len(q)
    d["disturbed"] = not q
    d["median"] = statistics.median(q or d["times"])
    d["min"] = min(d["times"])
    d["others_median"] = statistics.median(d["others_cores"])
    d["gflops"] = 3.0 * forward_flops(w) * w["epochs"] / d["median"] / 1e9
    d["notes"] = sorted(d["notes"])


def parity_check(name, w, dtype):
    """skbp vs scikit-learn without shuffling (same mini-batches): the largest
    difference of the per-epoch losses and of the final weights."""
    X, y = make_data(w, dtype)
    params = dict(sk_params(w), shuffle=False)
    reg = w["task"] == "regression"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = (BPRegressor if reg else BPClassifier)(**params).fit(X, y)
        b = (MLPRegressor if reg else MLPClassifier)(**params).fit(X, y)
    la, lb = np.asarray(a.loss_curve_), np.asarray(b.loss_curve_)
    dloss = float(np.max(np.abs(la - lb) / np.maximum(np.abs(lb), 1e-12)))
    dw = max(float(np.max(np.abs(ca - cb))) for ca, cb in zip(a.coefs_, b.coefs_, strict=True))
    return {"rel_loss_diff": dloss, "max_abs_weight_diff": dw, "loss_skbp": float(la[-1]),
            "loss_sklearn": float(lb[-1])}  # fmt: skip


# --------------------------------------------------------------------------- prediction


def time_calls(fn, n_calls):
    times = np.empty(n_calls)
    for i in range(n_calls):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
    return times


def bench_predict(w, dtype, impls, n_calls, n_rows_big, repeats, threads, log, models=None):
    """Single-row predict latency and large-batch throughput of the W1 model.

    ``models`` maps implementation -> fitted W1 model (fitted here if missing).
    """
    X, y = make_data(w, dtype)
    big = np.ascontiguousarray(np.resize(X, (n_rows_big, X.shape[1])))
    out = {}
    models = models or {}
    with limit_threads(threads):
        for impl in impls:
            model = models.get(impl)
            if model is None:
                model = fit_impl(impl, w, X, y, dtype, threads)[0]
            if impl == "torch":
                model.eval()

                def predict(A, model=model):
                    with torch.no_grad():
                        return (model(torch.from_numpy(A))[:, 0] > 0).numpy()

            else:
                predict = model.predict
            row = X[:1]
            ref = predict(X[:500])
            for _ in range(50):  # warm caches / lazy initialisation
                predict(row)
            lat = time_calls(lambda predict=predict, row=row: predict(row), n_calls)
            big_times = [time_calls(lambda p=predict: p(big), 1)[0] for _ in range(repeats)]
            out[impl] = {
                "latency_us_median": float(np.median(lat) * 1e6),
                "latency_us_p90": float(np.percentile(lat, 90) * 1e6),
                "throughput_s_median": float(statistics.median(big_times)),
                "rows_per_s": float(n_rows_big / statistics.median(big_times)),
                "pred_head": np.asarray(ref).astype(int).tolist(),
            }
            log(f"  predict {impl:<8} {out[impl]['latency_us_median']:8.1f} us/row-call")
    return out


# ------------------------------------------------------------------------------ machine
def warm_up_skbp(dtype):
    """One tiny fit per estimator/solver in ``dtype`` (Numba compile or cache load)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4)).astype(dtype)
    y = (X[:, 0] > 0).astype(int)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for solver in ("adam", "sgd"):
            BPClassifier(hidden_layer_sizes=(3,), solver=solver, max_iter=2).fit(X, y).predict(X)
            BPRegressor(hidden_layer_sizes=(3,), solver=solver, max_iter=2).fit(X, X[:, 1])
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------- output


def fmt_loss(x):
    return "NaN/inf" if x is None or not np.isfinite(x) else f"{x:.4f}"


def training_table(results, impls, peaks, dtype):
    rows = []
    for name, res in results.items():
        w = res["workload"]
        base = res["impls"]["skbp"]["median"] if "skbp" in res["impls"] else None
        for impl in impls:
            d = res["impls"].get(impl)
            if d is None:
                continue
            ratio = "1.00" if impl == "skbp" else (f"{d['median'] / base:.2f}" if base else "-")
            gf = pk = "-"
            if name == "W2":
                gf = f"{d['gflops']:.1f}"
                pk = f"{100 * d['gflops'] / peaks[dtype]:.0f}%"
            score_name = "R2" if w["task"] == "regression" else "acc"
            rows.append([
                name, impl, f"{d['median']:.3f}", f"{d['min']:.3f}", ratio,
                fmt_loss(d["loss"]), f"{score_name} {d['score']:.4f}", gf, pk,
                f"{d['others_median']:.1f}", f"{d['n_quiet']}/{d['n_fits']}" + (
                    " !" if d["disturbed"] else ""),
            ])  # fmt: skip
    header = [
        "workload", "impl", "median s", "min s", "peer/skbp", "final loss",
        "train score", "GFLOP/s", "% GEMM peak", "others' CPU", "quiet fits",
    ]  # fmt: skip
    return md_table(header, rows, ["l", "l"] + ["r"] * 9)


def predict_table(pred, n_rows_big):
    base = pred.get("skbp")
    rows = []
    for impl, d in pred.items():
        lat_ratio = f"{d['latency_us_median'] / base['latency_us_median']:.2f}" if base else "-"
        thr_ratio = f"{d['throughput_s_median'] / base['throughput_s_median']:.2f}" if base else "-"
        rows.append([
            impl, f"{d['latency_us_median']:.1f}", f"{d['latency_us_p90']:.1f}", lat_ratio,
            f"{1e3 * d['throughput_s_median']:.1f}", f"{d['rows_per_s'] / 1e6:.2f}", thr_ratio,
        ])  # fmt: skip
    header = [
        "impl", "1-row predict us (median)", "p90 us", "peer/skbp",
        f"{n_rows_big:,}-row predict ms", "M rows/s", "peer/skbp",
    ]  # fmt: skip
    return md_table(header, rows)


# --------------------------------------------------------------------------------- main


def add_arguments(p):
    p.add_argument("--repeats", type=int, default=None, help="fits per implementation (3)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--workloads", default=",".join(WORKLOADS), help="e.g. W1,W3 (all)")
    p.add_argument(
        "--num-threads", type=int, default=None, metavar="N",
        help="threads of every implementation (default: all usable cores)",
    )  # fmt: skip
    p.add_argument(
        "--max-others", type=float, default=0.1, metavar="CORES",
        help="a fit during which other processes used more CPU cores than this beyond "
        "the cores the run leaves free is disturbed and left out of the median (default 0.1)",
    )  # fmt: skip
    p.add_argument(
        "--max-extra", type=int, default=None, metavar="K",
        help="extra fits per implementation while most fits are disturbed "
        "(default: --repeats; 0 with --quick)",
    )  # fmt: skip
    p.add_argument(
        "--extra-budget", type=float, default=90.0, metavar="S",
        help="seconds the whole run may spend on extra fits (default 90)",
    )  # fmt: skip
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch peer")
    p.add_argument("--no-parity", action="store_true", help="skip the unshuffled parity check")
    p.add_argument("--no-predict", action="store_true", help="skip the prediction benchmark")
    p.add_argument("--verbose", action="store_true", help="log every fit to stderr")


def check_args(args):
    """Fill in the defaults that depend on ``--quick``; SystemExit on a bad value."""
    names = [s.strip().upper() for s in args.workloads.split(",") if s.strip()]
    unknown = [s for s in names if s not in WORKLOADS]
    if unknown or not names:
        raise SystemExit(f"--workloads: unknown {unknown}; choose from {list(WORKLOADS)}")
    args.workloads = names
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        raise SystemExit("--repeats must be >= 1")
    if args.max_extra is None:
        args.max_extra = 0 if args.quick else args.repeats
    if args.num_threads is not None and args.num_threads < 1:
        raise SystemExit("--num-threads must be a positive integer")


def scaled(name, quick):
    """Workload ``name``; with ``quick``, 1/10 of the rows and at most 2 epochs."""
    w = dict(WORKLOADS[name])
    if quick:
        w["n_rows"] //= QUICK_ROW_DIVISOR
        w["epochs"] = min(w["epochs"], QUICK_MAX_EPOCHS)
    return w


def peers(no_torch=False):
    """The implementations timed: skbp, scikit-learn, and PyTorch where installed."""
    return [i for i in IMPLS if i != "torch" or (torch is not None and not no_torch)]


@dataclasses.dataclass
class Run:
    """What the sections of one run share, derived from the command line."""

    args: object
    dtype: type  # np.float32 or np.float64
    n_cpus: int  # usable cores
    threads: int  # threads of every fit
    impls: list  # implementations timed, in IMPLS order
    workloads: dict  # name -> workload, scaled for --quick
    retry: tuple  # run_workload's max_others, max_extra and budget (shared by all its calls)

    @property
    def free(self):
        """Cores the run leaves free."""
        return max(0, self.n_cpus - self.threads)

    def log(self, msg):
        if self.args.verbose:
            log(msg)


def make_run(args):
    n_cpus = usable_cpus()
    return Run(
        args=args,
        dtype=np.dtype(args.dtype).type,
        n_cpus=n_cpus,
        threads=args.num_threads or n_cpus,
        impls=peers(args.no_torch),
        workloads={name: scaled(name, args.quick) for name in args.workloads},
        retry=(args.max_others, args.max_extra, {"extra_s": args.extra_budget}),
    )


def print_settings(run):
    args = run.args
    torch_threads = ", torch.set_num_threads" if "torch" in run.impls else ""
    print(f"* threads: {run.threads} (BLAS limited with threadpoolctl{torch_threads}, skbp n_jobs)")
    print(
        f"* dtype {args.dtype}; {args.repeats} repeat(s) per implementation, interleaved; up to "
        f"{args.max_extra} extra fit(s) while most fits are disturbed (other processes "
        f"use more than the {run.free} free core(s) + {args.max_others}), "
        f"{args.extra_budget:g} s for them in all"
    )
    if torch is None:
        print("* NOTE: torch is not importable: the PyTorch peer is skipped (pip install torch)")
    elif args.no_torch:
        print("* NOTE: --no-torch: the PyTorch peer is skipped")


def measure_gemm_peaks(run):
    """numpy GEMM GFLOP/s at ``run.threads`` BLAS threads, both dtypes; printed."""
    with threadpool_limits(limits=run.threads):
        peaks = {
            dt: gemm_peak(dt, repeats=5 if run.args.quick else 7, threads=run.threads)
            for dt in (np.float32, np.float64)
        }
    print(
        f"* numpy GEMM peak (the physical bound; 2048x2048 matmul, best of runs, {run.threads} "
        f"BLAS thread{plural(run.threads)}): float32 {peaks[np.float32]:.1f} GFLOP/s, "
        f"float64 {peaks[np.float64]:.1f} GFLOP/s"
    )
    print()
    return peaks


def print_workloads(run):
    print("## Workloads")
    print()
    for name, w in run.workloads.items():
        print(f"* **{name}** {describe(w)}")
    print()
    print(
        "All: relu hidden layers, alpha=0, shuffled every epoch, the same initial weights "
        "(scikit-learn's Glorot-uniform draws for random_state=0); skbp/scikit-learn with "
        "max_iter=epochs, tol=0, n_iter_no_change=inf.  PyTorch: nn.Sequential, "
        "torch.optim.Adam / SGD(momentum=0.9, nesterov=True), torch.randperm + slicing, "
        "BCEWithLogits / CrossEntropy / 0.5*MSE loss (scikit-learn's losses)."
    )
    print()


def run_training(run):
    """Every implementation on every workload at ``run.threads`` threads."""
    results = {}
    for name, w in run.workloads.items():
        res = run_workload(
            name, w, run.dtype, run.impls, run.args.repeats, run.threads, run.log, *run.retry
        )
        results[name] = {"workload": w, "impls": res}
    return results


def training_problems(results, max_others):
    """Warnings about the training results: bad losses, short runs, disturbed fits."""
    problems = []
    for name, res in results.items():
        for impl, d in res["impls"].items():
            if d["nonfinite"]:
                problems.append(f"{name} {impl}: non-finite loss")
            if impl != "torch" and d.get("n_iter") != res["workload"]["epochs"]:
                epochs = res["workload"]["epochs"]
                problems.append(f"{name} {impl}: ran {d.get('n_iter')} epochs, not {epochs}")
            for note in d["notes"]:
                problems.append(f"{name} {impl}: {note}")
    disturbed = [
        f"{name} {impl}"
        for name, res in results.items()
        for impl, d in res["impls"].items()
        if d["disturbed"]
    ]
    if disturbed:
        problems.append(
            f"every fit of {', '.join(disturbed)} ran while other processes used more than "
            f"the free cores + {max_others}: those timings are unreliable (multi-threaded "
            "ones most); rerun on a quiet machine or compare with --num-threads 1"
        )
    return problems


def print_training(run, results, peaks):
    args = run.args
    print(f"## Training ({args.dtype}, {run.threads} thread{plural(run.threads)})")
    print()
    print(training_table(results, run.impls, peaks, run.dtype))
    print()
    print(
        "median/min s: wall time of fit().  peer/skbp: peer median / skbp median (> 1: skbp "
        "faster).  final loss: loss_ (skbp, scikit-learn), mean mini-batch loss of the last "
        "epoch (PyTorch); they differ only through the shuffling order.  GFLOP/s (W2): 3 x "
        "forward FLOPs, forward = 2 * rows * sum(fan_in * fan_out) per epoch, over the median "
        f"time; % of the {args.dtype} numpy GEMM peak above.  others' CPU: median CPU cores "
        "used by other processes during the fits.  quiet fits: fits with others' CPU <= "
        f"{run.free} free core(s) + {args.max_others} (undisturbed) / all "
        "fits; the median is over the undisturbed fits "
        "when there are any (! none: median over all)."
    )
    problems = training_problems(results, args.max_others)
    if problems:
        print()
        print("Warnings / problems seen:")
        for msg in problems:
            print(f"* {msg}")
    print()


def run_parity(run):
    """The unshuffled parity check on 1/10 of every workload's rows; printed."""
    parity = {}
    with threadpool_limits(limits=run.threads):
        for name in run.workloads:
            w = dict(WORKLOADS[name])
            w["n_rows"] //= QUICK_ROW_DIVISOR
            parity[name] = parity_check(name, w, run.dtype)
    print(f"## Loss parity without shuffling ({run.args.dtype}, 1/{QUICK_ROW_DIVISOR} of the rows)")
    print()
    rows = [
        [name, f"{p['loss_skbp']:.6f}", f"{p['loss_sklearn']:.6f}",
         f"{p['rel_loss_diff']:.1e}", f"{p['max_abs_weight_diff']:.1e}"]
        for name, p in parity.items()
    ]  # fmt: skip
    head = [
        "workload", "skbp loss_", "sklearn loss_", "max rel. diff of loss_curve_",
        "max abs diff of coefs_",
    ]  # fmt: skip
    print(md_table(head, rows))
    print()
    print(
        "shuffle=False: skbp and scikit-learn see the same mini-batches from the same "
        "initial weights, so their loss curves must agree to rounding."
    )
    print()


def run_prediction(run, results):
    """Predict latency and throughput of the W1 model (reused from training if fitted)."""
    args = run.args
    w1 = scaled("W1", args.quick)
    n_calls = 200 if args.quick else 2000
    n_big = 10_000 if args.quick else 100_000
    n_rep = 3 if args.quick else max(10, args.repeats)
    models = {}
    if "W1" in results:
        models = {impl: d["model"] for impl, d in results["W1"]["impls"].items()}
    pred = bench_predict(
        w1, run.dtype, run.impls, n_calls, n_big, n_rep, run.threads, run.log, models
    )
    print(f"## Prediction (W1 model, {args.dtype}, {run.threads} thread{plural(run.threads)})")
    print()
    print(predict_table(pred, n_big))
    print()
    print(
        f"1-row: median and 90th percentile of {n_calls} calls of predict(X[:1]), input "
        "validation included (PyTorch: torch.no_grad() forward of torch.from_numpy(row), "
        f"thresholded).  {n_big:,} rows: median of {n_rep} predict calls.  "
        "peer/skbp > 1: skbp faster."
    )
    heads = {impl: d["pred_head"] for impl, d in pred.items()}
    if "skbp" in heads and "sklearn" in heads:
        agree = np.mean(np.array(heads["skbp"]) == np.array(heads["sklearn"]))
        print(f"skbp and scikit-learn predictions agree on {100 * agree:.1f}% of 500 rows.")
    print()


def run(args):
    check_args(args)
    run_ = make_run(args)
    header(args, "skbp benchmark: workloads", torch="torch" in run_.impls)
    print_settings(run_)
    t_warm = warm_up_skbp(run_.dtype)
    print(
        f"* skbp warm-up (first fits in this process: Numba cache load or compile; "
        f"excluded from all timings; cold compile: the first-use suite): {t_warm:.2f} s"
    )
    peaks = measure_gemm_peaks(run_)
    print_workloads(run_)
    results = run_training(run_)
    print_training(run_, results, peaks)
    if not args.no_parity:
        run_parity(run_)
    if not args.no_predict:
        run_prediction(run_, results)
