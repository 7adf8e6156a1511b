"""Known departures of peer kernels are measured, not declared: each is a classifier that says
whether it explains a mismatch, and validation reports which departures were seen, which were
expected (their domain is in the golden set) but not seen, and which mismatches nothing
explains. Waived codes are listed; waivers can be switched off. Also: golden manifests protect
their own content, and format options that an op cannot take are refused by name."""

import argparse
import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest

import qsim
from qsim.datapaths import Accumulator, qlinear_conv
from qsim.datapaths.integer import PRESETS
from qsim.golden import ADAPTERS, Adapter, GoldenError, generate, load_golden, make_golden, validate
from qsim.golden.cli import register

E8M0 = ADAPTERS["ml_dtypes-cast-e8m0"]
E4M3_SAT0 = ADAPTERS["ort-quantize-linear-e4m3-sat0"]
CONV_U8S8 = ADAPTERS["ort-qlinear-conv-u8s8"]


def run_cli(*argv):
    parser = argparse.ArgumentParser(prog="qsim")
    register(parser.add_subparsers())
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("departures")
    out = {}
    for adapter in (E8M0, E4M3_SAT0, CONV_U8S8):
        out[adapter.name] = root / adapter.name
        generate(out_dir=out[adapter.name], **adapter.golden_config)
    return out


# -- fake peers: Python callables run through an adapter with the real departures ----------------
def e8m0_spec(inputs):
    return qsim.encode(inputs["x"], "e8m0", rounding="rna", saturate=False)


def e8m0_domain(x) -> np.ndarray:
    """float32 subnormals between 2^-127 and 1.5 * 2^-127: the nearest e8m0 value is 2^-127."""
    x = np.asarray(x, np.float64)
    return (x > 2.0 ** -127) & (x < 1.5 * 2.0 ** -127)


def e8m0_rounding_up(inputs):
    """Reproduces the ml_dtypes < 0.7 departure exactly: those inputs give 2^-126 (code 1)."""
    y = e8m0_spec(inputs)
    y[e8m0_domain(inputs["x"])] = 1
    return y


def e8m0_rounding_too_far(inputs):
    """Departs in another way inside the same domain: 2^-125 (code 2)."""
    y = e8m0_spec(inputs)
    y[e8m0_domain(inputs["x"])] = 2
    return y


def fake(adapter, kernel, name="fake-peer"):
    """The adapter's configuration and departures, with a Python callable as the peer."""
    return Adapter(name, adapter.op, adapter.golden_config, "a fake peer for the classifier tests " * 2, kernel,
                   nan_equal=adapter.nan_equal, departures=adapter.departures)


def domain_count(golden_dir) -> int:
    return sum(int(e8m0_domain(c.inputs["x"]).sum()) for c in load_golden(golden_dir).cases)


def summary(result, name) -> dict:
    return next(d for d in result.departure_summary() if d["name"] == name)


def test_every_departure_is_a_classifier_with_a_name_and_description():
    names = [d.name for a in ADAPTERS.values() for d in a.departures]
    assert {a.name for a in ADAPTERS.values() if a.departures} >= {E8M0.name, E4M3_SAT0.name, CONV_U8S8.name,
                                                                    "ort-quantize-linear-e5m2-sat0"}
    for adapter in ADAPTERS.values():
        for d in adapter.departures:
            assert d.name and "\n" not in d.description and len(d.description) > 30, d.name
            assert callable(d.domain) and callable(d.explains)
        assert len({d.name for d in adapter.departures}) == len(adapter.departures), adapter.name
    assert names


def test_fake_peer_reproducing_the_departure_is_classified_as_seen(dirs):
    n = domain_count(dirs[E8M0.name])
    assert n >= 2                                           # the golden set exercises the domain
    r = fake(E8M0, e8m0_rounding_up).validate(dirs[E8M0.name])
    assert r.ok and r.mismatches == 0 and r.waived_mismatches == n
    (dep,) = E8M0.departures
    s = summary(r, dep.name)
    assert (s["status"], s["seen"], s["in_domain"]) == ("seen", n, n)
    rows = r.waived_rows()
    assert len(rows) == n and {row["departure"] for row in rows} == {dep.name}
    assert {(row["expected"], row["got"]) for row in rows} == {("0x00", "0x01")}
    assert all("x" in row["inputs"] for row in rows)


