"""Which Numba skbp's own compile path is tested with, and the plain path elsewhere.

skbp's compile path relies on Numba internals: link-only pipelines for the
internal kernels (``skbp._linkonly``), a hardened on-disk cache
(``skbp._cache``), the shipped LLVM IR store (``skbp._prebuilt``) and
intrinsics written as LLVM IR (``skbp._intrinsics``, the register tiles of
``skbp._matmul``).  Those internals change between Numba releases, so that
path runs only on the Numba releases CI tests (:data:`TESTED_NUMBA`, the same
range as ``pyproject.toml``'s bounds).

Anywhere else -- a Numba outside that range, or ``SKBP_PLAIN_NUMBA=1`` in the
environment -- every kernel is a plain ``numba.njit(cache=True)`` function,
the intrinsics are ordinary jitted code and the products call ``np.dot``:
the same results up to rounding, slower to compile, cached by Numba's own
cache; none of the modules above is imported.  The choice is made once, at
import (:data:`PLAIN`).
"""

from __future__ import annotations

import os
import re

import numba

#: the Numba releases skbp's compile path is tested with: ``(first, last)``
#: ``(major, minor)``, inclusive; keep equal to pyproject.toml's ``numba`` bounds
TESTED_NUMBA = ((0, 59), (0, 68))
#: the llvmlite releases those Numba releases require (pyproject.toml's bounds)
TESTED_LLVMLITE = ((0, 42), (0, 50))
#: the environment variable that forces the plain path (CI runs the tests with it too)
PLAIN_ENV = "SKBP_PLAIN_NUMBA"


def _release(version: str) -> tuple[int, int] | None:
    """``(major, minor)`` of a version string, ``None`` if it has none."""
    m = re.match(r"(\d+)\.(\d+)", version)
    return None if m is None else (int(m.group(1)), int(m.group(2)))


def _range(bounds: tuple[tuple[int, int], tuple[int, int]]) -> str:
    (a, b), (c, d) = bounds
    return f"{a}.{b}-{c}.{d}"


def plain_reason() -> str | None:
    """Why this process uses plain ``numba.njit(cache=True)``; ``None`` if skbp's own path."""
    if os.environ.get(PLAIN_ENV, "").strip().lower() not in ("", "0", "false", "no", "off"):
        return f"{PLAIN_ENV}={os.environ[PLAIN_ENV]}"
    release = _release(numba.__version__)
    if release is None or not TESTED_NUMBA[0] <= release <= TESTED_NUMBA[1]:
        return f"Numba {numba.__version__} outside the tested range {_range(TESTED_NUMBA)}"
    return None


_REASON = plain_reason()
#: whether this process compiles its kernels with plain ``numba.njit(cache=True)``
PLAIN = _REASON is not None


def describe() -> str:
    """One line on the compile path serving this process, for ``python -m skbp info``."""
    if PLAIN:
        return f"plain numba.njit(cache=True): {_REASON}"
    return f"Numba {numba.__version__}: tested range {_range(TESTED_NUMBA)}, skbp's compile path"
