"""qsim probe: the probes separate the parameters of a matrix unit's arithmetic, and the fit
recovers them from black boxes: qsim's own units and MMA-Sim's models (the oracle). The full
table runs in benchmarks/probe_recovery.py."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from qsim.cli import main
from qsim.datapaths.matrix_units import matrix_unit
from qsim.datapaths.probe import (ProbeError, fit, load_probes, make_probes, qsim_device, run_device)

# One CI pass runs these (fits units against mmasim); the order and thread passes leave them out
pytestmark = pytest.mark.slow


def _assert_recovered(result, unit):
    """Every parameter of the unit's arithmetic (step as one instruction runs it) is among the
    values that explain every probe; where one value does, it is the fitted one."""
    true = dataclasses.replace(unit.arithmetic, step=min(unit.arithmetic.step, unit.k))
    assert result.exact, result.report()
    for name, values in result.consistent.items():
        assert getattr(true, name) in values, (name, values, result.report())
        if len(values) == 1:
            assert getattr(result.arithmetic, name) == getattr(true, name), name
    assert unit.name in [n for _, score, names in result.closest if score == result.total for n in names]


@cache
def _qsim_fit(name):
    return fit(make_probes(name), device=qsim_device(name))


QSIM_UNITS = ["volta/mma/m8n8k4.f16.f16.f16.f16", "hopper/wgmma/m64n8k32.f32.e4m3.e4m3"]


@pytest.mark.parametrize("name", QSIM_UNITS)
def test_recovers_qsim_units(name):
    unit = matrix_unit(name)
    result = _qsim_fit(name)
    _assert_recovered(result, unit)
    for key in ("fraction_bits", "step", "output"):
        assert len(result.consistent[key]) == 1, (key, result.consistent[key])


def test_lowest_exponent_observed_where_the_formats_reach_it():
    """FP16 in, FP16 out: products reach below the output's subnormals, so lowest_exponent is
    pinned; e4m3 products with an FP32 addend never go below -126: a range, the truth in it."""
    assert _qsim_fit("volta/mma/m8n8k4.f16.f16.f16.f16").consistent["lowest_exponent"] == [-19]
    r = _qsim_fit("hopper/wgmma/m64n8k32.f32.e4m3.e4m3")
    lows = r.consistent["lowest_exponent"]
    assert -133 in lows and len(lows) > 1 and max(lows) < -120


def test_a_different_unit_is_told_apart():
    """A device one fraction bit short of Volta's, and rounding to nearest, is fitted as such,
    and no unit of the shape explains it fully."""
    unit = matrix_unit("volta/mma/m8n8k4.f32.f16.f16.f32")
    other = dataclasses.replace(unit, arithmetic=dataclasses.replace(unit.arithmetic, fraction_bits=22,
                                                                     output="rne-fp32"))
    result = fit(make_probes(unit), device=qsim_device(other))
    assert result.exact and result.arithmetic.fraction_bits == 22 and result.arithmetic.output == "rne-fp32"
    best = result.closest[0]
    assert unit.name not in best[2] or best[1] < result.total


def test_unexplained_probes_are_listed():
    """One output bit flipped on the device: the fit names that probe as unexplained."""
    name = "volta/mma/m8n8k4.f32.f16.f16.f32"
    ps = make_probes(name)
    d = run_device(ps, qsim_device(name))
    idx = next(i for i, p in enumerate(ps.probes) if p.family == "output")
    t, i = ps.where(idx)
    d.view(np.uint32)[t, i, i] ^= 1
    result = fit(ps, d)
    assert not result.exact and result.matched == result.total - 1
    assert [(u["family"], u["note"]) for u in result.unexplained] == [("output", ps.probes[idx].note)]
    assert "unexplained (1)" in result.report()


def test_probes_are_deterministic_and_exact():
    a, b = make_probes("hopper/wgmma/m64n8k32.f32.e5m2.e4m3"), make_probes("hopper/wgmma/m64n8k32.f32.e5m2.e4m3")
    assert np.array_equal(a.a, b.a) and np.array_equal(a.c.view(np.uint32), b.c.view(np.uint32))
    assert {p.family for p in a.probes} == {"fraction-bits", "step", "group", "output", "lowest-exponent", "specials"}


def test_bad_device_outputs():
    ps = make_probes("volta/mma/m8n8k4.f32.f16.f16.f32")
    with pytest.raises(ProbeError, match="shape"):
        fit(ps, np.zeros((1, 8, 8), np.float32))
    with pytest.raises(ProbeError, match="dtype|float64"):
        fit(ps, np.zeros(ps.c.shape, np.float64))
    with pytest.raises(ProbeError, match="exactly one"):
        fit(ps)


def test_cli_emit_and_fit(tmp_path, capsys):
    name = "volta/mma/m8n8k4.f32.f16.f16.f32"
    assert main(["probe", name, "--emit", str(tmp_path)]) == 0
    ps = load_probes(tmp_path)
    np.savez(tmp_path / "d.npz", d=qsim_device(name)(ps.a, ps.b, ps.c))
    capsys.readouterr()
    assert main(["probe", "--fit", str(tmp_path / "d.npz")]) == 0
    out = capsys.readouterr().out
    assert "every probe: bit-exact" in out and name in out
    np.savez(tmp_path / "d.npz", x=np.zeros(3))
    assert main(["probe", "--fit", str(tmp_path / "d.npz")]) == 2
    assert "no array 'd'" in capsys.readouterr().err
    assert main(["probe", "volta/mma/m8n8k4.f32.f16.f16.f33"]) == 2
    assert "closest" in capsys.readouterr().err
    assert main(["probe", name, "--device", "gpu"]) == 2


def test_gpu_probe_script_is_import_safe():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).parents[2] / "benchmarks" / "gpu_probe.py"
    spec = importlib.util.spec_from_file_location("gpu_probe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.UNIT.startswith("hopper/wgmma/")
    if not module.cuda_available():
        assert module.main([]) == 0         # prints why it skipped


# -- the oracle: MMA-Sim's models as black boxes ---------------------------------------------------
MMASIM_UNITS = [pytest.param("hopper/wgmma/m64n8k32.f32.e5m2.e4m3", marks=pytest.mark.slow),  # FP8, e8m13
                "hopper/wgmma/m64n8k16.f16.f16.f16",             # FP16 out, RNE
                pytest.param("blackwell/tcgen05.mma/m64n8k32.kind::f8f6f4.f32.e2m1.e4m3",   # narrow inputs, F = 25
                             marks=pytest.mark.slow)]


@pytest.mark.parametrize("name", MMASIM_UNITS)
def test_recovers_mmasim_units(name):
    pytest.importorskip("mmasim")
    from qsim.golden import mmasim
    unit = matrix_unit(name)
    result = fit(make_probes(unit), device=mmasim.device(unit))
    _assert_recovered(result, unit)
