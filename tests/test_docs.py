"""The documentation's contracts that need no Sphinx run (``.ci/run`` builds the site).

The HTML representation links to no site, every gallery example has the title
and cells sphinx-gallery renders, and README and docs name only files that exist
and install lines that work.
"""

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from skbp import BPClassifier, BPRegressor, TabularClassifier, TabularRegressor
from skbp.preprocessing import RobustSmoothClipScaler

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


@pytest.mark.parametrize(
    "cls",
    [BPClassifier, BPRegressor, TabularClassifier, TabularRegressor, RobustSmoothClipScaler],
)
def test_html_repr_links_to_no_site(cls):
    """The documentation is not hosted anywhere, so the HTML representation's "?"
    links nowhere (neither to a site that does not exist nor to scikit-learn's)."""
    assert cls()._get_doc_link() == ""
    assert '<a class="sk-estimator-doc-link' not in cls()._repr_html_()


def test_gallery_has_examples():
    assert len(EXAMPLES) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_gallery_example_format(path):
    """A title underlined with '=', prose cells, a figure, and no file written."""
    source = path.read_text()
    doc = ast.get_docstring(ast.parse(source), clean=False)
    lines = doc.strip().splitlines()
    assert len(lines) > 3 and set(lines[1]) == {"="} and len(lines[1]) >= len(lines[0])
    assert source.count("\n# %%\n") >= 2
    assert "plt.show()" in source and "savefig" not in source


# the distribution that provides each importable top-level module skbp uses
_DISTRIBUTIONS = {
    "numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn", "numba": "numba",
    "llvmlite": "llvmlite", "threadpoolctl": "threadpoolctl", "joblib": "joblib",
    "skl2onnx": "skl2onnx", "onnx": "onnx", "onnxruntime": "onnxruntime",
}  # fmt: skip


def _runtime_imports(path):
    """Top-level modules ``path`` imports at run time (not under ``TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    names = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _declared(extra=None):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in reqs}


def test_declared_dependencies_match_the_imports():
    """Every third-party module the package imports is declared: the core's in the
    dependencies, the ONNX export's in the ``onnx`` extra."""
    stdlib = set(__import__("sys").stdlib_module_names)
    for path in sorted((ROOT / "skbp").glob("*.py")):
        third = {m for m in _runtime_imports(path) if m not in stdlib and m != "skbp"}
        unknown = third - set(_DISTRIBUTIONS)
        assert not unknown, f"{path.name} imports {unknown}: map them to a distribution here"
        needed = {_DISTRIBUTIONS[m] for m in third}
        declared = _declared("onnx" if path.name == "onnx.py" else None) | _declared()
        assert needed <= declared, f"{path.name} needs {needed - declared}, not declared"


#: the documents whose references to repository files are checked
_DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "examples" / "README.rst", *(ROOT / "docs").glob("*.md")]
)
# a path into the repository (``skbp/_matmul.py``, ``tests/test_x.py::test_y``,
# ``benchmarks/RESULTS.md``, ``skbp/_prebuilt_ir/``), or a bare file name with an extension
_REPO_PATH = re.compile(
    r"(?<![\w./-])((?:skbp|tests|docs|examples|benchmarks|\.ci)/[\w./*-]*[\w/*])(?:::(\w+))?"
)
_MD_LINK = re.compile(r"\]\(([\w./-]+\.(?:md|rst|py))(?:#[\w-]*)?\)")


def _referenced_files(path):
    """(reference, resolved path, test name or None) for each file ``path`` names."""
    text = path.read_text()
    for match in _REPO_PATH.finditer(text):
        ref, test = match.group(1), match.group(2)
        if "_build" in ref or "auto_examples" in ref:
            continue  # made by the build
        yield ref, ROOT / ref, test
    for match in _MD_LINK.finditer(text):  # links relative to the document
        if "auto_examples" not in match.group(1):
            yield match.group(1), path.parent / match.group(1), None


