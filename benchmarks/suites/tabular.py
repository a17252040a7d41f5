"""Real tabular sets: skbp against HistGradientBoosting, linear models, MLPs (long).

Every model is cross-validated on the same folds of each set (5 folds by
default, stratified for classification, ``random_state=0`` everywhere) and
scored on the held-out fold: accuracy (and ROC AUC on two-class sets) for
classification, RMSE for regression, also divided by the standard deviation of
the set's target so that sets can be averaged. Fit and predict wall times are
measured per fold. The data (``benchmarks/tabular_data.py``): the
classification and regression sets of the R package mlbench (from Debian's
``r-cran-mlbench``, read with ``pyreadr``), diamonds (from ``plotnine``,
regression of log(price)) and scikit-learn's digits.

    python benchmarks/bench.py tabular --quick           # smoke run: 3 small sets, 2 folds
    python benchmarks/bench.py tabular                   # every set, 5 folds
    python benchmarks/bench.py tabular --datasets Sonar,Glass --models HGB,BP --threads 1
    python benchmarks/bench.py tabular --resume benchmarks/output/tabular.json   # in pieces
    python benchmarks/bench.py tabular --report benchmarks/output/tabular.json --out r.md

Besides the report (``benchmarks/output/tabular.txt``), a run writes its raw
per-fold results to ``benchmarks/output/tabular.json`` (named like the report:
``--out-suffix`` and ``--quick`` add to the name; ``--json FILE`` writes them
elsewhere), after every model, so that an interrupted run can go on with
``--resume``. The gallery's tabular benchmark example draws its figures from
that file.

It is long (an hour and more on two cores), so ``bench.py all`` leaves it out.

Models, each with its defaults and ``random_state=0``:

* ``HGB``: ``HistGradientBoostingClassifier/Regressor`` with native categorical
  (``categorical_features="from_dtype"``) and missing-value support; it gets
  the DataFrame as loaded.
* ``Linear``: ``LogisticRegression`` (``max_iter=1000``, so that it converges)
  or ``Ridge``.
* ``MLP``: scikit-learn's ``MLPClassifier/MLPRegressor``.
* ``BP``: skbp's ``BPClassifier/BPRegressor``, the drop-in for ``MLP``.
* ``RealMLP``: pytabkit's ``RealMLP_TD_Classifier/Regressor`` on PyTorch's
  CPU build (``pip install torch pytabkit``; skipped with a note when absent).
  It gets the DataFrame with its categorical columns and does its own
  preprocessing; only the missing numbers are filled with the training fold's
  median first, since it refuses NaN in numeric columns.
* ``Tabular``: skbp's ``TabularClassifier/TabularRegressor``, included when
  skbp has them; they get the DataFrame as ``HGB`` does.

``Linear``, ``MLP`` and ``BP`` share one preprocessing pipeline: numbers are
imputed with the training fold's median and standardised, categorical columns
one-hot encoded (a missing value is a category of its own). For regression
they learn a standardised target (``TransformedTargetRegressor``): networks
with scikit-learn's defaults need it, and ridge's predictions do not change.

Threads: ``--threads`` (default: every usable core) goes to every model alike:
skbp's ``n_jobs``, ``torch.set_num_threads`` and pytabkit's ``n_threads``,
and OpenMP/BLAS (HistGradientBoosting, NumPy) through ``threadpoolctl``. On a
shared machine, ``--threads 1`` disturbs others least and is disturbed least.
Every model is warmed up on a tiny set first (skbp's kernels, PyTorch), so
the times exclude compilation and first-import costs.

Sets larger than ``--max-rows`` (default 10,000: LetterRecognition, Shuttle,
diamonds) are subsampled once, stratified for classification, before the
folds are drawn; the tables show the rows used. The summary averages over the
sets that every shown model ran on; "vs HGB" counts the sets where a model's
mean score beats, ties (equal to the third decimal) or loses to
HistGradientBoosting's; the fit-time ratio is the model's total fit time over
BP's on the same sets (> 1: slower than skbp).
"""

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

import skbp
from skbp import BPClassifier, BPRegressor

