"""Golden vectors: generation per op, directed edge cases, the on-disk round trip, clear errors
for corrupt directories and bad outputs, fault detection, reports and the CLI."""

import argparse
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import qsim
from qsim.datapaths import Accumulator, int_matmul
from qsim.golden import (Adapter, Case, Golden, GoldenError, compare, generate, load_golden, load_outputs, make_golden,
                         read_hex, validate, validate_kernel, write_golden)
from qsim.golden.cli import register

CONFIGS = {
    "encode-e4m3": dict(op="encode", format="e4m3", saturate=False),
    "encode-int8-scaled": dict(op="encode", format="int8", scale=0.25, zero_point=-5),
    "encode-fp4-stochastic": dict(op="encode", format="fp4_e2m1", rounding="stochastic", seed=7),
    "decode-fp16": dict(op="decode", format="fp16"),
    "decode-fp32": dict(op="decode", format="fp32"),
    "gemm-ort": dict(op="gemm", datapath="onnxruntime-x86", bias=False),
    "gemm-acc16-hardware": dict(op="gemm", datapath="edge-npu-int8-acc16"),
    "gemm-h100-fp8": dict(op="gemm", datapath="h100-fp8-like"),
    "gemm-h100-fp8-hardware": dict(op="gemm", datapath="h100-fp8"),      # y and y_out (bf16)
    "conv-mi300-hardware": dict(op="conv", datapath="mi300-fp8fnuz"),
    "gemm-mxfp4": dict(op="gemm", datapath="mxfp4"),
    "conv-fbgemm": dict(op="conv", datapath="fbgemm-vnni"),
    "conv-bf16": dict(op="conv", datapath="bf16-fp32acc"),
    "requant-gemmlowp": dict(op="requant", datapath="gemmlowp"),
    "mx-e4m3": dict(op="mx", format="e4m3"),
}


@pytest.fixture(scope="module")
def goldens(tmp_path_factory):
    """Every configuration written once; tests read copies."""
    root = tmp_path_factory.mktemp("golden")
    return {name: (generate(out_dir=root / name, **cfg), root / name) for name, cfg in CONFIGS.items()}


def flat_expected(golden) -> np.ndarray:
    """The expected output codes (uint64), as the .hex files of the outputs hold them."""
    return np.concatenate([golden.codes(o) for o in golden.outputs])


# -- generation and round trip --------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CONFIGS))
def test_round_trip_same_arrays_same_hashes(goldens, name, tmp_path):
    golden, path = goldens[name]
    back = load_golden(path, check_hex=True)                 # every hash, shape and hex line checked
    assert [c.name for c in back.cases] == [c.name for c in golden.cases]
    for a, b in zip(golden.cases, back.cases):
        for key in [*a.inputs, *a.expected]:
            want, got = golden.array(a, key), back.array(b, key)
            assert got.dtype == want.dtype and got.shape == want.shape
            assert np.array_equal(got.view(f"u{got.dtype.itemsize}"), want.view(f"u{want.dtype.itemsize}")), key
    # the stored config regenerates byte-identical files
    again = generate(out_dir=tmp_path / "again", **back.config)
    first = json.loads((path / "manifest.json").read_text())["files"]
    second = json.loads((tmp_path / "again" / "manifest.json").read_text())["files"]
    assert first == second
    assert again.total == golden.total
    # the expected outputs themselves validate, from the hex files and from the arrays
    assert validate(path, flat_expected(back)).ok
    if len(golden.outputs) == 1:
        assert validate(path, path / f"{golden.outputs[0]}.hex").ok


def test_manifest_records_the_configuration(goldens):
    manifest = json.loads((goldens["encode-e4m3"][1] / "manifest.json").read_text())
    assert manifest["qsim_version"] == qsim.__version__
    assert manifest["config"]["format"] == "e4m3" and manifest["config"]["rounding"] == "rne"
    assert manifest["config"]["saturate"] is False and manifest["config"]["seed"] == 0
    assert manifest["info"]["overflow"] == "overflow to NaN"
    assert {c["kind"] for c in manifest["cases"]} == {"directed", "random"}
    assert all(len(f["sha256"]) == 64 for f in manifest["files"].values())
    hw = json.loads((goldens["gemm-acc16-hardware"][1] / "manifest.json").read_text())
    assert hw["info"]["hardware"] == "edge-npu-int8-acc16"
    assert hw["info"]["datapath"]["accumulator"] == {"bits": 16, "overflow": "saturate", "order": "sequential",
                                                    "pair_saturate16": False}
    assert manifest["config"]["rounding_seed"] is None
    stoch = json.loads((goldens["encode-fp4-stochastic"][1] / "manifest.json").read_text())
    assert stoch["config"]["rounding_seed"] == 7


def test_hex_files_are_readmemh_words(goldens):
    golden, path = goldens["gemm-ort"]
    lines = (path / "a.hex").read_text().splitlines()
    assert lines[0].startswith("//")
    assert all(len(line) == 2 for line in lines[1:])           # uint8 codes: 2 hex digits
    scale = (path / "a_scale.hex").read_text().splitlines()[1:]
    assert scale[0] == f"{int(golden.cases[0].inputs['a_scale'].view(np.uint32)):08x}"
    _, conv = goldens["requant-gemmlowp"]
    y = read_hex(conv / "y.hex")                               # int8 outputs in two's complement
    g = load_golden(conv)
    assert np.array_equal(y, (g.stream("y").astype(np.int64) & 0xFF).astype(np.uint64))
    mx_golden, mx = goldens["mx-e4m3"]
    assert all(len(line) == 2 for line in (mx / "scales.hex").read_text().splitlines()[1:])
    assert mx_golden.formats["scales"] == "e8m0"


# -- directed edge cases ----------------------------------------------------------------------------
def case(golden, name):
    return next(c for c in golden.cases if c.name == name)