@pytest.mark.parametrize("doc", _DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_name_only_files_that_exist(doc):
    """Every repository file (``tests/...::test``, glob) and benchmark subcommand
    (``python benchmarks/bench.py <subcommand>``) README and docs name exists."""
    missing = set()
    for ref, path, test in _referenced_files(doc):
        if not (any(path.parent.glob(path.name)) if "*" in ref else path.exists()):
            missing.add(ref)
        elif test is not None and not re.search(rf"^def {test}\b", path.read_text(), re.M):
            missing.add(f"{ref}::{test}")
    suites = ROOT / "benchmarks" / "suites"  # a subcommand is a suite module there
    for command in set(re.findall(r"python benchmarks/bench\.py ([\w-]+)", doc.read_text())):
        if command != "all" and not (suites / f"{command.replace('-', '_')}.py").exists():
            missing.add(f"benchmarks/bench.py {command}")
    assert not missing, f"{doc.name} names files or tests that do not exist: {sorted(missing)}"


def test_no_install_line_from_pypi():
    """skbp is not on PyPI: an install line for it names a checkout (``pip install -e``)."""
    pattern = re.compile(r"""pip install\s+(?:-U\s+|--upgrade\s+)?["']?skbp\b""")
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "skbp").glob("*.py")]
    files += [*(ROOT / "examples").glob("*.py"), ROOT / "examples" / "README.rst"]
    found = [
        f"{f.relative_to(ROOT)}: {m.group(0)}"
        for f in files
        if "_build" not in f.parts
        for m in pattern.finditer(f.read_text())
    ]
    assert not found, f"install lines for skbp from PyPI, where it is not published: {found}"


def _conf(monkeypatch, hidden=(), skip_long=False):
    """The namespace of ``docs/conf.py`` with the modules ``hidden`` not installed."""
    import importlib.util
    import runpy

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in hidden else find_spec(name, *a),
    )
    monkeypatch.setenv("SKBP_GALLERY_SKIP_LONG", "1" if skip_long else "0")
    return runpy.run_path(str(ROOT / "docs" / "conf.py"))


# the start of a page sphinx-gallery writes for an example
_GALLERY_PAGE = """.. rst-class:: sphx-glr-example-title

.. _sphx_glr_auto_examples_plot_x.py:


An example
==========

Its introduction.
"""


def test_gallery_page_of_an_example_whose_data_is_missing_says_so(monkeypatch):
    """An example whose data package is missing is not run, and its page says why
    and which command installs the package."""
    conf = _conf(monkeypatch, hidden={"plotnine"})
    pattern = re.compile(conf["sphinx_gallery_conf"]["filename_pattern"])
    assert not pattern.search("/examples/plot_diamonds_regression.py")
    assert pattern.search("/examples/plot_quickstart.py")
    note = conf["NOT_RUN"]["plot_diamonds_regression"]
    assert "not installed" in note and "``pip install --no-deps plotnine``" in note
    source = [_GALLERY_PAGE]
    conf["_note_examples_not_run"](None, "auto_examples/plot_diamonds_regression", source)
    head, _, rest = source[0].partition("==========\n")
    assert head.endswith("An example\n") and rest.startswith("\n.. warning::\n\n   This example")
    assert "Its introduction." in rest
    source = [_GALLERY_PAGE]
    conf["_note_examples_not_run"](None, "auto_examples/plot_quickstart", source)
    assert source == [_GALLERY_PAGE]


def test_gallery_page_of_the_long_example_skipped_says_how_to_run_it(monkeypatch):
    conf = _conf(monkeypatch, skip_long=True)
    note = conf["NOT_RUN"][conf["LONG_EXAMPLE"]]
    assert "SKBP_GALLERY_SKIP_LONG" in note and "python examples/plot_mnist.py" in note
    pattern = re.compile(conf["sphinx_gallery_conf"]["filename_pattern"])
    assert not pattern.search("/examples/plot_mnist.py")