from ._common import BENCH_DIR, command_line, header, log, output_path

if BENCH_DIR not in sys.path:  # the data loader's documented home: benchmarks/tabular_data.py
    sys.path.insert(0, BENCH_DIR)
import tabular_data  # noqa: E402

try:
    import torch
except ImportError:  # optional peer
    torch = None
try:
    import pytabkit
    from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor
except ImportError:  # optional peer
    pytabkit = None

#: a long suite: ``bench.py all`` runs it only when named
IN_ALL = False
SEED = 0
MODELS = ["HGB", "Linear", "MLP", "BP", "RealMLP", "Tabular"]
QUICK = ["Ionosphere", "Glass", "Servo"]


def available_models():
    """The models this installation can run, and a note for each one it cannot."""
    notes = {}
    if pytabkit is None or torch is None:
        notes["RealMLP"] = "RealMLP skipped: pytabkit or torch is not installed"
    if not hasattr(skbp, "TabularClassifier"):
        notes["Tabular"] = "Tabular skipped: this skbp has no TabularClassifier yet"
    return [m for m in MODELS if m not in notes], notes


def preprocessor(X):
    """Median imputation and scaling of numbers, one-hot of categorical columns."""
    cat = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    num = [c for c in X.columns if c not in cat]
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat),
        ]
    )


def impute_numbers(X):
    """Median imputation of the numeric columns only; categorical columns pass as they are."""
    cat = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    num = [c for c in X.columns if c not in cat]
    return ColumnTransformer(
        [("num", SimpleImputer(strategy="median"), num), ("cat", "passthrough", cat)],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def _with_params(est, **params):
    """Set the parameters that ``est`` has (an estimator not written yet may lack some)."""
    own = est.get_params()
    return est.set_params(**{k: v for k, v in params.items() if k in own})


def make_model(name, task, X, threads):
    """A fresh, unfitted estimator ``name`` for the task and columns of ``X``."""
    clf = task == "classification"

    def piped(est):
        pipe = Pipeline([("pre", preprocessor(X)), ("model", est)])
        if clf:
            return pipe
        return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())

    if name == "HGB":
        cls = HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor
        return cls(categorical_features="from_dtype", random_state=SEED)
    if name == "Linear":
        return piped(LogisticRegression(max_iter=1000) if clf else Ridge())
    if name == "MLP":
        return piped((MLPClassifier if clf else MLPRegressor)(random_state=SEED))
    if name == "BP":
        return piped((BPClassifier if clf else BPRegressor)(random_state=SEED, n_jobs=threads))
    if name == "RealMLP":
        cls = RealMLP_TD_Classifier if clf else RealMLP_TD_Regressor
        est = cls(device="cpu", random_state=SEED, n_threads=threads, verbosity=0)
        return Pipeline([("impute", impute_numbers(X)), ("model", est)])
    if name == "Tabular":
        cls = skbp.TabularClassifier if clf else skbp.TabularRegressor
        return _with_params(cls(), random_state=SEED, n_jobs=threads)
    raise KeyError(name)