def expected_for(golden, case_name, x) -> int:
    c = case(golden, case_name)
    xs = c.inputs["x"]
    i = np.flatnonzero((xs == x) & (np.signbit(xs) == np.signbit(np.float32(x))))
    assert i.size, f"{x} not in case {case_name}"
    return int(c.expected["y"].reshape(-1)[i[0]])


def test_encode_e4m3_directed_edges(goldens):
    g = goldens["encode-e4m3"][0]
    assert expected_for(g, "overflow", 448.0) == 0x7E
    assert expected_for(g, "overflow", 464.0) == 0x7E          # the tie rounds to even (448)
    assert expected_for(g, "overflow", 480.0) == 0x7F          # non-saturating overflow: NaN
    assert expected_for(g, "overflow", -480.0) == 0xFF
    assert expected_for(g, "specials", -0.0) == 0x80
    assert expected_for(g, "specials", np.inf) == 0x7F
    assert expected_for(g, "subnormals", 2.0 ** -9) == 0x01
    assert expected_for(g, "subnormals", 2.0 ** -10) == 0x00   # half the smallest subnormal: tie to 0
    assert expected_for(g, "subnormals", 1.5 * 2.0 ** -9) == 0x02
    assert expected_for(g, "subnormals", 2.0 ** -6 - 2.0 ** -10) == 0x08   # into the normal range
    ties = case(g, "ties").inputs["x"]
    assert ties.size > 200 and (ties < 0).any()
    assert np.isnan(case(g, "specials").inputs["x"]).sum() == 2


def test_encode_e5m2_overflow_tie_goes_to_inf():
    g = make_golden("encode", format="e5m2")
    assert expected_for(g, "overflow", 61440.0) == 0x7C        # 57344's mantissa is odd
    assert expected_for(g, "overflow", 57344.0) == 0x7B


def test_encode_int_ties_and_bounds(goldens):
    g = goldens["encode-int8-scaled"][0]
    c = case(g, "ties")
    x, y = c.inputs["x"], c.expected["y"]
    assert float(c.inputs["scale"]) == 0.25 and int(c.inputs["zero_point"]) == -5
    q = x.astype(np.float64) / 0.25
    assert np.all(q % 1 == 0.5)
    assert np.array_equal(y, np.clip(np.rint(q) - 5, -128, 127))   # half to even
    o = case(g, "overflow")
    assert o.expected["y"].min() == -128 and o.expected["y"].max() == 127


def test_decode_is_exhaustive_for_small_formats(goldens):
    g = goldens["decode-fp16"][0]
    assert len(g.cases) == 1 and g.cases[0].inputs["codes"].size == 1 << 16
    assert g.formats["y"] == "fp32"


def test_gemm_accumulator_overflow_really_overflows(goldens):
    for name, limit in (("gemm-ort", 2 ** 31), ("gemm-acc16-hardware", 2 ** 15)):
        c = case(goldens[name][0], "accumulator-overflow")
        exact = int_matmul(c.inputs["a"], c.inputs["b"], c.inputs["a_zero"], c.inputs["b_zero"], Accumulator(64))
        assert np.all(np.abs(exact[:, :2]) >= limit), name      # both extreme columns leave the range
        assert np.all(np.abs(exact[:, 2]) < limit), name        # the control column stays inside
    c = case(goldens["conv-fbgemm"][0], "accumulator-overflow")
    assert c.inputs["x"].shape[1] * 255 * 127 >= 2 ** 31


def test_ties_of_narrow_unsigned_weights_sit_near_their_zero_points():
    """uint4 weights: the tie cases keep weights near the middle of the range, not clipped to 15."""
    for op, name, weights in (("gemm", "requant-ties", "b"), ("conv", "requant-ties", "w")):
        c = case(make_golden(op, datapath="onnxruntime-x86", weight_format="uint4"), name)
        w = c.inputs[weights].astype(int)
        assert np.unique(w).size > 1 and np.all(np.abs(w - 8) <= 4), op


def test_requant_ties_land_on_half(goldens):
    c = case(goldens["requant-gemmlowp"][0], "ties")
    m = float(c.inputs["x_scale"]) * float(c.inputs["w_scale"]) / float(c.inputs["y_scale"])
    exact = c.inputs["acc"].astype(np.float64) * m
    assert (np.abs(exact % 1) == 0.5).sum() >= 40 and (exact < 0).any()


def test_mx_directed_blocks(goldens):
    g = goldens["mx-e4m3"][0]
    assert case(g, "nan-block").expected["scales"].tolist() == [[0xFF]]
    assert case(g, "zero-block").expected["scales"].tolist() == [[0]]
    assert case(g, "max-exponent").expected["scales"].tolist() == [[127 - 8 + 127]]
    assert case(g, "min-exponent").expected["scales"].tolist() == [[0]]
    assert case(g, "partial-block").expected["scales"].shape == (2, 2)
    clamp = case(g, "clamp").expected["elements"]
    assert (clamp == 0x7E).any() and (clamp == 0xFE).any()       # +-448 after clamping


# -- corrupt or mismatched golden directories ---------------------------------------------------------
@pytest.fixture
def ort_copy(goldens, tmp_path):
    dst = tmp_path / "g"
    shutil.copytree(goldens["gemm-ort"][1], dst)
    return dst


def rewrite_manifest(path, edit):
    """Edit manifest.json and sign it again (manifest_sha256), so that the checks behind the
    manifest's own hash are reached."""
    from qsim.golden.store import manifest_digest
    m = json.loads((path / "manifest.json").read_text())
    edit(m)
    m["manifest_sha256"] = manifest_digest(m)
    (path / "manifest.json").write_text(json.dumps(m))