def test_fake_peer_per_spec_reports_the_departure_expected_but_not_seen(dirs):
    n = domain_count(dirs[E8M0.name])
    r = fake(E8M0, e8m0_spec).validate(dirs[E8M0.name])
    assert r.ok and r.waived_mismatches == 0 and r.waived_rows() == []
    s = summary(r, E8M0.departures[0].name)
    assert (s["status"], s["seen"], s["in_domain"]) == ("not seen", 0, n)
    assert "not seen" in r.table() and "not seen" in r.markdown() and "not seen" in r.html()


def test_fake_peer_departing_another_way_is_unexplained_and_fails(dirs):
    n = domain_count(dirs[E8M0.name])
    r = fake(E8M0, e8m0_rounding_too_far).validate(dirs[E8M0.name])
    assert not r.ok and r.mismatches == n and r.waived_mismatches == 0
    assert summary(r, E8M0.departures[0].name)["status"] == "not seen"
    assert all(row["departure"] is None for row in r.first(n))

    first = load_golden(dirs[E8M0.name]).cases[0]

    def one_more_fault(inputs):                             # the departure plus an unrelated fault
        y = e8m0_rounding_up(inputs)
        if np.array_equal(inputs["x"], first.inputs["x"], equal_nan=True):
            y[5] ^= 4
        return y

    r = fake(E8M0, one_more_fault).validate(dirs[E8M0.name])
    assert not r.ok and r.mismatches == 1 and r.waived_mismatches == n
    assert r.first(1)[0]["departure"] is None


def test_waivers_off_every_mismatch_fails(dirs, capsys, monkeypatch):
    n = domain_count(dirs[E8M0.name])
    adapter = fake(E8M0, e8m0_rounding_up)
    strict = adapter.validate(dirs[E8M0.name], waivers=False)
    assert not strict.ok and strict.mismatches == n and strict.waived_mismatches == 0
    assert {row["departure"] for row in strict.first(n)} == {E8M0.departures[0].name}   # still classified
    assert "waivers off" in strict.table()
    monkeypatch.setitem(ADAPTERS, adapter.name, adapter)
    assert run_cli("validate", dirs[E8M0.name], "--adapter", adapter.name) == 0
    capsys.readouterr()
    assert run_cli("validate", dirs[E8M0.name], "--adapter", adapter.name, "--no-waivers") == 1
    assert f"FAIL: {n} of" in capsys.readouterr().out
    # a waive= mask is switched off as well
    golden = load_golden(dirs[E8M0.name])
    got = np.concatenate([e8m0_rounding_up(c.inputs).reshape(-1) for c in golden.cases])
    mask = np.concatenate([e8m0_domain(c.inputs["x"]).reshape(-1) for c in golden.cases])
    assert validate(golden, got, waive=mask).ok
    assert validate(golden, got, waive=mask, waivers=False).mismatches == n


def test_ort_float8_band_classifier(dirs):
    golden = load_golden(dirs[E4M3_SAT0.name])

    def scaled(inputs):
        return inputs["x"].astype(np.float32) / inputs["scale"].astype(np.float32)

    def band(inputs):
        a = np.abs(scaled(inputs))
        return (a >= 480) & (a < 496)

    def spec(inputs):
        return qsim.encode(scaled(inputs), "e4m3", saturate=False)

    def finite_in_band(inputs):                             # +-448 with the input's sign, as ORT 1.32
        y = spec(inputs)
        y[band(inputs)] = np.where(scaled(inputs)[band(inputs)] < 0, 0xFE, 0x7E)
        return y

    def wrong_value(inputs):                                # 416 instead: not this departure
        y = spec(inputs)
        y[band(inputs)] = 0x7D
        return y

    n = sum(int(band(c.inputs).sum()) for c in golden.cases)
    assert n >= 2
    (dep,) = E4M3_SAT0.departures
    seen = fake(E4M3_SAT0, finite_in_band).validate(golden)
    assert seen.ok and summary(seen, dep.name)["status"] == "seen" and seen.waived_mismatches == n
    per_spec = fake(E4M3_SAT0, spec).validate(golden)
    assert per_spec.ok and summary(per_spec, dep.name)["status"] == "not seen"
    other = fake(E4M3_SAT0, wrong_value).validate(golden)
    assert not other.ok and other.mismatches == n


