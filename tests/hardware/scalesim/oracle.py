"""SCALE-Sim v3 (`scalesim` 3.0.0) as an oracle: its own virtual environment (it needs numpy<2,
which qsim cannot share), created on first use, driven as a subprocess (run_scalesim.py).

QSIM_SCALESIM_PYTHON names an existing interpreter with scalesim installed; otherwise the
environment is made under QSIM_SCALESIM_VENV (default: a directory in the system temp dir that
later sessions reuse) with pip from the package registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
DRIVER = HERE / "run_scalesim.py"
REFERENCE = HERE / "reference.jsonl"
# What scalesim 3.0.0 imports when it runs (numpy, tqdm), installed without its declared
# dependencies (pandas, numba, matplotlib, absl-py, cython: none imported on this path), which
# takes the cold start of this environment from about 60 s to about 20 s. numpy < 2: numpy 2
# raises a TypeError in its double_buffered_scratchpad_mem.py.
REQUIREMENTS = ("scalesim==3.0.0", "numpy<2", "tqdm")


def scalesim_python() -> str:
    """An interpreter that imports scalesim, the virtual environment made if needed."""
    given = os.environ.get("QSIM_SCALESIM_PYTHON")
    if given:
        return given
    venv = Path(os.environ.get("QSIM_SCALESIM_VENV", Path(tempfile.gettempdir()) / "qsim-scalesim-venv"))
    python = venv / "bin" / "python"
    if not _imports_scalesim(python):
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", *REQUIREMENTS], check=True)
    return str(python)


def _imports_scalesim(python: Path) -> bool:
    return python.exists() and subprocess.run([str(python), "-c", "import scalesim.scale_sim"],
                                              capture_output=True).returncode == 0


def run_scalesim(runs: list[dict]) -> list[dict]:
    """SCALE-Sim's counts for each run (see run_scalesim.py for the fields)."""
    text = "".join(json.dumps(r) + "\n" for r in runs)
    done = subprocess.run([scalesim_python(), str(DRIVER)], input=text, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"scalesim failed:\n{done.stderr[-4000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def load_reference() -> list[dict]:
    return [json.loads(line) for line in REFERENCE.read_text().splitlines() if line.strip()]