def test_missing_file_is_named(ort_copy):
    (ort_copy / "b_zero.hex").unlink()
    with pytest.raises(GoldenError, match=r"missing file b_zero\.hex"):
        load_golden(ort_copy)


def test_hash_mismatch_is_named(ort_copy):
    with open(ort_copy / "a.hex", "a") as f:
        f.write("00\n")
    with pytest.raises(GoldenError, match=r"a\.hex: sha256 mismatch"):
        validate(ort_copy, np.zeros(1))


def test_wrong_shape_is_named(ort_copy):
    rewrite_manifest(ort_copy, lambda m: m["cases"][0]["shapes"].update(a=[17, 3]))
    with pytest.raises(GoldenError, match=r"key 'zero-points/a' has shape \(3, 17\), manifest.json says \(17, 3\)"):
        load_golden(ort_copy)


def test_missing_key_is_named(ort_copy):
    rewrite_manifest(ort_copy, lambda m: m["cases"][1]["shapes"].update(extra=[2]))
    with pytest.raises(GoldenError, match=r"missing key 'per-channel/extra'"):
        load_golden(ort_copy)


def test_corrupt_manifest_is_named(ort_copy):
    (ort_copy / "manifest.json").write_text('{"op": "gemm", ')
    with pytest.raises(GoldenError, match=r"manifest\.json: corrupt JSON"):
        load_golden(ort_copy)
    (ort_copy / "manifest.json").write_text('{"op": "gemm"}')
    with pytest.raises(GoldenError, match=r"manifest\.json: missing key 'qsim_golden'"):
        load_golden(ort_copy)


def test_malformed_manifest_entries_are_named(ort_copy):
    rewrite_manifest(ort_copy, lambda m: m["cases"][0].pop("shapes"))
    with pytest.raises(GoldenError, match=r"manifest\.json: malformed \(KeyError: 'shapes'\)"):
        load_golden(ort_copy)
    rewrite_manifest(ort_copy, lambda m: m.update(cases="zero-points"))
    with pytest.raises(GoldenError, match=r"manifest\.json: malformed \(TypeError"):
        load_golden(ort_copy)


def test_corrupt_npz_with_matching_hash_is_named(ort_copy):
    (ort_copy / "golden.npz").write_bytes(b"not a zip")
    import hashlib
    digest = hashlib.sha256(b"not a zip").hexdigest()
    rewrite_manifest(ort_copy, lambda m: m["files"]["golden.npz"].update(sha256=digest))
    with pytest.raises(GoldenError, match=r"golden\.npz: unreadable"):
        load_golden(ort_copy)


def test_not_a_golden_directory(tmp_path):
    with pytest.raises(GoldenError, match="missing manifest.json"):
        load_golden(tmp_path)
    with pytest.raises(GoldenError, match="not a directory"):
        load_golden(tmp_path / "nope")


# -- bad outputs ---------------------------------------------------------------------------------
def test_outputs_of_wrong_length_or_shape(goldens):
    golden, path = goldens["gemm-ort"]
    good = flat_expected(golden)
    with pytest.raises(GoldenError, match=rf"\({good.size - 1},\).*expects {good.size} values"):
        validate(path, good[:-1])
    with pytest.raises(GoldenError, match="have shape"):
        validate(path, good.reshape(1, -1))
    with pytest.raises(GoldenError, match=r"case 'zero-points' \(y\) have shape \(15,\).*\(3, 5\)"):
        validate(path, {f"{c.name}/y": c.expected["y"].reshape(-1) for c in golden.cases})
    with pytest.raises(GoldenError, match="expected the output names"):
        validate(path, {"wrong": good, "keys": good})


def test_bad_output_files(goldens, tmp_path):
    golden, path = goldens["encode-e4m3"]
    good = flat_expected(golden).astype(np.uint8)
    raw = tmp_path / "y.bin"
    good.tofile(raw)
    with pytest.raises(GoldenError, match="raw binary outputs need a dtype"):
        validate(path, raw)
    assert validate(path, raw, dtype="uint8").ok
    (tmp_path / "odd.bin").write_bytes(b"abc")
    with pytest.raises(GoldenError, match="3 bytes is not a whole number of uint16"):
        validate(path, tmp_path / "odd.bin", dtype="<u2")
    bad_hex = tmp_path / "y.hex"
    bad_hex.write_text("7e\n7g\n")
    with pytest.raises(GoldenError, match=r"y\.hex line 2: '7g' is not a hex number"):
        validate(path, bad_hex)
    bad_hex.write_text("@10\n7e\n")
    with pytest.raises(GoldenError, match="@address"):
        validate(path, bad_hex)
    for word in ("-5", "1_0000_0000_0000_0000"):               # negative, wider than 64 bits
        bad_hex.write_text(f"7e\n{word}\n")
        with pytest.raises(GoldenError, match=f"y\\.hex line 2: '{word}' is not a code of at most 64 bits"):
            read_hex(bad_hex)
    wide = good.astype(np.uint16)
    wide[3] = 0x17E
    with pytest.raises(GoldenError, match="0x17e at index 3 does not fit 8-bit e4m3"):
        validate(path, wide)
    with pytest.raises(GoldenError, match=r"300\.0 at index .* is not a value of e4m3"):
        validate(path, np.full(good.size, 300.0, np.float32))
    with pytest.raises(FileNotFoundError):
        validate(path, tmp_path / "missing.npy")