def test_ort_convsym_saturation_classifier(dirs):
    """MLAS ConvSym's saturating int32 sums: a peer that saturates is explained, one that wraps
    (the spec, onnxruntime-x86) shows nothing, and one that is off by one code is not explained."""
    golden = load_golden(dirs[CONV_U8S8.name])

    def conv(inputs, accumulator):
        i = inputs
        return qlinear_conv(i["x"], i["x_scale"], i["x_zero"], i["w"], i["w_scale"], i["w_zero"], i["y_scale"],
                            i["y_zero"], i.get("bias"), stride=tuple(i["stride"].tolist()),
                            padding=tuple(i["padding"].tolist()), dilation=tuple(i["dilation"].tolist()),
                            groups=int(i["groups"]),
                            datapath=replace(PRESETS["onnxruntime-x86"], accumulator=accumulator))

    dep = CONV_U8S8.departures[0]
    assert dep.name == "ort-convsym-int32-saturation"
    saturating = fake(CONV_U8S8, lambda i: conv(i, Accumulator(32, "saturate"))).validate(golden)
    s = summary(saturating, dep.name)
    assert saturating.ok and s["status"] == "seen" and s["seen"] == saturating.waived_mismatches > 0
    assert {row["case"] for row in saturating.waived_rows()} == {"accumulator-overflow"}
    wrapping = fake(CONV_U8S8, lambda i: conv(i, Accumulator(32, "wrap"))).validate(golden)
    assert wrapping.ok and summary(wrapping, dep.name)["status"] == "not seen"

    def off_by_one(inputs):
        y = conv(inputs, Accumulator(32, "saturate"))
        return np.where(y == conv(inputs, Accumulator(32, "wrap")), y, y ^ 1).astype(y.dtype)

    assert not fake(CONV_U8S8, off_by_one).validate(golden).ok


def test_mlas_pair_saturation_classifier(dirs):
    """MLAS's AVX2 kernels (no VNNI) saturate u8 x s8 product pairs to int16: a peer that does is
    explained by the departure, and one that sums exactly (the spec) shows nothing."""
    golden = load_golden(dirs[CONV_U8S8.name])
    dep = CONV_U8S8.departures[1]
    assert dep.name == "mlas-avx2-u8s8-pair-saturation"

    def conv(inputs, datapath):
        i = inputs
        return qlinear_conv(i["x"], i["x_scale"], i["x_zero"], i["w"], i["w_scale"], i["w_zero"], i["y_scale"],
                            i["y_zero"], i.get("bias"), stride=tuple(i["stride"].tolist()),
                            padding=tuple(i["padding"].tolist()), dilation=tuple(i["dilation"].tolist()),
                            groups=int(i["groups"]), datapath=datapath, channels_last=True)

    pairs = fake(CONV_U8S8, lambda i: conv(i, "onnxruntime-x86-avx2")).validate(golden)
    s = summary(pairs, dep.name)
    assert pairs.ok and s["status"] == "seen" and s["seen"] > 0
    exact = fake(CONV_U8S8, lambda i: conv(i, "onnxruntime-x86")).validate(golden)
    assert exact.ok and summary(exact, dep.name)["status"] == "not seen"


