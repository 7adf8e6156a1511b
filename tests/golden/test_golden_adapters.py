"""Every built-in adapter (real ONNX Runtime, PyTorch and ml_dtypes kernels) validated against
the golden configuration it names; known departures are classified on the installed peers (seen
or not seen is measured, never assumed for a version), and nothing else differs."""

import argparse

import ml_dtypes  # noqa: F401  (the peers are test requirements: fail loudly if missing)
import numpy as np
import onnxruntime  # noqa: F401
import pytest
import torch  # noqa: F401

from qsim.golden import ADAPTERS, GoldenError, generate, get_adapter, load_golden, to_codes, validate, validate_kernel
from qsim.golden.cli import register


@pytest.fixture(scope="module")
def golden_dirs(tmp_path_factory):
    """One golden directory per distinct adapter configuration."""
    root = tmp_path_factory.mktemp("adapters")
    dirs = {}
    for adapter in ADAPTERS.values():
        key = repr(sorted(adapter.golden_config.items()))
        if key not in dirs:
            dirs[key] = root / f"g{len(dirs)}"
            generate(out_dir=dirs[key], **adapter.golden_config)
    return lambda adapter: dirs[repr(sorted(adapter.golden_config.items()))]


def test_the_required_adapters_exist():
    names = set(ADAPTERS)
    for required in ("ort-quantize-linear-e4m3-sat0", "ort-quantize-linear-e4m3-sat1", "ort-quantize-linear-uint8",
                     "ort-qlinear-matmul-u8s8", "ort-qlinear-conv-u8s8", "torch-cast-e4m3", "torch-cast-e5m2",
                     "torch-quantized-linear-fbgemm", "ml_dtypes-cast-e4m3", "ml_dtypes-cast-fp4_e2m1"):
        assert required in names
    for adapter in ADAPTERS.values():
        assert adapter.golden_config["op"] == adapter.op
        assert len(adapter.departs) > 40, adapter.name           # says what it matches and where it departs


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_adapter_matches_its_golden_configuration(name, golden_dirs):
    """No unexplained mismatch on the installed peer; every known departure is reported seen
    (and then only its mismatches are waived) or not seen, whichever the peer does."""
    adapter = ADAPTERS[name]
    result = adapter.validate(golden_dirs(adapter))
    assert result.ok, f"{name}: {result.mismatches} mismatches\n{result.table(5)}"
    strict = adapter.validate(golden_dirs(adapter), waivers=False)
    assert np.array_equal(strict.mismatch_index, result.waived_index), name      # waived = explained mismatches
    summary = result.departure_summary()
    assert [d["name"] for d in summary] == [d.name for d in adapter.departures]
    by_departure = [r["departure"] for r in strict.first(strict.mismatches)]
    table = result.table()
    for d in summary:
        assert d["seen"] == by_departure.count(d["name"]) <= d["in_domain"], d
        assert d["status"] in ("seen", "not seen", "not exercised") and (d["status"] == "seen") == (d["seen"] > 0)
        assert any(d["name"] in line and d["status"] in line for line in table.splitlines())
    if not adapter.departures:
        assert result.waived_mismatches == 0 and strict.ok, name


def test_without_waivers_every_departure_fails(golden_dirs):
    """Whatever the installed ONNX Runtime does: with waivers off, the waived codes fail, and each
    is inside the band with +-448 for the specification's NaN."""
    adapter = ADAPTERS["ort-quantize-linear-e4m3-sat0"]
    golden = load_golden(golden_dirs(adapter))
    waived = adapter.validate(golden).waived_mismatches
    strict = adapter.validate(golden, waivers=False)
    assert strict.mismatches == waived and strict.ok == (waived == 0)
    outputs = {f"{c.name}/y": np.asarray(adapter.run(c.inputs)) for c in golden.cases}
    assert validate(golden, outputs, nan_equal=True).mismatches == waived        # no adapter, no waivers
    rows = strict.first(waived)
    assert all(480 <= abs(float(r["inputs"]["x"].split()[0])) / 2 < 496 for r in rows)   # x / scale in the band
    assert {r["got_value"] for r in rows} <= {"448", "-448"} and {r["expected_value"] for r in rows} <= {"nan"}


