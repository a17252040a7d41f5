"""The benchmark suites of ``benchmarks/bench.py``, one module per subcommand."""
