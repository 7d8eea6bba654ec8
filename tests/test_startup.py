"""The command line starts fast (issue 11): ``--help`` and ``schema`` import no heavy library.

Which modules are loaded is checked, not how long it takes (the timing is in
``benchmarks/bench_startup.py``): in a fresh interpreter, since this one has imported them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import one_error, run
from typer.main import get_command

import costsim.backtest
import costsim.logs
import costsim.model.fit
from costsim import cli_fit, defaults, parallel
from costsim.cli import app
from costsim.inputs import local_bytes

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "launch_month.yaml"
DEPLOYMENTS = ROOT / "scenarios" / "deployments.yaml"
PILOT = ROOT / "scenarios" / "pilot.parquet"
# What a command imports when it runs, never to show its help
HEAVY = ("numpy", "scipy", "pandas", "pyarrow", "matplotlib", "dask", "distributed")
# The declared formats (pydantic): `schema` builds the scenario's, help none
DECLARATIONS = ("costsim.formats", "costsim.scenario")

# Run in a fresh interpreter: the top modules loaded after each step, as JSON on stdout.
PROBE = """
import json, sys
from typer.main import get_command
from typer.testing import CliRunner

def loaded():
    return sorted({name.split(".")[0] for name in sys.modules} | {
        name for name in sys.modules if name.startswith("costsim.")
    })

steps = {}
from costsim.cli import app
steps["import costsim.cli"] = loaded()
runner = CliRunner()
assert runner.invoke(app, ["--help"]).exit_code == 0
steps["costsim --help"] = loaded()
for name in get_command(app).commands:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, (name, result.output)
steps["costsim COMMAND --help"] = loaded()
result = runner.invoke(app, ["schema"])
assert result.exit_code == 0 and json.loads(result.stdout)
steps["costsim schema"] = loaded()
print(json.dumps(steps))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    steps: dict[str, list[str]] = json.loads(done.stdout)
    return steps


@pytest.mark.parametrize("step", ["import costsim.cli", "costsim --help", "costsim COMMAND --help"])
def test_help_imports_no_heavy_library_nor_a_format_declaration(
    loaded: dict[str, list[str]], step: str
) -> None:
    found = [m for m in (*HEAVY, *DECLARATIONS) if m in loaded[step]]
    assert not found, f"{step} imports {', '.join(found)}: import it inside the command"


def test_schema_imports_the_scenario_declaration_only(loaded: dict[str, list[str]]) -> None:
    found = [m for m in HEAVY if m in loaded["costsim schema"]]
    assert not found, f"costsim schema imports {', '.join(found)}"


def fresh(probe: str) -> str:
    """What ``probe`` prints, run in a fresh interpreter (this one has imported everything)."""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_the_fit_and_its_worker_processes_import_neither_scipy_stats_nor_signal() -> None:
    """`costsim.model.fit` is what `costsim fit` imports and what its worker processes import again
    (their fork server): scipy.stats and scipy.signal were half of its import time."""
    probe = (
        "import sys, costsim.model.fit, costsim.model.file, costsim.sources, "
        "costsim.report.dashboard; "
        "print(sorted({m for m in sys.modules if m in ('scipy.stats', 'scipy.signal')}))"
    )
    assert fresh(probe) == "[]"


@pytest.mark.parametrize(
    "args",
    [["forecast", "missing.yaml"], ["compare", "missing.yaml"],
     ["check", "missing.yaml", "--max", "p95=1"]],
)  # fmt: skip
def test_a_missing_scenario_is_told_before_the_simulation_is_imported(args: list[str]) -> None:
    """A typo in a path is said in a fraction of a second: the scenario is read before the
    simulation, the reports and the model file are imported (about 1.7 s of imports)."""
    probe = (
        "import sys; from typer.testing import CliRunner; from costsim.cli import app; "
        f"r = CliRunner().invoke(app, {args!r}); "
        "print(r.exit_code, sorted(m for m in ('costsim.simulate.forecast', 'costsim.model.file',"
        " 'costsim.report.forecast') if m in sys.modules))"
    )
    assert fresh(probe) == "2 []"


def test_a_missing_pilot_is_told_before_the_log_readers_are_imported() -> None:
    """`costsim fit` on a path that is not there says so in a fraction of a second, not after
    importing pyarrow and pandas (about a second)."""
    probe = (
        "import sys; from typer.testing import CliRunner; from costsim.cli import app; "
        "r = CliRunner().invoke(app, ['fit', 'missing.parquet']); "
        "print(r.exit_code, r.stderr.strip(), "
        "sorted(m for m in ('pyarrow', 'pandas', 'costsim.logs') if m in sys.modules))"
    )
    assert fresh(probe) == "2 error: pilot log not found: missing.parquet []"