# -- showing what is waived --------------------------------------------------------------------
def test_waived_codes_are_listed_in_console_and_reports(dirs, tmp_path, capsys, monkeypatch):
    n = domain_count(dirs[E8M0.name])
    adapter = fake(E8M0, e8m0_rounding_up)
    name = E8M0.departures[0].name
    monkeypatch.setitem(ADAPTERS, adapter.name, adapter)
    assert run_cli("validate", dirs[E8M0.name], "--adapter", adapter.name, "--report", tmp_path / "r.md") == 0
    out = capsys.readouterr().out
    assert f"{n} waived" in out
    waived = [line for line in out.splitlines() if name in line and "0x00 (" in line and "0x01 (" in line]
    assert len(waived) == n                                   # input, expected, got and departure on each line
    md = (tmp_path / "r.md").read_text()
    assert sum(name in line and "0x00 (" in line and "0x01 (" in line for line in md.splitlines()) == n
    assert "## Known departures" in md and "## Waived codes" in md
    # a bounded console list says how many there are
    assert run_cli("validate", dirs[E8M0.name], "--adapter", adapter.name, "--show", "1") == 0
    out = capsys.readouterr().out
    assert f"first 1 of {n}" in out
    assert sum(name in line and "0x01 (" in line for line in out.splitlines()) == 1
    r = adapter.validate(dirs[E8M0.name])
    page = r.html()
    assert page.count("0x01 (") == n and "Known departures" in page
    capped = r.markdown(waived_limit=1)
    assert f"first 1 of {n}" in capped and sum("0x01 (" in line for line in capped.splitlines()) == 1
    log = r.to_parquet(tmp_path / "v.parquet")
    import pyarrow.parquet as pq
    df = pq.read_table(log).to_pandas()
    assert (df["departure"] == name).sum() == n and df.loc[df["waived"], "departure"].eq(name).all()


def test_departures_not_seen_are_reported_in_the_console(dirs, capsys, monkeypatch):
    adapter = fake(E8M0, e8m0_spec)
    monkeypatch.setitem(ADAPTERS, adapter.name, adapter)
    assert run_cli("validate", dirs[E8M0.name], "--adapter", adapter.name) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if E8M0.departures[0].name in line)
    assert "not seen" in line


def test_list_adapters_prints_every_departure(capsys):
    assert run_cli("golden", "--list-adapters") == 0
    out = capsys.readouterr().out
    for adapter in ADAPTERS.values():
        assert adapter.name in out
        for d in adapter.departures:
            assert any(d.name in line and d.description in line for line in out.splitlines()), d.name