def test_gallery_page_of_an_example_whose_results_file_is_missing_says_so(monkeypatch):
    """An example that plots a benchmark's recorded results is not run when the
    file is not there, and its page and the example name the command that makes it."""
    import os.path

    isfile = os.path.isfile
    monkeypatch.setattr(os.path, "isfile", lambda p: not p.endswith("tabular.json") and isfile(p))
    conf = _conf(monkeypatch)
    pattern = re.compile(conf["sphinx_gallery_conf"]["filename_pattern"])
    assert not pattern.search("/examples/plot_tabular_benchmark.py")
    assert pattern.search("/examples/plot_quickstart.py")
    path, make = conf["GALLERY_FILES"]["plot_tabular_benchmark"]
    note = conf["NOT_RUN"]["plot_tabular_benchmark"]
    assert f"``{path}``" in note and f"``{make}``" in note
    assert make in (ROOT / "examples" / "plot_tabular_benchmark.py").read_text()
    monkeypatch.undo()
    assert "plot_tabular_benchmark" not in _conf(monkeypatch)["NOT_RUN"]  # the file is there


def test_examples_name_the_install_command_the_docs_give(monkeypatch):
    """Each example that needs a data package stops with the command its page's
    note and examples/README.rst give."""
    readme = (ROOT / "examples" / "README.rst").read_text()
    for name, (module, install) in _conf(monkeypatch)["GALLERY_DATA"].items():
        source = (ROOT / "examples" / f"{name}.py").read_text()
        assert f'find_spec("{module}")' in source and install in source, name
        package = install.split()[-1]
        assert re.search(rf"pip install .*{re.escape(package)}", readme), package


def _fold(scores, fit_s):
    return {"score": scores, "auc": [], "fit_s": fit_s, "predict_s": [0.0] * len(scores)}


def _run_tabular_example(results_file):
    env = {**os.environ, "SKBP_TABULAR_RESULTS": str(results_file), "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "plot_tabular_benchmark.py")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_tabular_benchmark_example_summarises_the_file_it_reads(tmp_path):
    """The gallery's benchmark page computes its summary from the results file:
    only the sets every model ran on, a point (0.01) of HGB counted in each
    task's own direction, and the run's command and date printed."""
    info = {"task": "classification", "classes": 2}
    raw = {
        "meta": {
            "cpu": "a test CPU", "cores": 2, "versions": {"skbp": "0"}, "folds": 2, "notes": [],
            "runs": [{"command": "python benchmarks/bench.py tabular --test", "threads": 2,
                      "date": "2001-02-03 04:05 UTC", "load_start": "0 0 0"}],
        },
        "results": {
            "A": {"info": info, "models": {"HGB": _fold([0.96, 0.96], [1.0, 1.0]),
                                           "BP": _fold([0.95, 0.95], [0.5, 0.5])}},
            "B": {"info": info, "models": {"HGB": _fold([0.9, 0.9], [1.0, 1.0]),
                                           "BP": _fold([0.8, 0.8], [0.25, 0.25])}},
            "C": {"info": info, "models": {"HGB": _fold([0.5, 0.5], [9.0, 9.0]),
                                           "BP": {"error": "ValueError: broken"}}},
            "R": {"info": {"task": "regression", "classes": None},
                  "models": {"HGB": _fold([0.30, 0.30], [1.0, 1.0]),
                             "BP": _fold([0.32, 0.32], [2.0, 2.0])}},
        },
    }  # fmt: skip
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw))
    p = _run_tabular_example(path)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert "python benchmarks/bench.py tabular --test" in out and "2001-02-03 04:05 UTC" in out
    classification, regression = out.split("\nregression: RMSE")
    assert "over 2 sets" in classification  # C: BP has no scores there
    assert re.search(r"^HGB +0\.930 +4\.0 +- *$", classification, re.M)
    assert re.search(r"^BP +0\.875 +1\.5 +1/2 *$", classification, re.M)
    # lower is better: 0.02 above HGB's RMSE / std is two points worse
    assert re.search(r"^BP +0\.320 +4\.0 +0/1 *$", regression, re.M)


def test_tabular_benchmark_example_without_its_file_says_how_to_make_it(tmp_path):
    p = _run_tabular_example(tmp_path / "absent.json")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "python benchmarks/bench.py tabular --max-rows 5000 --threads 2" in p.stderr
