"""One place for the JIT policy of skbp's compiled core.

Every kernel is decorated at module level with :data:`JIT_OPTIONS`, so that

* ``nogil=True`` lets several fits run side by side in Python threads;
* ``cache=True`` writes the machine code next to the sources, so only the very
  first fit on a machine pays the compile time (see ``benchmarks/RESULTS.md``);
* ``error_model="numpy"`` makes a division by zero give ``inf``/``nan`` instead
  of raising, which removes an exception check from every inner loop; the
  training loop detects non-finite values itself;
* ``fastmath`` is restricted to :data:`FASTMATH`: it never contains ``nnan``
  or ``ninf``, so ``np.isfinite`` and ``x != x`` keep working inside kernels and
  a diverging fit is detected rather than silently producing NaN (umap learned
  this the hard way).  ``afn`` (approximate ``exp``/``log``) is left out too, so
  activations and losses are as accurate as NumPy's.

Kernels only ever see C-contiguous float32/float64 arrays, int64 index arrays,
Python scalars and integer option codes, so each kernel has at most two
compiled versions (float32 and float64).
"""

FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

JIT_OPTIONS = {
    "nogil": True,
    "cache": True,
    "error_model": "numpy",
    "fastmath": FASTMATH,
}
