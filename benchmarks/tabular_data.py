"""Real tabular data sets that install offline, for the tabular benchmark suite.

Three sources, none downloaded at run time by a data-set hub:

* the classification and regression sets of the R package mlbench, read from
  Debian's ``r-cran-mlbench`` without installing R: ``apt-get download
  r-cran-mlbench``, ``dpkg -x`` into a folder, then the ``data/*.rda`` files
  with ``pyreadr`` (:func:`find_mlbench` does this when the folder is empty);
* ``diamonds``, the CSV file that ships inside the ``plotnine`` package (read
  from its folder, so plotnine's plotting dependencies are not needed:
  ``pip install --no-deps plotnine`` is enough);
* scikit-learn's ``digits``.

Every loader returns the features as a pandas DataFrame in the form
``HistGradientBoosting*(categorical_features="from_dtype")`` takes: numbers as
float64 with NaN for missing values, unordered factors as unordered
``category`` columns (missing values stay NaN). Ordered factors become numbers,
their level's rank (0, 1, ...), because their order carries information that a
category throws away; pyreadr reads every factor as unordered, so the ordered
ones are listed here as R's ``str()`` of each set shows them. Columns that
identify a row (BreastCancer's ``Id``) are dropped, and so are the rows whose
target is missing (Ozone).
"""

import dataclasses
import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pandas as pd

DEFAULT_MLBENCH_DIR = os.path.join("~", ".cache", "skbp-bench", "mlbench")


@dataclasses.dataclass(frozen=True)
class Spec:
    """How one mlbench set is read: its target, task and column fixes."""

    target: str
    task: str  # "classification" or "regression"
    drop: tuple = ()
    ordered: tuple = ()


MLBENCH = {
    "LetterRecognition": Spec("lettr", "classification"),
    "Shuttle": Spec("Class", "classification"),
    "Satellite": Spec("classes", "classification"),
    "DNA": Spec("Class", "classification"),
    "Vehicle": Spec("Class", "classification"),
    "Vowel": Spec("Class", "classification"),
    "Sonar": Spec("Class", "classification"),
    "Ionosphere": Spec("Class", "classification"),
    "PimaIndiansDiabetes": Spec("diabetes", "classification"),
    "BreastCancer": Spec(
        "Class",
        "classification",
        drop=("Id",),
        ordered=("Cl.thickness", "Cell.size", "Cell.shape", "Marg.adhesion", "Epith.c.size"),
    ),
    "Glass": Spec("Type", "classification"),
    "Soybean": Spec(
        "Class",
        "classification",
        ordered=("plant.stand", "precip", "temp", "germ", "leaf.size"),
    ),
    "HouseVotes84": Spec("Class", "classification"),
    "BostonHousing": Spec("medv", "regression"),
    # V4: the daily maximum one-hour-average ozone reading
    "Ozone": Spec("V4", "regression"),
    "Servo": Spec("Class", "regression"),
}
OTHERS = {"diamonds": "regression", "digits": "classification"}
DATASETS = {**{k: s.task for k, s in MLBENCH.items()}, **OTHERS}