# -- manifests protect themselves ----------------------------------------------------------------
def canonical_digest(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@pytest.fixture
def e4m3_copy(tmp_path):
    out = tmp_path / "g"
    generate("encode", out, format="e4m3", saturate=False, random=16)
    return out


def test_manifest_holds_the_hash_of_its_own_content(e4m3_copy):
    manifest = json.loads((e4m3_copy / "manifest.json").read_text())
    assert manifest["manifest_sha256"] == canonical_digest(manifest)


def test_an_edited_manifest_is_refused_naming_manifest_json(e4m3_copy, capsys):
    path = e4m3_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["saturate"] = True                     # claim another configuration
    path.write_text(json.dumps(manifest, indent=1))
    with pytest.raises(GoldenError, match=r"manifest\.json.*(changed|edited)"):
        load_golden(e4m3_copy)
    with pytest.raises(GoldenError, match=r"manifest\.json"):
        run_cli("validate", e4m3_copy, "--outputs", e4m3_copy / "y.hex")
    assert "PASS" not in capsys.readouterr().out


def test_reformatting_a_manifest_keeps_it_valid(e4m3_copy):
    path = e4m3_copy / "manifest.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=True))
    assert load_golden(e4m3_copy).config["format"] == "e4m3"


def test_a_manifest_without_its_hash_is_refused_with_regenerate(e4m3_copy):
    path = e4m3_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["manifest_sha256"]
    path.write_text(json.dumps(manifest))
    with pytest.raises(GoldenError, match=r"manifest\.json.*regenerate"):
        load_golden(e4m3_copy)
    manifest["qsim_golden"] = 1                               # as an older qsim wrote it
    path.write_text(json.dumps(manifest))
    with pytest.raises(GoldenError, match=r"manifest\.json: layout version 1.*regenerate"):
        load_golden(e4m3_copy)
    manifest.update(qsim_golden=2, manifest_sha256="0" * 64)
    path.write_text(json.dumps(manifest))
    with pytest.raises(GoldenError, match=r"manifest\.json: content changed"):
        load_golden(e4m3_copy)


# -- format options an op cannot take ------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(op="mx", format="int8"), r"format \(--format\) int8.*mx.*e4m3.*fp4_e2m1"),
    (dict(op="mx", format="uint4", datapath="mxfp4"), r"format \(--format\) uint4.*mx"),
    (dict(op="mx", format="fp32"), r"format \(--format\) fp32.*at most 16 bits"),
    (dict(op="mx", datapath="edge-npu-int8"), r"mx: the element format int8 from hardware edge-npu-int8.*e4m3"),
    (dict(op="mx", format="e4m3", weight_format="int8"), r"weight_format \(--weight-format\).*mx"),
    (dict(op="encode", format="e4m3", output_format="int8"), r"output_format \(--output-format\).*encode"),
    (dict(op="decode", format="e4m3", weight_format="e5m2"), r"weight_format \(--weight-format\).*decode"),
    (dict(op="requant", datapath="gemmlowp", format="e4m3"), r"format \(--format\).*requant"),
    (dict(op="requant", datapath="gemmlowp", output_format="e4m3"),
     r"output_format \(--output-format\) e4m3.*int2.*uint8"),
    (dict(op="gemm", datapath="onnxruntime-x86", output_format="bf16"), r"output_format \(--output-format\) bf16"),
    (dict(op="gemm", datapath="mxfp4", format="int8"), r"format \(--format\) int8.*mxfp4"),
    (dict(op="gemm", datapath="mxfp4", weight_format="int4"), r"weight_format \(--weight-format\) int4.*mxfp4"),
    (dict(op="gemm", datapath="h100-fp8-like", output_format="int8"), r"output_format \(--output-format\).*float"),
    (dict(op="conv", datapath="bf16-fp32acc", output_format="e4m3"), r"output_format \(--output-format\)"),
    (dict(op="gemm", datapath="h100-fp8-like", format="e8m0"), r"format \(--format\) e8m0.*e4m3"),
    (dict(op="conv", datapath="bf16-fp32acc", weight_format="e8m0"), r"weight_format \(--weight-format\) e8m0"),
    (dict(op="gemm", datapath="onnxruntime-x86", weight_format="nope"), r"weight_format \(--weight-format\).*'nope'"),
    (dict(op="encode", format="nope"), r"format \(--format\).*unknown format 'nope'"),
])
def test_format_options_are_checked_by_name(kwargs, match):
    with pytest.raises((ValueError, KeyError), match=match):
        make_golden(random=1, **kwargs)


def test_format_options_that_fit_still_work():
    assert make_golden("mx", format="bf16", random=1).formats["elements"] == "bf16"
    assert make_golden("mx", datapath="mxfp4", random=1).formats["elements"] == "fp4_e2m1"
    assert make_golden("gemm", datapath="mxfp4", format="fp4_e2m1", random=1).formats["a"] == "fp4_e2m1"
    assert make_golden("requant", datapath="gemmlowp", output_format="uint8", random=1).formats["y"] == "uint8"
    # a hardware description's output format is the default (the requant op reads it as the plan does)
    assert make_golden("requant", datapath="edge-npu-int8", random=1).formats["y"] == "int8"


def test_cli_mx_int8_names_the_option(tmp_path):
    with pytest.raises(ValueError, match=r"--format.*int8.*e4m3"):
        run_cli("golden", "mx", "--format", "int8", "--out", tmp_path / "g")
    assert not (tmp_path / "g").exists()