def test_output_file_kinds(goldens, tmp_path):
    golden, path = goldens["mx-e4m3"]
    by_output = {o: golden.stream(o).reshape(-1) for o in golden.outputs}
    np.savez(tmp_path / "by_output.npz", **by_output)
    by_case = {f"{c.name}/{o}": c.expected[o] for c in golden.cases for o in golden.outputs}
    np.savez(tmp_path / "by_case.npz", **by_case)
    np.save(tmp_path / "flat.npy", flat_expected(golden))
    for f in ("by_output.npz", "by_case.npz", "flat.npy"):
        assert validate(path, tmp_path / f).ok, f
    single, spath = goldens["decode-fp16"]
    np.save(tmp_path / "decoded.npy", single.cases[0].expected["y"])        # float32 values, exact shape
    assert validate(spath, tmp_path / "decoded.npy").ok
    arr = load_outputs(tmp_path / "flat.npy", shape=(2, -1))
    assert arr.shape == (2, flat_expected(golden).size // 2)
    with pytest.raises(GoldenError, match="cannot take shape"):
        load_outputs(tmp_path / "flat.npy", shape=(3, -1, 7))


# -- comparison details ----------------------------------------------------------------------------
def test_nan_class_option_and_distances(goldens):
    golden, path = goldens["encode-e4m3"]
    codes = flat_expected(golden).astype(np.uint8)
    nan_at = int(np.flatnonzero(codes == 0x7F)[0])
    zero_at = int(np.flatnonzero(codes == 0x00)[0])
    one_at = int(np.flatnonzero(codes == 0x38)[0])            # 1.0
    got = codes.copy()
    got[nan_at] = 0xFF                                        # another NaN code
    got[zero_at] = 0x80                                       # -0 for +0
    got[one_at] = 0x38 + 5                                    # 5 ulps off
    strict = validate(path, got)
    assert strict.mismatches == 3
    assert strict.histogram == {"1": 1, "5-8": 1, "NaN vs other NaN code": 1}
    loose = validate(path, got, nan_equal=True)
    assert loose.mismatches == 2 and nan_at not in loose.mismatch_index
    rows = {r["index"]: r for r in strict.first(5)}
    assert rows[zero_at]["expected"] == "0x00" and rows[zero_at]["got"] == "0x80" and rows[zero_at]["distance"] == 1
    assert rows[one_at]["expected_value"] == "1" and rows[one_at]["distance"] == 5
    assert rows[nan_at]["distance"] is None
    assert "x" in rows[one_at]["inputs"]                      # the input value that produced it


def test_int_distance_is_the_value_difference(goldens):
    golden, path = goldens["requant-gemmlowp"]
    got = golden.stream("y").astype(np.int64)
    i = int(np.flatnonzero(got == -128)[0]) if (got == -128).any() else 0
    got[i] = 127 if got[i] != 127 else 126                    # two's complement ends: far apart
    r = validate(path, got.astype(np.int8))
    assert r.mismatches == 1
    assert r.first()[0]["distance"] == abs(int(golden.stream("y")[i]) - int(got[i]))


def test_waived_departures_are_counted_not_failed(goldens):
    golden, path = goldens["encode-e4m3"]
    got = flat_expected(golden).astype(np.uint8)
    got[10] ^= 1
    waive = np.zeros(got.size, bool)
    waive[10] = True
    r = validate(path, got, waive=waive)
    assert r.ok and r.waived_mismatches == 1 and r.mismatches == 0
    with pytest.raises(ValueError, match="waive must mark"):
        validate(path, got, waive=waive[:-1])


def test_compare_keeps_codes_of_signed_values(goldens):
    """Signed int8 values given to compare are kept as codes, so reports show 0x80, not 0x-80."""
    golden, _ = goldens["requant-gemmlowp"]
    values = golden.stream("y").astype(np.int8)
    i = int(np.flatnonzero(values != -128)[0])
    values[i] = -128
    r = compare(golden, values)
    assert r.got.dtype == np.uint64 and r.mismatch_index.tolist() == [i]
    assert r.first(1)[0]["got"] == "0x80" and r.first(1)[0]["got_value"] == "-128"


# -- the hardware's output conversion (float GEMM/conv) ---------------------------------------------------
@pytest.mark.parametrize("name, hw_fmt, plain", [("gemm-h100-fp8-hardware", "bf16", "gemm-h100-fp8"),
                                                 ("conv-mi300-hardware", "bf16", None)])
def test_float_hardware_outputs_are_converted(goldens, name, hw_fmt, plain):
    golden, path = goldens[name]
    assert golden.outputs == ["y", "y_out"]
    assert golden.formats["y"] == "fp32" and golden.formats["y_out"] == hw_fmt
    conv = golden.info["output_conversion"]
    assert conv["format"] == hw_fmt and conv["scale"] == 1.0 and conv["rounding"] == "rne" and conv["saturate"] is None
    rounded = 0
    for c in golden.cases:
        y = c.expected["y"]
        assert y.dtype == np.float32
        # independent: float32(acc * 1.0), then an RNE encode to the output format (NaN stays NaN)
        want = qsim.encode(np.float32(y.astype(np.float64) * 1.0), hw_fmt, rounding="rne")
        assert c.expected["y_out"].dtype == np.uint16 and np.array_equal(c.expected["y_out"], want), c.name
        back = qsim.decode(c.expected["y_out"], hw_fmt, dtype=np.float64)
        finite = np.isfinite(y)
        rounded += int(np.count_nonzero(back[finite] != y[finite]))
        assert np.array_equal(np.isnan(back), np.isnan(y))
    assert rounded > 0                                   # the conversion really rounds
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["outputs"] == ["y", "y_out"]
    assert manifest["arrays"]["y_out"] == {"format": hw_fmt, "dtype": "<u2", "role": "output", "hex": "y_out.hex",
                                           "digits": 4}
    assert "convert_output" in manifest["info"]["y_out"] and manifest["info"]["y"] == "FP32 accumulator values"
    assert np.array_equal(read_hex(path / "y_out.hex"), golden.codes("y_out"))
    if plain:            # the datapath preset: no conversion, the same accumulator values
        plain_golden = goldens[plain][0]
        assert plain_golden.outputs == ["y"] and "output_conversion" not in plain_golden.info
        assert [c.name for c in plain_golden.cases] == [c.name for c in golden.cases]
        for a, b in zip(plain_golden.cases, golden.cases):
            assert np.array_equal(a.expected["y"].view(np.uint32), b.expected["y"].view(np.uint32))


def test_hardware_outputs_fp32_or_integer(tmp_path):
    from qsim.hardware.spec import PRESET_DIR
    text = (PRESET_DIR / "h100-fp8.toml").read_text()
    assert 'output = { format = "bf16" }' in text
    (tmp_path / "fp32.toml").write_text(text.replace('output = { format = "bf16" }', 'output = { format = "fp32" }'))
    g = make_golden("gemm", datapath=str(tmp_path / "fp32.toml"), random=1)
    assert g.outputs == ["y"] and "output_conversion" not in g.info
    (tmp_path / "fp16.toml").write_text(text.replace('output = { format = "bf16" }', 'output = { format = "fp16" }'))
    g = make_golden("conv", datapath=str(tmp_path / "fp16.toml"), random=1)
    assert g.outputs == ["y", "y_out"] and g.formats["y_out"] == "fp16"
    for c in g.cases:
        assert np.array_equal(c.expected["y_out"], qsim.encode(c.expected["y"], "fp16"))
    (tmp_path / "int8.toml").write_text(text.replace('output = { format = "bf16" }', 'output = { format = "int8" }'))
    with pytest.raises(ValueError, match="datapath.output.format = 'int8': float kernels convert their outputs to a float"):
        make_golden("gemm", datapath=str(tmp_path / "int8.toml"))


def test_converted_output_validates_alone_and_by_name(goldens, tmp_path, capsys):
    golden, path = goldens["gemm-h100-fp8-hardware"]
    # the hex file of y_out alone, with output= / --output
    r = validate(path, path / "y_out.hex", output="y_out")
    assert r.ok and r.total == golden.codes("y_out").size and r.not_compared == ("y",)
    assert "not compared" in r.table() and "y_out: bf16" in r.table()
    with pytest.raises(GoldenError, match="the golden set expects"):
        validate(path, path / "y_out.hex")                # both outputs expected without --output
    with pytest.raises(GoldenError, match=r"no output 'z'.*\['y', 'y_out'\]"):
        validate(path, path / "y_out.hex", output="z")
    # an .npz keyed by output name: both outputs, or y_out alone with --output
    y = {o: np.concatenate([c.expected[o].reshape(-1) for c in golden.cases]) for o in golden.outputs}
    np.savez(tmp_path / "both.npz", **y)
    assert run_cli("validate", path, "--outputs", tmp_path / "both.npz") == 0
    assert "y_out: bf16" in capsys.readouterr().out
    np.savez(tmp_path / "out.npz", y_out=y["y_out"], other=np.zeros(1))
    with pytest.raises(GoldenError, match="--output NAME"):
        run_cli("validate", path, "--outputs", tmp_path / "out.npz")
    assert run_cli("validate", path, "--outputs", tmp_path / "out.npz", "--output", "y_out") == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "not compared: y" in out
    # bf16 values as float32 (a kernel's results) are read as exact codes
    as_f32 = {f"{c.name}/y_out": qsim.decode(c.expected["y_out"], "bf16", dtype=np.float32) for c in golden.cases}
    assert validate(path, as_f32, output="y_out", nan_equal=True).ok
    # a fault in y_out is caught and located, with --output and without
    bad = y["y_out"].copy()
    i = int(np.flatnonzero(~np.isnan(qsim.decode(bad, "bf16")))[5])
    bad[i] ^= np.uint16(1)
    np.savez(tmp_path / "bad.npz", y=y["y"], y_out=bad)
    assert run_cli("validate", path, "--outputs", tmp_path / "bad.npz") == 1
    assert "FAIL: 1 of" in capsys.readouterr().out
    r = validate(path, {"y_out": bad}, output="y_out")
    assert r.mismatch_index.tolist() == [i] and r.first(1)[0]["output"] == "y_out" and r.first(1)[0]["distance"] == 1
    r = validate(path, tmp_path / "bad.npz")
    assert r.mismatch_index.tolist() == [y["y"].size + i] and r.first(1)[0]["output"] == "y_out"
    # a kernel returning only y_out
    by_name = {c.name: c.expected["y_out"] for c in golden.cases}

    def kernel(inputs):
        c = next(c for c in golden.cases if np.array_equal(c.inputs["a"], inputs["a"]) and
                 np.array_equal(c.inputs["b"], inputs["b"]))
        return {"y_out": by_name[c.name]}

    assert validate_kernel(path, kernel, output="y_out").ok
    with pytest.raises(GoldenError, match="returned no 'y'"):
        validate_kernel(path, kernel)


# -- fault injection -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["encode-e4m3", "gemm-ort", "mx-e4m3", "requant-gemmlowp", "decode-fp32",
                                  "gemm-h100-fp8-hardware"])