# diamonds' ordered factors, lowest level first (ggplot2's definition)
DIAMONDS_LEVELS = {
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["D", "E", "F", "G", "H", "I", "J"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}


@dataclasses.dataclass
class Dataset:
    """Features, target and what was done to them."""

    name: str
    task: str
    X: pd.DataFrame
    y: np.ndarray
    n_total: int
    note: str = ""

    @property
    def categorical(self):
        return [c for c in self.X.columns if isinstance(self.X[c].dtype, pd.CategoricalDtype)]


def _rda_folder(root):
    """The folder under ``root`` that holds mlbench's ``.rda`` files, or None."""
    hits = glob.glob(os.path.join(root, "**", "BreastCancer.rda"), recursive=True)
    return os.path.dirname(sorted(hits)[0]) if hits else None


def find_mlbench(root=DEFAULT_MLBENCH_DIR, extract=True):
    """Return the folder of mlbench's ``.rda`` files under ``root``.

    When ``root`` holds none and ``extract`` is true, Debian's
    ``r-cran-mlbench`` package is downloaded with ``apt-get download`` and
    unpacked into ``root`` with ``dpkg -x`` (no R installation needed).

    Raises
    ------
    FileNotFoundError
        When the files are absent and cannot be extracted; the message says
        how to get them.
    """
    root = os.path.expanduser(root)
    folder = _rda_folder(root)
    if folder is not None or not extract:
        if folder is None:
            raise FileNotFoundError(_how_to_get(root, "no mlbench .rda files"))
        return folder
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        raise FileNotFoundError(_how_to_get(root, "no mlbench .rda files, and no apt-get/dpkg"))
    os.makedirs(root, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            ["apt-get", "download", "r-cran-mlbench"], cwd=tmp, capture_output=True, text=True
        )
        debs = glob.glob(os.path.join(tmp, "r-cran-mlbench_*.deb"))
        if got.returncode != 0 or not debs:
            reason = f"`apt-get download r-cran-mlbench` failed: {got.stderr.strip()[-300:]}"
            raise FileNotFoundError(_how_to_get(root, reason))
        subprocess.run(["dpkg", "-x", debs[0], root], check=True)
    folder = _rda_folder(root)
    if folder is None:
        raise FileNotFoundError(_how_to_get(root, "the unpacked package has no .rda files"))
    return folder


def _how_to_get(root, reason):
    return (
        f"{reason} in {root}. On Debian or Ubuntu run `apt-get update` once, then "
        f"`apt-get download r-cran-mlbench && dpkg -x r-cran-mlbench_*.deb {root}`; "
        "elsewhere copy the data/*.rda files of the R package mlbench into that folder, "
        "or leave the mlbench sets out with --datasets."
    )


def _frame(df, spec):
    """Features in HistGradientBoosting's form and the target, per the module's rules."""
    df = df.drop(columns=list(spec.drop))
    if spec.task == "regression":
        df = df[df[spec.target].notna()]
    y = df[spec.target]
    X = df.drop(columns=[spec.target]).copy()
    for col in X.columns:
        s = X[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            if col in spec.ordered:
                X[col] = s.cat.codes.astype("float64").where(s.notna())
            else:
                X[col] = s.cat.remove_unused_categories()
        elif pd.api.types.is_numeric_dtype(s):
            X[col] = s.astype("float64")
        else:
            raise TypeError(f"column {col!r} of dtype {s.dtype} has no rule in tabular_data")
    if spec.task == "classification":
        y = y.astype(str).to_numpy()
    else:
        y = y.to_numpy(dtype="float64")
    return X.reset_index(drop=True), y


def load_mlbench(name, folder):
    """One mlbench set from the folder of its ``.rda`` files."""
    import pyreadr

    spec = MLBENCH[name]
    df = pyreadr.read_r(os.path.join(folder, name + ".rda"))[name]
    X, y = _frame(df, spec)
    note = f"target {spec.target}"
    if spec.ordered:
        note += f"; {len(spec.ordered)} ordered factors as ranks"
    if spec.drop:
        note += f"; dropped {', '.join(spec.drop)}"
    if len(df) != len(X):
        note += f"; {len(df) - len(X)} rows without target dropped"
    return Dataset(name, spec.task, X, y, len(X), note)


def load_diamonds():
    """plotnine's diamonds: log(price) from carat, cut, color, clarity and sizes."""
    spec = importlib.util.find_spec("plotnine")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "diamonds ships in the plotnine package: `pip install --no-deps plotnine`, "
            "or leave it out with --datasets"
        )
    path = os.path.join(spec.submodule_search_locations[0], "data", "diamonds.csv")
    df = pd.read_csv(path)
    y = np.log(df.pop("price").to_numpy(dtype="float64"))
    for col, levels in DIAMONDS_LEVELS.items():
        df[col] = pd.Categorical(df[col], categories=levels, ordered=True).codes.astype("float64")
    X = df.astype("float64")
    return Dataset(
        "diamonds", "regression", X, y, len(X), "target log(price); cut/color/clarity as ranks"
    )


def load_digits():
    """scikit-learn's 8 x 8 digits."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    X = pd.DataFrame(d.data, columns=[f"p{i}" for i in range(d.data.shape[1])])
    return Dataset("digits", "classification", X, d.target.astype(str), len(X), "")


def load(name, mlbench_dir=DEFAULT_MLBENCH_DIR, max_rows=None, random_state=0):
    """Load one set by name, subsampled to ``max_rows`` (stratified for classification)."""
    if name == "diamonds":
        ds = load_diamonds()
    elif name == "digits":
        ds = load_digits()
    elif name in MLBENCH:
        ds = load_mlbench(name, find_mlbench(mlbench_dir))
    else:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if max_rows is not None and len(ds.X) > max_rows:
        from sklearn.model_selection import train_test_split

        strat = ds.y if ds.task == "classification" else None
        idx, _ = train_test_split(
            np.arange(len(ds.X)), train_size=max_rows, stratify=strat, random_state=random_state
        )
        idx = np.sort(idx)
        ds.X = ds.X.iloc[idx].reset_index(drop=True)
        ds.y = ds.y[idx]
        for col in ds.categorical:
            ds.X[col] = ds.X[col].cat.remove_unused_categories()
    return ds
