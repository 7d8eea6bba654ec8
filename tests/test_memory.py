"""`costsim.memory.tune_malloc`: malloc tuned for the command line's own process, never a
number changed by it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from costsim.memory import USER_TUNING

ROOT = Path(__file__).resolve().parents[1]
PROBE = "from costsim.memory import tune_malloc; print(tune_malloc())"
COSTSIM = [sys.executable, "-c", "from costsim.cli import main; main()"]


def _env(**changes: str) -> dict[str, str]:
    """This process's environment without the malloc settings under test, then ``changes``:
    a Dask LocalCluster started by another test in this process sets MALLOC_TRIM_THRESHOLD_
    in os.environ, which a user's tuning would look like."""
    ours = {"COSTSIM_MALLOC", *USER_TUNING}
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update(changes)
    return env


def _probe(**changes: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=_env(**changes), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt: Linux only")
def test_malloc_is_tuned_unless_the_user_says_otherwise() -> None:
    # on glibc (the CI's C library) mallopt accepts both settings
    assert _probe() == "True"
    assert _probe(COSTSIM_MALLOC="default") == "False"
    assert _probe(COSTSIM_MALLOC="DEFAULT") == "False"
    # the user's own tuning through glibc's environment variables is left alone
    assert _probe(MALLOC_TRIM_THRESHOLD_="1000000") == "False"
    assert _probe(MALLOC_MMAP_THRESHOLD_="1000000") == "False"


def test_a_forecast_is_the_same_bytes_with_malloc_tuned_or_not(tmp_path: Path) -> None:
    out = {}
    for name, env in (("tuned", _env()), ("default", _env(COSTSIM_MALLOC="default"))):
        target = tmp_path / f"{name}.json"
        cmd = ["forecast", str(ROOT / "scenarios" / "launch_month.yaml"), "--trials", "2000"]
        done = subprocess.run(
            [*COSTSIM, *cmd, "--json", str(target), "-q"], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        out[name] = target.read_bytes()
    assert out["tuned"] == out["default"]