def test_faults_in_a_real_kernel_output_are_caught_and_located(golden_dirs):
    adapter = ADAPTERS["ort-qlinear-matmul-u8s8"]
    golden = load_golden(golden_dirs(adapter))
    outputs = {f"{c.name}/y": np.asarray(adapter.run(c.inputs)) for c in golden.cases}
    assert validate(golden, outputs, departures=adapter.departures).ok     # MLAS without VNNI: explained
    rng = np.random.default_rng(99)
    names = [c.name for c in golden.cases]
    # faults go where the kernel gives the specification's code (not a departure's)
    clean = [(c.name, tuple(int(i) for i in p)) for c in golden.cases
             for p in np.argwhere(outputs[f"{c.name}/y"] == c.expected["y"])]
    for trial in range(100):
        name, pos = clean[int(rng.integers(len(clean)))]
        faulty = {k: v.copy() for k, v in outputs.items()}
        y = faulty[f"{name}/y"]
        y[pos] ^= np.uint8(1 << int(rng.integers(8)))
        r = validate(golden, faulty, departures=adapter.departures)
        assert r.mismatches == 1, trial
        row = r.first(1)[0]
        assert (row["case"], row["position"]) == (name, pos)
        assert row["inputs"]["K"] == str(golden.cases[names.index(name)].inputs["a"].shape[1])


def test_torch_cast_departs_from_ml_dtypes_on_e4m3_overflow(golden_dirs):
    """torch saturates E4M3FN, ml_dtypes does not: each matches its own configuration only."""
    torch_cast, ml_cast = ADAPTERS["torch-cast-e4m3"], ADAPTERS["ml_dtypes-cast-e4m3"]
    assert torch_cast.golden_config["saturate"] is True and ml_cast.golden_config["saturate"] is False
    # Adapter.validate refuses the other configuration; the kernel run on it shows the departure
    with pytest.raises(GoldenError, match="differs in saturate"):
        torch_cast.validate(golden_dirs(ml_cast))
    wrong = validate_kernel(golden_dirs(ml_cast), torch_cast.run, nan_equal=True)
    assert not wrong.ok and wrong.histogram.get("NaN vs number", 0) == wrong.mismatches


def test_adapter_refuses_a_golden_set_of_another_configuration(golden_dirs, tmp_path, capsys):
    """QLinearMatMul takes no bias: a gemm golden set made with a bias is refused, naming bias."""
    adapter = get_adapter("ort-qlinear-matmul-u8s8")
    assert adapter.config_differences(golden_dirs(adapter)) == []
    parser = argparse.ArgumentParser(prog="qsim")
    register(parser.add_subparsers())
    out = tmp_path / "with-bias"
    args = parser.parse_args(["golden", "gemm", "--datapath", "onnxruntime-x86", "--format", "uint8",
                              "--weight-format", "int8", "--out", str(out)])
    assert args.func(args) == 0
    capsys.readouterr()
    assert adapter.config_differences(out) == ["bias"]
    args = parser.parse_args(["validate", str(out), "--adapter", adapter.name])
    with pytest.raises(GoldenError, match=r"ort-qlinear-matmul-u8s8 .* differs in bias \(bias: adapter False, "
                                          r"golden set True\)"):
        args.func(args)
    with pytest.raises(GoldenError, match="differs in bias"):
        adapter.validate(out)
    # several keys are all named; keys the adapter does not set (seed, random) may differ
    generate(out_dir=tmp_path / "s8", op="gemm", datapath="onnxruntime-x86", format="int8", weight_format="uint8",
             bias=False, seed=3, random=1)
    with pytest.raises(GoldenError, match="differs in format, weight_format "):
        adapter.validate(tmp_path / "s8")
    generate(out_dir=tmp_path / "seeded", **{**adapter.golden_config, "seed": 11, "random": 2})
    assert adapter.validate(tmp_path / "seeded").ok
    # format names compare canonically; a key the adapter leaves None is not checked
    alias = get_adapter("torch-cast-bf16")
    assert alias.golden_config["saturate"] is None and alias.config_differences(golden_dirs(alias)) == []


def test_cli_validate_with_an_adapter(golden_dirs, capsys):
    parser = argparse.ArgumentParser(prog="qsim")
    register(parser.add_subparsers())
    adapter = get_adapter("ort-qlinear-conv-u8s8")
    args = parser.parse_args(["validate", str(golden_dirs(adapter)), "--adapter", adapter.name])
    assert args.func(args) == 0
    assert "PASS" in capsys.readouterr().out
    args = parser.parse_args(["validate", str(golden_dirs(get_adapter("torch-cast-e4m3"))), "--adapter", adapter.name])
    with pytest.raises(ValueError, match="runs op conv, the golden set is op encode"):
        args.func(args)


def test_adapter_outputs_read_as_codes(golden_dirs):
    """float32 results of a float8 kernel and int8 results are read as exact codes."""
    adapter = ADAPTERS["ort-quantize-linear-e5m2-sat1"]
    golden = load_golden(golden_dirs(adapter))
    case = golden.cases[0]
    got = adapter.run(case.inputs)
    assert got.dtype == np.float32
    assert np.array_equal(to_codes(got, "e5m2"), case.expected["y"].astype(np.uint64))