def test_single_bit_faults_are_caught_and_located(goldens, name):
    golden, path = goldens[name]
    golden = load_golden(path)
    good = flat_expected(golden).astype(np.uint64)
    segs = golden.segments()
    bits = np.concatenate([np.full(int(np.prod(s[3], dtype=np.int64)), golden.output_format(s[0]).storage_bits)
                           for s in segs])
    rng = np.random.default_rng(1234)
    for trial in range(200):
        i = int(rng.integers(good.size))
        bad = good.copy()
        bad[i] ^= np.uint64(1) << np.uint64(rng.integers(bits[i]))
        r = validate(golden, bad)
        assert not r.ok and r.mismatch_index.tolist() == [i], (trial, i)
        row = r.first(1)[0]
        out, ci, off, shape = next(s for s in segs if s[2] <= i < s[2] + int(np.prod(s[3], dtype=np.int64)))
        assert (row["output"], row["case"]) == (out, golden.cases[ci].name)
        assert row["position"] == tuple(int(p) for p in np.unravel_index(i - off, shape))
        assert row["inputs"]


def test_faults_in_a_kernel_output_are_caught(goldens):
    """A real kernel (qsim's encoder) wrapped to flip one bit of one case's output."""
    golden, path = goldens["encode-e4m3"]
    rng = np.random.default_rng(5)
    names = [c.name for c in golden.cases]
    for trial in range(50):
        target = names[int(rng.integers(len(names)))]
        size = case(golden, target).expected["y"].size
        pos, bit = int(rng.integers(size)), int(rng.integers(8))

        def kernel(inputs, target=target, pos=pos, bit=bit):
            y = qsim.encode(inputs["x"], "e4m3", saturate=False)
            if inputs["x"].size == size and np.array_equal(inputs["x"], case(golden, target).inputs["x"], equal_nan=True):
                y.reshape(-1)[pos] ^= 1 << bit
            return y

        r = validate_kernel(path, kernel)
        assert r.mismatches == 1
        row = r.first(1)[0]
        assert row["case"] == target and row["position"] == (pos,)
    assert validate_kernel(path, lambda inputs: qsim.encode(inputs["x"], "e4m3", saturate=False)).ok


