"""skbp's benchmarks: skbp next to its peers, one subcommand per suite.

    python benchmarks/bench.py --help               # the suites, one line each
    python benchmarks/bench.py workloads --quick    # one suite, smoke run (seconds)
    python benchmarks/bench.py all                  # every suite but the long ones
    python benchmarks/bench.py all --out-suffix 16core

Each suite is a module ``benchmarks/suites/<name>.py`` (``first_use.py`` is the
subcommand ``first-use``) with a one-line docstring, ``add_arguments(parser)``
and ``run(args)``; a module that sets ``IN_ALL = False`` runs only when named.
The dispatcher adds ``--quick``, ``--out`` and ``--out-suffix`` to every suite
and writes what the suite prints to ``benchmarks/output/<name>.txt``.
"""

import argparse
import importlib
import os
import pkgutil
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
if BENCH_DIR not in sys.path:  # `suites` and `tabular_data` import from here
    sys.path.insert(0, BENCH_DIR)

import suites  # noqa: E402
from suites import _common  # noqa: E402


def discover():
    """``{subcommand: module}`` of every suite module, in name order."""
    found = {}
    for info in sorted(pkgutil.iter_modules(suites.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"suites.{info.name}")
        missing = [f for f in ("add_arguments", "run") if not callable(getattr(module, f, None))]
        if missing or not (module.__doc__ or "").strip():
            raise SystemExit(
                f"benchmarks/suites/{info.name}.py is not a suite: it needs a one-line "
                f"docstring, add_arguments(parser) and run(args) (missing: "
                f"{', '.join(missing) or 'the docstring'})"
            )
        found[info.name.replace("_", "-")] = module
    return found


def summary(module):
    """The first line of a suite's docstring, for ``--help``."""
    return module.__doc__.strip().splitlines()[0]


def _common_arguments(p):
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repeat")
    p.add_argument(
        "--out-suffix", metavar="SUFFIX",
        help="write benchmarks/output/<suite>_SUFFIX.txt (e.g. 16core)",
    )  # fmt: skip


def build_parser(found):
    p = argparse.ArgumentParser(
        prog="python benchmarks/bench.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="suite", metavar="SUITE", required=True)
    long_ones = [name for name, m in found.items() if not getattr(m, "IN_ALL", True)]
    every = sub.add_parser(
        "all",
        help="every suite below in turn with its defaults"
        + (f", except {', '.join(long_ones)} (run it by name)" if long_ones else ""),
        description="Every suite in turn with its defaults, each writing its own output.",
    )
    _common_arguments(every)
    every.add_argument("--skip", default="", help="suites to leave out, comma-separated")
    for name, module in found.items():
        sp = sub.add_parser(
            name,
            help=summary(module),
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _common_arguments(sp)
        sp.add_argument("--out", metavar="FILE", help="raw output file (default: see --out-suffix)")
        module.add_arguments(sp)
    return p, sub


def run_suite(name, module, args):
    path = _common.output_path(name, args)
    t0 = time.perf_counter()
    with _common.tee(path):
        module.run(args)
        print()
        print(f"Total {time.perf_counter() - t0:.0f} s.")


def main(argv=None):
    found = discover()
    parser, sub = build_parser(found)
    args = parser.parse_args(argv)
    if args.suite != "all":
        run_suite(args.suite, found[args.suite], args)
        return
    skip = {s for s in args.skip.split(",") if s}
    unknown = skip - set(found)
    if unknown:
        parser.error(f"--skip: unknown suite(s) {sorted(unknown)}; known: {', '.join(found)}")
    common = ["--quick"] if args.quick else []
    common += ["--out-suffix", args.out_suffix] if args.out_suffix else []
    for name, module in found.items():
        if name in skip or not getattr(module, "IN_ALL", True):
            continue
        _common.log(f"== {name}")
        run_suite(name, module, sub.choices[name].parse_args(common))


if __name__ == "__main__":
    main()
