"""``python -m skbp``: a demo; ``info``: what this installation has; ``compile``: compile ahead.

python -m skbp                     # the demo: a grid search on digits, skbp next to scikit-learn
python -m skbp info                # version, compile path, cache folder, threading layer, cores
python -m skbp compile             # compile every kernel, float64 and float32
python -m skbp compile --dtype float32
python -m skbp compile --jobs 1     # in this one process (default: one process per core)
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def _info() -> None:
    import numba
    import sklearn

    import skbp

    from ._numba_support import PLAIN
    from ._numba_support import describe as describe_path
    from ._runtime import parallel_available

    print(
        f"skbp {skbp.__version__} (scikit-learn {sklearn.__version__}, numba {numba.__version__})"
    )
    if numba.config.DISABLE_JIT:
        print(
            "NUMBA_DISABLE_JIT=1: the kernels run as plain Python (correct, and very slow); "
            "nothing is compiled or cached"
        )
        print(f"cores: {os.cpu_count()}")
        return
    layer = numba.threading_layer() if parallel_available() else "none (serial)"
    print(f"compile path: {describe_path()}")
    if PLAIN:
        print("kernel cache: Numba's own (NUMBA_CACHE_DIR, else __pycache__ next to skbp)")
        print("shipped kernels: not used on the plain path")
    else:
        from ._cache import describe as describe_cache
        from ._prebuilt import describe

        print(f"kernel cache: {describe_cache()}")
        print(f"shipped kernels: {describe()}")
    print(f"threading layer: {layer}; cores: {os.cpu_count()}")
    print("`python -m skbp compile` compiles every kernel ahead of time.")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m skbp",
        description="skbp's command line: a demo (the default), what this installation has "
        "(info), and compiling every kernel ahead of time (compile).",
    )
    sub = p.add_subparsers(dest="command")
    c = sub.add_parser(
        "compile",
        help="compile (or load) every kernel into the on-disk cache",
        description="Compile every kernel family for the given dtypes into the on-disk "
        "cache, in parallel processes. On a warm cache it checks the cache and says so "
        "per dtype and kernel family, compiling nothing.",
    )
    c.add_argument(
        "--dtype", choices=("float32", "float64", "both"), default="both",
        help="the kernels of which input dtype (default: both)",
    )  # fmt: skip
    c.add_argument(
        "--jobs", type=int, default=None,
        help="processes compiling at once (default: the cores available; 1: in this process)",
    )  # fmt: skip
    sub.add_parser(
        "info",
        help="what this installation has",
        description="The versions, the compile path serving (skbp's own or plain Numba, "
        "and why), the kernel cache, the shipped kernels, the threading layer and cores.",
    )
    sub.add_parser("demo", help="a grid search on digits, skbp next to scikit-learn (the default)")
    args = p.parse_args(argv)
    if args.command == "compile":
        import logging

        import numba

        if numba.config.DISABLE_JIT:
            print("nothing to compile: NUMBA_DISABLE_JIT=1 runs the kernels as plain Python")
            return 0

        from ._compile import compile_all

        logging.getLogger("skbp").setLevel(logging.ERROR)  # this command reports itself
        dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
        if args.jobs is not None and args.jobs < 1:
            p.error(f"--jobs must be at least 1, got {args.jobs}")
        compile_all(dtypes, jobs=args.jobs)
    elif args.command == "info":
        _info()
    else:
        from ._demo import main as demo

        demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