def test_validate_kernel_with_two_outputs(goldens):
    golden, path = goldens["mx-e4m3"]

    def kernel(inputs):
        q = qsim.mx_quantize(inputs["x"], "e4m3", axis=-1, block_size=32)
        return {"elements": q.elements, "scales": q.scales}

    assert validate_kernel(path, kernel).ok
    with pytest.raises(GoldenError, match="must return a dict"):
        validate_kernel(path, lambda inputs: np.zeros(1))


# -- reports ------------------------------------------------------------------------------------------
def test_reports_and_parquet_log(goldens, tmp_path):
    golden, path = goldens["gemm-ort"]
    got = flat_expected(golden).astype(np.uint8)
    got[7] ^= 0x40
    r = validate(path, got)
    md = r.markdown()
    assert "FAIL: 1 of" in md and "| zero-points |" in md and "## First 1 mismatches" in md
    page = r.html()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page and "FAIL" in page
    assert "http" not in page and "<script" not in page and "<link" not in page   # self-contained
    r.write_report(tmp_path / "r.md")
    r.write_report(tmp_path / "r.html")
    with pytest.raises(ValueError, match="use a .md or .html"):
        r.write_report(tmp_path / "r.pdf")
    log = r.to_parquet(tmp_path / "logs" / "v.parquet")
    table = pq.read_table(log)
    df = table.to_pandas()
    assert len(df) == golden.total and (~df["match"]).sum() == 1
    assert df.loc[~df["match"], "index"].tolist() == [7]
    assert df.loc[~df["match"], "distance"].notna().all()
    meta = json.loads(table.schema.metadata[b"qsim.validation"])
    assert meta["mismatches"] == 1 and meta["op"] == "gemm"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["r.html", "r.md", "v.parquet"]
    ok = validate(path, flat_expected(golden))
    assert "PASS" in ok.markdown() and "First" not in ok.table()
    assert isinstance(pd.read_parquet(ok.to_parquet(tmp_path / "ok.parquet")), pd.DataFrame)


def test_html_escapes_text(goldens):
    golden, path = goldens["encode-e4m3"]
    r = validate(path, flat_expected(golden))
    r.source = "<b>&"
    assert "&lt;b&gt;&amp;" in r.html() and "<b>&" not in r.html()


# -- writing ----------------------------------------------------------------------------------------------
def test_write_replaces_golden_dirs_only(tmp_path):
    out = tmp_path / "g"
    generate("decode", out, format="fp4_e2m1")
    generate("decode", out, format="e4m3")                   # a golden dir is replaced
    assert load_golden(out).config["format"] == "e4m3"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(GoldenError, match="not a golden directory"):
        generate("decode", other, format="e4m3")
    assert (other / "notes.txt").read_text() == "keep me"


def test_write_refuses_an_array_whose_dtype_changes_between_cases(tmp_path):
    """One .hex file has one width: int16 values after int8 ones would be cut to 2 hex digits."""
    cases = [Case(f"c{i}", "directed", "", {"a": np.array([1 + 299 * i, 2], dtype)}, {"y": np.array([1], np.int8)})
             for i, dtype in enumerate((np.int8, np.int16))]
    golden = Golden("x", {}, {}, {"a": None, "y": None}, ["y"], cases)
    with pytest.raises(GoldenError, match="case 'c1' holds a as int16, case 'c0' as int8"):
        write_golden(golden, tmp_path / "g")
    assert not any(tmp_path.iterdir())


def test_adapter_names_a_missing_peer_package(goldens):
    adapter = Adapter("needs-peer", "encode", {"op": "encode", "format": "e4m3"}, "a kernel from a missing package",
                      lambda inputs: inputs["x"], requires=("qsim_no_such_package",))
    with pytest.raises(ModuleNotFoundError, match="adapter needs-peer needs qsim_no_such_package"):
        adapter.validate(goldens["encode-e4m3"][1])


def test_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    from qsim.golden import store
    out = tmp_path / "g"
    generate("decode", out, format="fp4_e2m1")
    before = (out / "manifest.json").read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store.json, "dumps", boom)
    with pytest.raises(OSError, match="disk full"):
        generate("decode", out, format="e4m3")
    assert (out / "manifest.json").read_text() == before        # the previous set is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]  # no temporary directory left


