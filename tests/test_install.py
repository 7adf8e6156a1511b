"""The tests exercise the compiled build, not a stray source tree, and the command line works.

In CI qsim is a regular install into site-packages and QSIM_REQUIRE_INSTALLED=1 is set, so
importing qsim from this checkout fails the run. In a developer's editable install
(meson-python) the Python files load from the source tree and the extensions from build/.
"""

import importlib.machinery
import json
import os
import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path

import pytest

import qsim
import qsim._kernels._floatcodec
import qsim._kernels._intcodec

REPO = Path(__file__).resolve().parents[1]
SOURCE_PACKAGE = REPO / "qsim"
KERNELS = [qsim._kernels._floatcodec, qsim._kernels._intcodec]


def is_under(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def is_in_site_packages(path) -> bool:
    return bool({"site-packages", "dist-packages"} & set(Path(path).resolve().parts))


def extension_is_in_a_build_dir(module) -> bool:
    return "build" in Path(module.__file__).resolve().parts


@pytest.mark.parametrize("module", KERNELS, ids=lambda m: m.__name__)
def test_kernels_are_compiled_extensions(module):
    path = module.__file__
    assert path is not None
    assert path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), path
    assert isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader)


def test_qsim_comes_from_an_install_or_an_editable_build():
    qsim_file = Path(qsim.__file__)
    if os.environ.get("QSIM_REQUIRE_INSTALLED") == "1":
        assert is_in_site_packages(qsim_file), f"qsim imported from {qsim_file}"
        assert not is_under(qsim_file, SOURCE_PACKAGE), f"qsim imported from the source tree {qsim_file}"
        for module in KERNELS:
            assert not extension_is_in_a_build_dir(module), f"{module.__name__} loaded from {module.__file__}"
            assert is_in_site_packages(module.__file__), module.__file__
        direct_url = distribution("qsim").read_text("direct_url.json")
        if direct_url:
            assert not json.loads(direct_url).get("dir_info", {}).get("editable", False), direct_url
    elif is_under(qsim_file, SOURCE_PACKAGE):
        # only acceptable as an editable install, whose extensions are built in build/
        for module in KERNELS:
            assert extension_is_in_a_build_dir(module), (
                f"qsim imported from the source tree but {module.__name__} is {module.__file__}, not a build")


def test_version_comes_from_package_metadata():
    assert qsim.__version__ == distribution("qsim").version


def test_console_script_is_declared():
    (script,) = entry_points(group="console_scripts", name="qsim")
    assert script.value == "qsim.cli:main"


# -- command line ---------------------------------------------------------------------------
def cli(*args):
    return subprocess.run([sys.executable, "-P", "-m", "qsim.cli", *args], capture_output=True, text=True, timeout=120)


def encoded(stdout: str) -> dict:
    """Map input -> (code, decoded) from `qsim encode` output (a header line, then rows)."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        value, code, decoded = line.split()
        rows[float(value)] = (code, decoded)
    return rows


def test_cli_formats():
    r = cli("formats")
    assert r.returncode == 0, r.stderr
    assert "e4m3" in r.stdout and "448" in r.stdout
    assert "fp4_e2m1" in r.stdout and "int8" in r.stdout


def test_cli_formats_by_kind():
    r = cli("formats", "--kind", "int")
    assert r.returncode == 0, r.stderr
    assert "int8" in r.stdout and "e4m3" not in r.stdout


def test_cli_encode_saturates_e4m3_by_default():
    r = cli("encode", "e4m3", "464", "465")
    assert r.returncode == 0, r.stderr
    assert "saturate=True" in r.stdout
    assert encoded(r.stdout) == {464.0: ("0x7e", "448"), 465.0: ("0x7e", "448")}


def test_cli_encode_no_saturate():
    r = cli("encode", "--no-saturate", "e4m3", "464", "465")
    assert r.returncode == 0, r.stderr
    assert encoded(r.stdout) == {464.0: ("0x7e", "448"), 465.0: ("0x7f", "nan")}


def test_cli_encode_16bit_and_stochastic():
    r = cli("encode", "bf16", "1", "-2.5")
    assert r.returncode == 0, r.stderr
    assert encoded(r.stdout) == {1.0: ("0x3f80", "1"), -2.5: ("0xc020", "-2.5")}
    a = cli("encode", "fp4_e2m1", "--rounding", "stochastic", "--seed", "1", "0.3", "0.3", "0.3")
    b = cli("encode", "fp4_e2m1", "--rounding", "stochastic", "--seed", "1", "0.3", "0.3", "0.3")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout


@pytest.mark.parametrize("args", [["--help"], ["encode", "--help"], ["formats", "--help"]])
def test_cli_help(args):
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout


def test_cli_without_a_command_prints_help():
    r = cli()
    assert r.returncode == 0
    assert "encode" in r.stdout and "formats" in r.stdout


def test_cli_unknown_format():
    r = cli("encode", "e4m3x", "1")
    assert r.returncode == 2
    assert "unknown format" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["encode", "e4m3", "abc"], "invalid float value"),
    (["encode", "fp4_e2m1", "nan"], "NaN"),
    (["encode", "fp4_e2m1", "--no-saturate", "1"], "saturate=True"),
    (["encode", "e4m3", "--rounding", "sideways", "1"], "unknown rounding"),
    (["encode", "e4m3", "--rounding", "stochastic", "1"], "seed"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_bad_arguments(args, message):
    r = cli(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