@contextlib.contextmanager
def quiet():
    """Silence the peers' convergence and deprecation chatter during fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def warm_up(models, threads):
    """Fit each model once on a tiny set of each task, so compilation is not timed."""
    rng = np.random.default_rng(SEED)
    X = pd.DataFrame(rng.normal(size=(64, 3)), columns=["a", "b", "c"])
    X["d"] = pd.Categorical(rng.choice(["u", "v"], 64))
    ys = {
        "classification": np.where(X["a"] > 0, "p", "q"),
        "regression": X["a"].to_numpy() + 0.1 * rng.normal(size=64),
    }
    t0 = time.perf_counter()
    with quiet(), threadpool_limits(limits=threads):
        for task, y in ys.items():
            for name in models:
                make_model(name, task, X, threads).fit(X, y).predict(X)
    return time.perf_counter() - t0


def folds_for(ds, n_folds):
    """The same train/test index pairs for every model."""
    if ds.task == "classification":
        cv = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=SEED)
        return list(cv.split(ds.X, ds.y))
    cv = KFold(n_splits=n_folds, shuffle=True, random_state=SEED)
    return list(cv.split(ds.X))


def run_one(name, ds, folds, threads):
    """Cross-validate model ``name`` on ``ds``; per-fold scores and wall times."""
    out = {"score": [], "auc": [], "fit_s": [], "predict_s": []}
    binary = ds.task == "classification" and len(np.unique(ds.y)) == 2
    y_std = float(np.std(ds.y)) if ds.task == "regression" else None
    with quiet(), threadpool_limits(limits=threads):
        for train, test in folds:
            est = make_model(name, ds.task, ds.X, threads)
            X_tr, X_te = ds.X.iloc[train], ds.X.iloc[test]
            t0 = time.perf_counter()
            est.fit(X_tr, ds.y[train])
            t1 = time.perf_counter()
            pred = est.predict(X_te)
            t2 = time.perf_counter()
            out["fit_s"].append(t1 - t0)
            out["predict_s"].append(t2 - t1)
            if ds.task == "classification":
                out["score"].append(accuracy_score(ds.y[test], pred))
                if binary:
                    proba = est.predict_proba(X_te)
                    pos = list(est.classes_).index(np.unique(ds.y)[1])
                    out["auc"].append(
                        roc_auc_score(ds.y[test] == np.unique(ds.y)[1], proba[:, pos])
                    )
            else:
                rmse = float(np.sqrt(np.mean((np.asarray(pred, float) - ds.y[test]) ** 2)))
                out["score"].append(rmse / y_std)
                out.setdefault("rmse", []).append(rmse)
    return out


# ----------------------------------------------------------------------------- report


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def versions():
    import numba

    v = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "numba": numba.__version__,
        "skbp": skbp.__version__,
    }
    v["torch"] = torch.__version__ if torch is not None else "absent"
    v["pytabkit"] = importlib.metadata.version("pytabkit") if pytabkit is not None else "absent"
    return v


def _fmt_score(r, key="score"):
    if r is None:
        return "-"
    if "error" in r:
        return "error"
    vals = np.asarray(r[key])
    return f"{vals.mean():.3f} ± {vals.std():.3f}"


def _bold_best(cells, means, higher):
    ok = [m for m in means if m is not None]
    if not ok:
        return cells
    best = max(ok) if higher else min(ok)
    return [
        f"**{c}**" if m is not None and round(m, 3) == round(best, 3) else c
        for c, m in zip(cells, means, strict=True)
    ]


def _mean(r, key="score"):
    if r is None or "error" in r or not r.get(key):
        return None
    return float(np.mean(r[key]))


def table(results, sets, models, task, key="score"):
    """Markdown rows: one set per row, each model's mean ± std over folds."""
    higher = task == "classification"
    head = "| data (rows used x features) | " + " | ".join(models) + " |"
    lines = [head, "|" + "---|" * (len(models) + 1)]
    for s in sets:
        info = results[s]["info"]
        rows = f"{info['rows']:,}" + (
            f" of {info['rows_total']:,}" if info["rows"] < info["rows_total"] else ""
        )
        cells = [_fmt_score(results[s]["models"].get(m), key) for m in models]
        means = [_mean(results[s]["models"].get(m), key) for m in models]
        cells = _bold_best(cells, means, higher)
        lines.append(f"| {s} ({rows} x {info['features']}) | " + " | ".join(cells) + " |")
    return lines