# -- bad configurations ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(op="transpose"), ValueError, "unknown golden op 'transpose'"),
    (dict(op="encode", format="e9m9x"), KeyError, "unknown format"),
    (dict(op="encode"), ValueError, "encode needs a format"),
    (dict(op="gemm"), ValueError, "gemm needs a datapath"),
    (dict(op="gemm", datapath="tpu-v9"), ValueError, "unknown datapath 'tpu-v9'"),
    (dict(op="requant", datapath="bf16-fp32acc"), ValueError, "requant needs an integer datapath"),
    (dict(op="gemm", datapath="int4-weight-only"), ValueError, "weights int4 on the float datapath"),
    (dict(op="gemm", datapath="fp32-sequential"), ValueError, "pass format="),
    (dict(op="conv", datapath="mxfp8"), ValueError, "does not model block-scaled datapaths"),
    (dict(op="encode", format="int8", zero_point=200), ValueError, "zero_point 200 is outside"),
    (dict(op="encode", format="fp4_e2m1", saturate=False), ValueError, "no Inf or NaN"),
    (dict(op="encode", format="e4m3", rounding="sideways"), ValueError, "unknown rounding"),
    (dict(op="encode", format="e4m3", scale=0.0), ValueError, "scale must be finite and > 0"),
    (dict(op="decode", format="e4m3", random=-1), ValueError, "random must be"),
    (dict(op="gemm", datapath="onnxruntime-x86", format="e4m3"), ValueError, "integer format"),
])
def test_bad_configurations(kwargs, error, match):
    with pytest.raises(error, match=match):
        make_golden(**kwargs)


def test_datapath_from_toml(tmp_path):
    from qsim.hardware.spec import PRESET_DIR
    toml = tmp_path / "npu.toml"
    toml.write_text((PRESET_DIR / "edge-npu-int8-acc16.toml").read_text().replace('bits = 16', 'bits = 12'))
    g = make_golden("gemm", datapath=str(toml))
    assert g.info["datapath"]["accumulator"]["bits"] == 12
    with pytest.raises(ValueError, match="cannot read"):
        make_golden("gemm", datapath=str(tmp_path / "missing.toml"))


# -- command line --------------------------------------------------------------------------------------------
def run_cli(*argv):
    parser = argparse.ArgumentParser(prog="qsim")
    register(parser.add_subparsers())
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def test_cli_golden_and_validate(tmp_path, capsys):
    out = tmp_path / "g"
    assert run_cli("golden", "encode", "--format", "e4m3", "--no-saturate", "--random", "64", "--out", out) == 0
    assert "golden encode:" in capsys.readouterr().out
    assert run_cli("validate", out, "--outputs", out / "y.hex") == 0
    assert "PASS" in capsys.readouterr().out
    codes = read_hex(out / "y.hex").astype(np.uint8)
    codes[3] ^= 2
    codes.tofile(tmp_path / "y.bin")
    rc = run_cli("validate", out, "--outputs", tmp_path / "y.bin", "--dtype", "uint8", "--report", tmp_path / "r.md",
                 "--log", tmp_path / "v.parquet")
    text = capsys.readouterr().out
    assert rc == 1 and "FAIL: 1 of" in text and "first 1 mismatches" in text
    assert (tmp_path / "r.md").exists() and (tmp_path / "v.parquet").exists()
    assert run_cli("golden", "mx", "--datapath", "mxfp4", "--block-size", "16", "--out", tmp_path / "mx") == 0
    assert load_golden(tmp_path / "mx").info["block_size"] == 16


def test_cli_errors_and_help(tmp_path, capsys):
    with pytest.raises(ValueError, match="--out"):
        run_cli("golden", "encode", "--format", "e4m3")
    with pytest.raises(ValueError, match="OP"):
        run_cli("golden", "--out", tmp_path / "x")
    with pytest.raises(ValueError, match="exactly one of --outputs FILE or --adapter"):
        run_cli("validate", tmp_path)
    with pytest.raises(KeyError, match="unknown adapter"):
        run_cli("golden", "--adapter", "nope", "--out", tmp_path / "x")
    with pytest.raises(ValueError, match=r"fixes the configuration.*\(got format, bias\)"):
        run_cli("golden", "--adapter", "ort-qlinear-matmul-u8s8", "--format", "int8", "--no-bias",
                "--out", tmp_path / "x")
    with pytest.raises(ValueError, match="--nan-equal read an --outputs file"):
        run_cli("validate", tmp_path, "--adapter", "torch-cast-e4m3", "--nan-equal")
    with pytest.raises(ValueError, match="--output selects outputs of an --outputs file"):
        run_cli("validate", tmp_path, "--adapter", "torch-cast-e4m3", "--output", "y")
    assert not (tmp_path / "x").exists()
    assert run_cli("golden", "--list-adapters") == 0
    assert "ort-qlinear-matmul-u8s8" in capsys.readouterr().out
    for cmd in ("golden", "validate"):
        with pytest.raises(SystemExit):
            run_cli(cmd, "--help")
        text = capsys.readouterr().out
        assert "examples:" in text
        assert "y_out" in text and ("convert_output" in text if cmd == "golden" else "--output" in text)


