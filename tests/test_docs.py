"""The documentation's contracts that need no Sphinx run (``.ci/run`` builds the site).

The HTML representation links to no site, every gallery example has the title
and cells sphinx-gallery renders, and README and docs name only files that exist
and install lines that work.
"""

import ast
import re
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
