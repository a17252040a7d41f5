"""Collection rules for the doctests of ``skbp/`` (``--doctest-modules``).

``skbp/onnx.py`` needs the ``onnx`` extra (skl2onnx); without it the module is
left out of doctest collection instead of failing it.  The test extra
installs it, so CI collects it.
"""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("skl2onnx") else ["skbp/onnx.py"]
