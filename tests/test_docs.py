"""The documentation's contracts that need no Sphinx run (``.ci/run`` builds the site).

The HTML representation links to the API pages ``docs/api.rst`` generates, and
every gallery example has the title and cells sphinx-gallery renders.
"""

import ast
import re
from pathlib import Path

import pytest

from skbp import BPClassifier, BPRegressor
from skbp._base import DOC_URL

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("cls", [BPClassifier, BPRegressor])
def test_html_repr_links_to_the_api_page(cls):
    link = cls()._get_doc_link()
    assert link == f"{DOC_URL}generated/skbp.{cls.__name__}.html"
    assert link in cls()._repr_html_()
    # the page of that name is one docs/api.rst generates
    api = (ROOT / "docs" / "api.rst").read_text()
    assert ":toctree: generated/" in api and re.search(rf"^\s+{cls.__name__}$", api, re.M)


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