# -- golden ops as objects ---------------------------------------------------------------------------
def test_a_new_op_is_one_class_and_one_registry_line(tmp_path, monkeypatch):
    """An op registered in REGISTRY is generated, written, reloaded, validated (with its own
    inputs_at in the mismatch rows) and reachable from the CLI, with no other edit."""
    from qsim.golden import ops
    from qsim.golden.ops.base import GoldenOp

    class Negate(GoldenOp):
        name = "negate"
        aliases = ("neg",)
        default_random = 3

        def format_rules(self, path):
            return {"format": None}

        def cases(self, cfg, path, hw, rng):
            x = rng.integers(-5, 5, cfg.random).astype(np.int8)
            case = Case("random", "random", "seeded int8", {"x": x}, {"y": (-x).astype(np.int8)})
            return [case], {"x": "int8", "y": "int8"}, {}

        def overflow_mode(self, cfg, path):
            return "wraps at -128"

        def inputs_at(self, golden, case, output, pos):
            return {"x": str(int(case.inputs["x"][pos]))}

    monkeypatch.setitem(ops.REGISTRY, "negate", Negate())
    monkeypatch.setitem(ops.ALIASES, "neg", "negate")
    g = generate("neg", tmp_path / "g", random=5, seed=2)
    assert g.op == "negate" and g.config["random"] == 5 and g.info["overflow"] == "wraps at -128"
    loaded = load_golden(tmp_path / "g")
    assert [c.name for c in loaded.cases] == ["random"]
    x = loaded.cases[0].inputs["x"]
    got = (-x).astype(np.int8)
    got[1] += 1
    result = validate(tmp_path / "g", got)
    assert result.mismatches == 1 and result.first(1)[0]["inputs"] == {"x": str(int(x[1]))}
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["golden", "negate", "--random", "4", "--out", str(tmp_path / "cli")])
    assert args.func(args) == 0 and load_golden(tmp_path / "cli").config["random"] == 4


def test_every_op_has_its_own_default_random_count():
    """The default random count lives on the op (stored in the manifest's config); a model's layer sets have none."""
    expected = {"encode": 256, "decode": 1024, "gemm": 6, "conv": 4, "requant": 256, "mx": 8, "layer": 0}
    from qsim.golden.ops import REGISTRY
    assert {name: op.default_random for name, op in REGISTRY.items()} == expected
    assert make_golden("decode", format="fp16").config["random"] == 1024
    assert make_golden("mx", format="e4m3").config["random"] == 8


def test_golden_config_is_frozen_and_refuses_bad_values():
    from dataclasses import FrozenInstanceError

    from qsim.golden.ops import GoldenConfig
    cfg = GoldenConfig("encode", format="e4m3")
    with pytest.raises(FrozenInstanceError):
        cfg.seed = 3
    for key, value, words in [("seed", -1, "seed must be a non-negative int"),
                              ("random", 1.5, "random must be a non-negative int"),
                              ("scale", float("inf"), "scale must be finite and > 0"),
                              ("scale_rule", "ceil", "scale_rule must be 'floor' or 'rceil'"),
                              ("block_size", 0, "block_size must be a positive int"),
                              ("rounding", "nearest", "nearest")]:
        with pytest.raises(ValueError, match=words):
            GoldenConfig("encode", **{key: value})
    # the manifest's keys, in the order make_golden(**config) documents
    assert list(make_golden("encode", format="e4m3").config) == [
        "op", "datapath", "format", "weight_format", "output_format", "rounding", "saturate", "seed",
        "rounding_seed", "random", "scale", "zero_point", "bias", "block_size", "scale_rule"]


# -- a whole model, layer by layer -----------------------------------------------------------------------
def _quantized_mlp(tmp_path):
    """A small MLP quantized by ONNX Runtime (QDQ, static): the model an RTL team would bring."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static
    rng = np.random.default_rng(5)
    w1, w2 = rng.normal(0, 0.3, (16, 12)).astype(np.float32), rng.normal(0, 0.3, (12, 4)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 4])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    fp32 = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.normal(0, 1, (8, 16)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    q = tmp_path / "mlp.q.onnx"
    quantize_static(str(fp32), str(q), Reader(), quant_format=QuantFormat.QDQ)
    return q, rng.normal(0, 1, (8, 16)).astype(np.float32)


def test_model_golden_writes_every_layer_and_its_last_layer_is_the_model_output(tmp_path):
    import json

    from qsim.golden import load_golden, model_golden, validate
    from qsim.sim import run_model
    model, x = _quantized_mlp(tmp_path)
    dirs = model_golden(model, x, tmp_path / "g")
    index = json.loads((tmp_path / "g" / "index.json").read_text())
    assert [d.name for d in dirs] == [e["dir"] for e in index["layers"]] and len(dirs) >= 3
    ops = [e["op"] for e in index["layers"]]
    assert "QLinearMatMul" in ops or "MatMulInteger" in ops           # the fused integer kernels of ORT's session
    want = run_model(model, x)                                      # ORT's outputs, bit for bit (tests/sim)
    last = load_golden(dirs[-1])
    assert last.info["tensors"]["out0"] == "y"
    assert np.array_equal(last.cases[0].expected["out0"].view(np.uint32), want["y"].view(np.uint32))
    # every layer validates against its own outputs, and a flipped code is found in the right layer
    for d in dirs:
        g = load_golden(d)
        assert all(g.formats[o] for o in g.outputs), (d, g.formats)        # no int32 accumulators on this path
        assert validate(g, {o: g.cases[0].expected[o] for o in g.outputs}).ok       # in its own shape
    integer = next(d for d, e in zip(dirs, index["layers"]) if e["op"] in ("QLinearMatMul", "MatMulInteger"))
    g = load_golden(integer)
    bad = g.cases[0].expected["out0"].copy()
    bad.flat[3] ^= 1
    assert validate(g, {"out0": bad}).mismatches == 1
    # the layer op cannot be generated on its own
    with pytest.raises(ValueError, match="qsim golden model"):
        make_golden("layer")


def test_model_golden_command_line(tmp_path, capsys):
    model, x = _quantized_mlp(tmp_path)
    np.save(tmp_path / "x.npy", x)
    assert run_cli("golden", "model", str(model), "--inputs", str(tmp_path / "x.npy"), "--out", str(tmp_path / "g"),
                   "--hardware", "edge-npu-int8-acc16") == 0
    assert "layers" in capsys.readouterr().out and (tmp_path / "g" / "index.json").exists()
    with pytest.raises(ValueError, match="golden model needs MODEL"):
        run_cli("golden", "model", "--out", str(tmp_path / "g2"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(Exception, match="refusing to write there"):
        run_cli("golden", "model", str(model), "--out", str(tmp_path / "junk"))
