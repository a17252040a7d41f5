"""The benchmark harness's contracts: every suite module is found, imports and
registers its arguments; the tabular suite's raw results go where the gallery
reads them (one quick run on digits with a linear model, the only fits here)."""

import fnmatch
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUITES = ROOT / "benchmarks" / "suites"
MODULES = sorted(p.stem for p in SUITES.glob("*.py") if not p.stem.startswith("_"))


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def found(bench):
    return bench.discover()


def test_every_suite_module_is_a_subcommand(found):
    assert sorted(found) == sorted(m.replace("_", "-") for m in MODULES)
    assert {"workloads", "threads", "busy", "search", "first-use", "products", "tabular"} <= set(
        found
    )


def test_help_lists_every_suite_with_its_one_line_summary(bench, found, capsys):
    parser, _ = bench.build_parser(found)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, module in found.items():
        summary = " ".join(module.__doc__.strip().splitlines()[0].split())
        assert f"{name} {summary}" in text
    assert "all every suite" in text


@pytest.mark.parametrize("name", [m.replace("_", "-") for m in MODULES])
def test_suite_registers_its_arguments(bench, found, name):
    _, sub = bench.build_parser(found)
    args = sub.choices[name].parse_args(["--quick", "--out-suffix", "16core"])
    assert args.quick and args.out_suffix == "16core"
    # the suite's own options have defaults: its run needs no more than this
    own = {a.dest for a in sub.choices[name]._actions} - {"help", "quick", "out", "out_suffix"}
    assert all(hasattr(args, dest) for dest in own)
    assert callable(found[name].run)
    path = bench._common.output_path(name, args)
    assert Path(path).name == f"{name.replace('-', '_')}_16core_quick.txt"
    json_path = bench._common.output_path(name, args, "json")
    assert Path(json_path).name == f"{name.replace('-', '_')}_16core_quick.json"


def test_tabular_writes_its_raw_results_beside_its_report(bench, monkeypatch, tmp_path, capsys):
    """The raw per-fold results (the gallery's input) go to
    ``benchmarks/output/tabular[_quick].json``, named like the report, which git
    ignores for a quick run; ``--json`` writes them elsewhere and ``--resume``
    reuses them without fitting again."""
    monkeypatch.setattr(bench._common, "OUTPUT_DIR", str(tmp_path))
    quick = ["tabular", "--quick", "--datasets", "digits", "--models", "Linear", "--threads", "1"]
    bench.main(quick)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tabular_quick.json", "tabular_quick.txt"]
    raw = json.loads((tmp_path / "tabular_quick.json").read_text())
    assert raw["results"]["digits"]["info"]["task"] == "classification"
    assert len(raw["results"]["digits"]["models"]["Linear"]["fit_s"]) == 2  # --quick: 2 folds
    (run,) = raw["meta"]["runs"]
    assert run["command"] and run["date"]  # where the figures come from
    ignored = [ln for ln in (ROOT / ".gitignore").read_text().splitlines() if "*" in ln]
    for name in ("tabular_quick.json", "tabular_quick.txt"):
        assert any(fnmatch.fnmatch(f"benchmarks/output/{name}", g) for g in ignored), name

    elsewhere = tmp_path / "elsewhere.json"
    capsys.readouterr()
    bench.main([*quick, "--resume", str(tmp_path / "tabular_quick.json"), "--json", str(elsewhere)])
    assert "digits (" not in capsys.readouterr().err  # nothing fitted again
    assert json.loads(elsewhere.read_text())["results"] == raw["results"]


def test_a_new_suite_module_is_found_without_touching_the_dispatcher(bench, tmp_path):
    (tmp_path / "example_suite.py").write_text(
        '"""Ensembles next to their peers."""\n\n'
        "def add_arguments(parser):\n"
        "    parser.add_argument('--members', type=int, default=5)\n\n"
        "def run(args):\n"
        "    print(args.members)\n"
    )
    (tmp_path / "broken.py").write_text('"""No run function."""\n')
    suites = sys.modules["suites"]
    suites.__path__.append(str(tmp_path))
    try:
        missing = "broken.py is not a suite.*missing: add_arguments, run"
        with pytest.raises(SystemExit, match=missing):
            bench.discover()
        (tmp_path / "broken.py").unlink()
        found = bench.discover()
        assert "example-suite" in found
        _, sub = bench.build_parser(found)
        assert sub.choices["example-suite"].parse_args(["--members", "3"]).members == 3
    finally:
        suites.__path__.remove(str(tmp_path))
        for name in ("suites.example_suite", "suites.broken"):
            sys.modules.pop(name, None)