def test_local_bytes_counts_a_parquet_file_or_dataset_up_to_enough(tmp_path: Path) -> None:
    (tmp_path / "d" / "part=1").mkdir(parents=True)
    (tmp_path / "d" / "_temporary").mkdir()
    for i in range(5):
        (tmp_path / "d" / "part=1" / f"{i}.parquet").write_bytes(b"x" * 100)
    for skipped in ("part=1/_SUCCESS", "part=1/.0.parquet.crc", "_temporary/9.parquet", "a.csv"):
        (tmp_path / "d" / skipped).write_bytes(b"z" * 1000)  # not read as the dataset's
    (tmp_path / "f.pq").write_bytes(b"y" * 42)
    (tmp_path / "f.csv").write_bytes(b"y" * 42)
    assert local_bytes(str(tmp_path / "f.pq"), 10**6) == 42
    assert local_bytes(str(tmp_path / "f.csv"), 10**6) == 0  # far fewer rows a byte
    assert local_bytes(str(tmp_path / "d"), 10**6) == 500
    assert local_bytes(str(tmp_path / "d"), 250) == 300  # stops once it has enough
    assert local_bytes(str(tmp_path / "missing"), 1) == 0
    assert local_bytes("s3://bucket/pilot/", 1) == 0


def test_a_large_local_log_starts_the_fork_server_before_the_fit_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[int, str]] = []
    monkeypatch.setattr(
        parallel.Parallel, "start_processes",
        lambda self, module, **_: started.append((self.workers, module)),
    )  # fmt: skip
    big, small = tmp_path / "big.parquet", tmp_path / "small.parquet"
    big.write_bytes(b"x" * cli_fit.EARLY_BYTES)
    small.write_bytes(b"x" * (cli_fit.EARLY_BYTES - 1))
    csv, export = tmp_path / "big.csv", tmp_path / "langfuse.jsonl"
    csv.write_bytes(b"x" * cli_fit.EARLY_BYTES)
    export.write_bytes(b"x" * cli_fit.EARLY_BYTES)
    cli_fit._start_workers_early(str(small), 2, None)
    cli_fit._start_workers_early(str(csv), 2, None)  # far fewer rows a byte than Parquet
    cli_fit._start_workers_early(str(export), 2, None)
    cli_fit._start_workers_early(str(big), 1, None)
    cli_fit._start_workers_early(str(big), 2, "tcp://somewhere:8786")
    monkeypatch.setenv(parallel.ENV_SCHEDULER, "tcp://somewhere:8786")
    cli_fit._start_workers_early(str(big), 2, None)
    assert started == []
    monkeypatch.delenv(parallel.ENV_SCHEDULER)
    cli_fit._start_workers_early(str(big), 3, None)
    cli_fit._start_workers_early(str(tmp_path), 2, None)  # a directory: its Parquet counted
    assert started == [(3, "costsim.model.fit"), (2, "costsim.model.fit")]


def test_the_defaults_help_shows_are_the_libraries_own() -> None:
    assert defaults.MIN_CLASS_ROWS == costsim.model.fit.MIN_CLASS_ROWS
    assert defaults.DRIFT_WINDOW_S == costsim.model.fit.DRIFT_WINDOW_S
    assert defaults.BACKTEST_TRIALS == costsim.backtest.DEFAULT_TRIALS
    assert costsim.logs.ColumnMap(**defaults.COLUMNS) == costsim.logs.ColumnMap()


# ---------------------------------------------------------------------------------------------
# --workers and --scheduler
# ---------------------------------------------------------------------------------------------

PARALLEL_COMMANDS = ("fit", "forecast", "check", "compare")


def test_the_commands_that_simulate_or_fit_take_workers_and_a_scheduler() -> None:
    commands = get_command(app).commands  # type: ignore[attr-defined]
    for name in PARALLEL_COMMANDS:
        options = {opt for param in commands[name].params for opt in param.opts}
        assert {"--workers", "--scheduler"} <= options, name


@pytest.mark.parametrize(
    "args",
    [
        ("fit", PILOT, "-o", "{tmp}/m.json"),
        ("forecast", SCENARIO),
        ("check", SCENARIO),
        ("compare", DEPLOYMENTS),
    ],
    ids=lambda args: str(args[0]),
)
def test_zero_workers_is_refused_in_one_line_before_any_work(
    args: tuple[object, ...], tmp_path: Path
) -> None:
    argv = [str(a).format(tmp=tmp_path) for a in args]
    one_error(run(*argv, "--workers", "0"), "--workers: expected 1 or more, got 0")
    assert not (tmp_path / "m.json").exists()