def time_table(results, sets, models):
    """Markdown rows: mean fit and predict seconds per fold."""
    head = "| data | " + " | ".join(f"{m} fit / predict" for m in models) + " |"
    lines = [head, "|" + "---|" * (len(models) + 1)]
    for s in sets:
        cells = []
        for m in models:
            r = results[s]["models"].get(m)
            if r is None or "error" in r:
                cells.append("-")
            else:
                cells.append(f"{np.mean(r['fit_s']):.2f} / {np.mean(r['predict_s']):.3f}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def summary(results, sets, models, task):
    """Mean score, mean rank, wins against HGB and total times over the common sets."""
    higher = task == "classification"
    common = [
        s for s in sets if all(_mean(results[s]["models"].get(m)) is not None for m in models)
    ]
    lines = [
        f"Over the {len(common)} set(s) every model above ran on"
        + (f" (of {len(sets)})" if len(common) < len(sets) else "")
        + f"; score: {'accuracy, higher' if higher else 'RMSE / std(target), lower'} is better.",
        "",
        "| model | mean score | mean rank | vs HGB (win/tie/loss) | total fit s | fit time / BP's "
        "| total predict s |",
        "|---|---|---|---|---|---|---|",
    ]
    if not common:
        return lines[:1]
    scores = np.array([[_mean(results[s]["models"][m]) for m in models] for s in common])
    signed = -scores if higher else scores
    ranks = np.array([pd.Series(row).rank(method="average").to_numpy() for row in signed.round(3)])
    fit = {m: sum(np.sum(results[s]["models"][m]["fit_s"]) for s in common) for m in models}
    pred = {m: sum(np.sum(results[s]["models"][m]["predict_s"]) for s in common) for m in models}
    for j, m in enumerate(models):
        if "HGB" in models and m != "HGB":
            h = models.index("HGB")
            d = (signed[:, h] - signed[:, j]).round(3)
            vs = f"{int((d > 0).sum())}/{int((d == 0).sum())}/{int((d < 0).sum())}"
        else:
            vs = "-"
        ratio = f"{fit[m] / fit['BP']:.2f}" if "BP" in models and fit["BP"] > 0 else "-"
        lines.append(
            f"| {m} | {scores[:, j].mean():.4f} | {ranks[:, j].mean():.2f} | {vs} "
            f"| {fit[m]:.1f} | {ratio} | {pred[m]:.2f} |"
        )
    return lines


def report(results, meta, models):
    out = [
        "## skbp and its peers on real tabular data",
        "",
        f"machine: {meta['cpu']}, {meta['cores']} usable cores",
        "versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"folds: {meta['folds']} (stratified for classification), random_state=0; "
        "rows used: as the tables show",
    ]
    out += [
        f"run: `{r['command']}`"
        + (f" on {r['date']}" if "date" in r else "")
        + f": {r['threads']} thread(s) per model; load average "
        f"{r['load_start']} at start, {r.get('load_end', '?')} at end; "
        f"warm-up {r['warmup_s']:.1f} s (not timed)"
        for r in meta["runs"]
    ]
    out += [f"note: {n}" for n in meta["notes"]]
    for task in ("classification", "regression"):
        sets = [s for s in results if results[s]["info"]["task"] == task]
        if not sets:
            continue
        shown = [m for m in models if any(m in results[s]["models"] for s in sets)]
        metric = "accuracy" if task == "classification" else "RMSE / std(target)"
        out += ["", f"## {task.capitalize()}: {metric}, mean ± std over folds", ""]
        out += table(results, sets, shown, task)
        if task == "classification":
            binary = [s for s in sets if results[s]["info"]["classes"] == 2]
            if binary:
                out += ["", "ROC AUC on the two-class sets:", ""]
                out += table(results, binary, shown, task, key="auc")
        else:
            out += ["", "RMSE in the target's units:", ""]
            out += table(results, sets, shown, "regression", key="rmse")
        out += ["", "Seconds per fold, fit / predict:", ""]
        out += time_table(results, sets, shown)
        out += ["", f"Summary ({task}):", ""]
        out += summary(results, sets, shown, task)
        errors = [
            f"{s} / {m}: {r['error']}"
            for s in sets
            for m, r in results[s]["models"].items()
            if "error" in r
        ]
        out += ["", *(f"error: {e}" for e in errors)] if errors else []
    out += ["", "Data:", ""]
    out += [f"* {s}: {results[s]['info']['note']}" for s in results if results[s]["info"]["note"]]
    return "\n".join(out)


def add_arguments(p):
    p.add_argument(
        "--datasets",
        help="comma-separated names (default: all): " + ", ".join(tabular_data.DATASETS),
    )
    p.add_argument(
        "--models", help="comma-separated, of " + ", ".join(MODELS) + " (default: all available)"
    )
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--max-rows", type=int, default=10_000, help="subsample larger sets (0: never)")
    p.add_argument("--threads", type=int, default=usable_cores(), help="threads for every model")
    p.add_argument(
        "--mlbench", default=tabular_data.DEFAULT_MLBENCH_DIR, help="mlbench data folder"
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="raw per-fold results (default: benchmarks/output/tabular[_SUFFIX][_quick].json)",
    )
    p.add_argument("--resume", help="reuse results of a previous --json file (same folds)")
    p.add_argument("--report", help="only print the report of a --json file (no fits)")


def show(results, meta):
    """Print the report (every model that has a result)."""
    order = list(tabular_data.DATASETS)
    results = dict(sorted(results.items(), key=lambda kv: order.index(kv[0])))
    shown = [m for m in MODELS if any(m in results[s]["models"] for s in results)]
    text = report(results, meta, shown)
    print(text)


def run(args):
    header(args, "skbp benchmark: tabular", torch=True)
    if args.report:
        with open(args.report) as fh:
            raw = json.load(fh)
        show(raw["results"], raw["meta"])
        return
    if args.quick:
        args.folds = 2
        args.datasets = args.datasets or ",".join(QUICK)
    names = args.datasets.split(",") if args.datasets else list(tabular_data.DATASETS)
    unknown = [n for n in names if n not in tabular_data.DATASETS]
    if unknown:
        sys.exit(f"unknown data set(s) {unknown}; known: {', '.join(tabular_data.DATASETS)}")
    avail, skipped = available_models()
    models = args.models.split(",") if args.models else avail
    bad = [m for m in models if m not in MODELS]
    if bad:
        sys.exit(f"unknown model(s) {bad}; known: {', '.join(MODELS)}")
    notes = [skipped[m] for m in models if m in skipped]
    models = [m for m in models if m in avail]
    if torch is not None:
        torch.set_num_threads(args.threads)
    max_rows = args.max_rows or None

    results, runs = {}, []
    if args.resume and os.path.exists(args.resume):
        with open(args.resume) as fh:
            old_run = json.load(fh)
        results, runs = old_run["results"], old_run["meta"]["runs"]
    run = {
        "command": command_line(),
        "date": f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "threads": args.threads,
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    meta = {
        "cpu": cpu_model(),
        "cores": usable_cores(),
        "versions": versions(),
        "folds": args.folds,
        "notes": notes,
        "runs": runs,
    }

    json_path = args.json or output_path("tabular", args, "json")

    def save():
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=1)

    for name in names:
        ds = tabular_data.load(name, args.mlbench, max_rows, random_state=SEED)
        info = {
            "name": name,
            "task": ds.task,
            "rows": len(ds.X),
            "rows_total": ds.n_total,
            "features": ds.X.shape[1],
            "categorical": len(ds.categorical),
            "classes": len(np.unique(ds.y)) if ds.task == "classification" else None,
            "folds": args.folds,
            "note": ds.note,
        }
        old = results.get(name, {"info": {}, "models": {}})
        # an earlier run's results count only for the same rows and folds
        done = old["models"] if old["info"] == info else {}
        results[name] = {"info": info, "models": dict(done)}
        folds = folds_for(ds, args.folds)
        for m in models:
            if m in done:
                continue
            if "warmup_s" not in run:  # the first model this run fits: warm up, record the run
                print(f"warming up {', '.join(models)} ...", file=sys.stderr)
                run["warmup_s"] = warm_up(models, args.threads)
                runs.append(run)
            print(f"{name} ({len(ds.X)} x {ds.X.shape[1]}): {m} ...", file=sys.stderr, flush=True)
            try:
                r = run_one(m, ds, folds, args.threads)
            except Exception as exc:  # one failing peer must not lose the whole run
                r = {"error": f"{type(exc).__name__}: {exc}"[:200]}
            results[name]["models"][m] = r
            msg = r.get("error") or f"{np.mean(r['score']):.3f}, fit {np.sum(r['fit_s']):.1f} s"
            print(f"    {msg}", file=sys.stderr, flush=True)
            save()  # after every model, so that an interrupted run can --resume
    run["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    save()
    log(f"raw results written to {os.path.relpath(json_path)}")
    show(results, meta)
