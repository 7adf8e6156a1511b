"""Sweeps: grid expansion and validation, the partitioned dataset, resuming after failures and
kills, identical results on 1 worker, 2 workers and a Dask cluster, the command line, and
per-layer sensitivity."""

import argparse
import json
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

import qsim.sweep.run as sweep_run
from qsim.io import file_metadata, read_hardware
from qsim.report import load_report_data
from qsim.sim import simulate
from qsim.sweep import PointsFailed, SweepError, load_sweep, parse_sweep, read_sweep, run_sweep
from qsim.sweep.cli import register
from qsim.sweep.run import open_runner, part_path

SMALL = """
name = "small"
models = ["digits-mlp"]
calibration = ["max", "percentile"]
[[hardware]]
preset = "edge-npu-int8"
[hardware.grid]
"datapath.accumulator.bits" = [16, 32]
"datapath.weights.granularity" = ["per-tensor", "per-channel"]
[[hardware]]
preset = "h100-fp8"
"""


def small(text=SMALL):
    return parse_sweep(textwrap.dedent(text))


def results(out):
    """The result columns of a sweep dataset, in a fixed order (run_id and time vary by run)."""
    df = read_sweep(out).drop(columns=["run_id", "time_utc"])
    return df.sort_values(["point_id", "layer"]).reset_index(drop=True)


def test_grid_expands_in_file_order_with_stable_ids():
    sweep = small()
    points = sweep.points
    assert len(points) == (2 * 2 + 1) * 2
    assert [p.config for p in points[:3]] == ["edge-npu-int8 acc16 per-tensor max",
                                             "edge-npu-int8 acc16 per-tensor percentile",
                                             "edge-npu-int8 acc16 per-channel max"]
    assert points[-1].config == "h100-fp8 percentile" and points[-1].overrides == ()
    first = points[0].hardware
    assert first.resolve_datapath().accumulator.bits == 16 and first.datapath.weights.granularity == "per-tensor"
    assert len({p.point_id for p in points}) == len(points)
    assert [p.point_id for p in small().points] == [p.point_id for p in points]      # stable
    reseeded = small(SMALL.replace('name = "small"', 'name = "other"\nseed = 1'))
    assert not {p.point_id for p in reseeded.points} & {p.point_id for p in points}


@pytest.mark.parametrize("change, key", [
    (('name = "small"', 'name = "small"\nmodles = ["digits-mlp"]'), "unknown key modles"),
    (('models = ["digits-mlp"]', 'models = ["resnet50"]'), "models: unknown 'resnet50'"),
    (('models = ["digits-mlp"]', "models = []"), "models must be a non-empty list"),
    (('models = ["digits-mlp"]', 'models = [["digits-mlp"]]'), "models: unknown ['digits-mlp']"),
    (('calibration = ["max", "percentile"]', 'calibration = ["max", "kl"]'), "calibration: unknown 'kl'"),
    (('name = "small"\n', ""), "missing key name"),
    (('name = "small"', 'name = "small"\nseed = "zero"'), "seed must be an integer"),
    (('name = "small"', 'name = "small"\ndescription = 3'), "description must be a string"),
    (('preset = "h100-fp8"', 'preset = "h200-fp8"'), "hardware[1] (h200-fp8): unknown hardware 'h200-fp8'"),
    (('preset = "h100-fp8"', 'presets = "h100-fp8"'), "unknown key hardware[1].presets"),
    (('[16, 32]', '[]'), 'hardware[0].grid."datapath.accumulator.bits" must be a non-empty list'),
    (('[16, 32]', '16'), 'hardware[0].grid."datapath.accumulator.bits" must be a non-empty list'),
    (('[16, 32]', '[16, 4]'), "datapath.accumulator.bits = 4: accumulator bits must be an integer from 8 to 64"),
    (('"datapath.accumulator.bits"', '"datapath.acumulator_bits"'), "unknown key datapath.acumulator_bits"),
    (('"datapath.weights.granularity" = ["per-tensor", "per-channel"]', '"datapath.weights.granularity" = ["per-row"]'),
     "datapath.weights.granularity must be one of"),
])
def test_spec_errors_name_the_key(change, key):
    with pytest.raises(SweepError) as e:
        small(SMALL.replace(*change))
    assert key in str(e.value)


def test_spec_errors_without_any_hardware_or_twice_the_same_point():
    with pytest.raises(SweepError, match="missing key hardware"):
        small('name = "x"\nmodels = ["digits-mlp"]')
    with pytest.raises(SweepError, match="appears twice"):
        small(SMALL + '[[hardware]]\npreset = "h100-fp8"\n')
    with pytest.raises(SweepError, match="malformed TOML"):
        small("name = ")


def test_hardware_files_are_found_next_to_the_sweep_file(tmp_path):
    from qsim.hardware.spec import PRESET_DIR
    (tmp_path / "hw").mkdir()
    text = (PRESET_DIR / "edge-npu-int8.toml").read_text().replace('name = "edge-npu-int8"', 'name = "my-npu"')
    (tmp_path / "hw" / "my-npu.toml").write_text(text)
    (tmp_path / "sweep.toml").write_text('name = "f"\nmodels = ["digits-mlp"]\n'
                                         '[[hardware]]\npreset = "hw/my-npu.toml"\n'
                                         '[hardware.grid]\n"datapath.accumulator.bits" = [24]\n')
    point, = load_sweep(tmp_path / "sweep.toml").points
    assert point.config == "my-npu acc24 max" and point.hardware.resolve_datapath().accumulator.bits == 24


def test_dataset_layout_metadata_and_columns(tmp_path):
    sweep = small()
    summary = run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert (summary.total, summary.ran, summary.skipped) == (10, 10, 0)
    assert {f.name for f in tmp_path.iterdir()} == {f"part-{p.point_id}.parquet" for p in sweep.points}
    for i, point in enumerate(sweep.points):            # each file says which sweep and point it is
        tag = file_metadata(part_path(tmp_path, point))["sweep"]
        assert (tag["name"], tag["index"], tag["points"]) == ("small", i, 10)
        assert tag["spec"]["hardware"][0]["grid"]["datapath.accumulator.bits"] == [16, 32]
    df = read_sweep(tmp_path)
    assert {"config", "point_id", "model", "hardware", "layer", "overrides", "top1"} <= set(df.columns)
    model_rows = df[df.layer == "__model__"]
    assert model_rows.config.tolist() == [p.config for p in sweep.points]          # manifest order
    assert json.loads(model_rows.overrides.iloc[0]) == {"datapath.accumulator.bits": 16,
                                                        "datapath.weights.granularity": "per-tensor"}
    stored = read_hardware(tmp_path)
    assert set(stored) == set(df.config_hash)
    assert {hw["name"] for hw in stored.values()} == {"edge-npu-int8", "h100-fp8"}
    acc16 = model_rows[model_rows.config.str.contains("acc16")]
    assert (acc16.overflow > 0).all()                    # 16-bit accumulators wrap on this model


def test_resume_skips_finished_points(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep_run, "simulate", lambda *a, **k: calls.append(a) or simulate(*a, **k))
    sweep = small()
    run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert len(calls) == len(sweep.points)
    stamps = {f: f.stat().st_mtime_ns for f in tmp_path.rglob("part-*.parquet")}
    # what a kill during an atomic write leaves: a re-run clears it
    left_over = [tmp_path / ".part-x.parquet.1.tmp", tmp_path / ".part-y.parquet.2.tmp"]
    for f in left_over:
        f.write_text("half")
    summary = run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert len(calls) == len(sweep.points) and (summary.skipped, summary.ran) == (len(sweep.points), 0)
    assert {f: f.stat().st_mtime_ns for f in tmp_path.rglob("part-*.parquet")} == stamps
    assert not any(f.exists() for f in left_over)


def test_a_failing_point_loses_nothing_else_and_a_rerun_finishes_it(tmp_path, monkeypatch):
    sweep = small()
    bad = sweep.points[3]

    def flaky(model, hardware, **kw):
        if hardware is bad.hardware and kw["calibration"] == bad.calibration:
            raise FloatingPointError("simulated crash")
        return simulate(model, hardware, **kw)

    monkeypatch.setattr(sweep_run, "simulate", flaky)
    with pytest.raises(PointsFailed, match="simulated crash") as e:
        run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert (e.value.summary.ran, len(e.value.summary.failed)) == (len(sweep.points) - 1, 1)
    assert not part_path(tmp_path, bad).exists()
    monkeypatch.setattr(sweep_run, "simulate", simulate)
    summary = run_sweep(sweep, tmp_path, workers=1, progress=False)
    assert (summary.ran, summary.skipped) == (1, len(sweep.points) - 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_sweep_leaves_only_complete_files_and_resumes(tmp_path, workers):
    import psutil                          # comes with dask distributed (the test extra)
    spec = tmp_path / "slow.toml"          # entropy calibration: slow enough to kill midway
    spec.write_text(SMALL.replace('["max", "percentile"]', '["entropy", "mse"]'))
    out = tmp_path / "out"
    code = (f"from qsim.sweep import run_sweep; "
            f"run_sweep({str(spec)!r}, {str(out)!r}, workers={workers}, progress=False)")
    proc = subprocess.Popen([sys.executable, "-P", "-c", code])
    try:
        deadline = time.monotonic() + 60
        while len(list(out.glob("part-*.parquet"))) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            time.sleep(0.02)
        helpers = psutil.Process(proc.pid).children(recursive=True)       # forkserver and pool workers
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    gone, alive = psutil.wait_procs(helpers, timeout=10)
    # a zombie has exited: it only waits for its new parent (init, which may not reap at once)
    alive = [p for p in alive if _status(p) not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)]
    assert not alive, "worker processes outlived the killed sweep"
    finished = list(out.glob("part-*.parquet"))
    assert 2 <= len(finished) < 10
    for f in finished:
        assert pq.read_table(f).num_rows == 4                 # 3 layers and the model row: complete
    assert not [f for f in out.rglob("*") if not f.name.startswith(".") and f.suffix != ".parquet"]
    summary = run_sweep(spec, out, workers=1, progress=False)
    assert (summary.skipped, summary.ran) == (len(finished), 10 - len(finished))
    assert not list(out.rglob(".*.tmp")) and len(read_sweep(out)) == 10 * 4


def test_results_identical_on_one_worker_two_workers_and_a_dask_cluster(tmp_path):
    import distributed                     # the test extra (qsim[dist]): a missing one fails, never skips
    sweep = small()
    run_sweep(sweep, tmp_path / "one", workers=1, progress=False)
    run_sweep(sweep, tmp_path / "two", workers=2, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        run_sweep(sweep, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False)
    one = results(tmp_path / "one")
    assert len(one) == len(sweep.points) * 4
    pd.testing.assert_frame_equal(one, results(tmp_path / "two"), check_exact=True)
    pd.testing.assert_frame_equal(one, results(tmp_path / "dask"), check_exact=True)


def test_runner_arguments_are_checked():
    for workers in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            open_runner(workers)
    with pytest.raises(ValueError, match="not both"):
        open_runner(2, "tcp://127.0.0.1:8786")


def parser():
    p = argparse.ArgumentParser(prog="qsim")
    register(p.add_subparsers(dest="command"))
    return p


def test_command_line_runs_a_sweep_and_explains_itself(tmp_path, capsys):
    spec = tmp_path / "small.toml"
    spec.write_text(SMALL)
    args = parser().parse_args(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"])
    assert args.func(args) == 0
    assert "10 points: 10 run, 0 already done" in capsys.readouterr().out
    for command in ("sweep", "sensitivity"):
        with pytest.raises(SystemExit):
            parser().parse_args([command, "--help"])
        assert "Examples:" in capsys.readouterr().out
    spec.write_text(SMALL.replace("digits-mlp", "digits-mpl"))
    args = parser().parse_args(["sweep", str(spec), "--out", str(tmp_path / "out")])
    with pytest.raises(ValueError, match="models: unknown 'digits-mpl'"):
        args.func(args)


@pytest.mark.parametrize("model", ["digits-mlp", "digits-cnn"])
def test_sensitivity_ranks_layers_and_keeps_the_worst_in_fp32(model, tmp_path):
    from qsim.sweep import layer_sensitivity
    from qsim.sweep.sensitivity import write_sensitivity
    out = tmp_path / "out"
    result = layer_sensitivity(model, "edge-npu-int8-acc16", target_drop=0.01, out_dir=out, workers=1)
    gemms = [r["layer"] for r in simulate(model, "edge-npu-int8-acc16") if r.get("unit") == "gemm"]
    assert sorted(r.layer for r in result.ranking) == sorted(gemms)
    drops = [r.drop for r in result.ranking]
    assert drops == sorted(drops, reverse=True) and drops[0] > 0.05      # 16-bit accumulators hurt
    steps = result.partial
    assert [s.k for s in steps] == list(range(len(steps)))
    assert steps[0].drop > 0.01 and steps[-1].drop <= 0.01                # acc16 costs > 1 point of top-1
    assert all(s.drop > 0.01 for s in steps[:-1])
    assert steps[-1].fp32_layers == tuple(r.layer for r in result.ranking[:steps[-1].k])
    json_path, md_path = write_sensitivity(result, out)
    assert (json_path, md_path) == (tmp_path / "out.sensitivity.json", tmp_path / "out.sensitivity.md")
    assert json.loads(json_path.read_text())["metric"] == "top1" and "| rank | layer |" in md_path.read_text()
    # every run is a point of the dataset: a second analysis only reads them back
    stamps = {f: f.stat().st_mtime_ns for f in out.rglob("part-*.parquet")}
    assert layer_sensitivity(model, "edge-npu-int8-acc16", out_dir=out, workers=1) == result
    assert {f: f.stat().st_mtime_ns for f in out.rglob("part-*.parquet")} == stamps
    # the report of the runs names the layers each kept in FP32, as the sweep recorded them
    summary = load_report_data(out).models[0].summary
    assert (summary["fp32_layers"] != "").any()
    for row in read_sweep(out).query("layer == '__model__'").itertuples():
        kept = [name for name in gemms if name in row.fp32_layers.split(",")]
        assert summary.loc[row.config, "fp32_layers"] == ", ".join(kept)


def test_sensitivity_rejects_bad_input_before_running(tmp_path):
    from qsim.sweep import layer_sensitivity
    for kwargs, message in [({"model": "resnet"}, "unknown model 'resnet'"),
                            ({"calibration": "kl"}, "unknown calibration 'kl'"),
                            ({"hardware": "h200"}, "unknown hardware 'h200'"),
                            ({"target_drop": -0.1}, "target_drop must be a number >= 0")]:
        args = {"model": "digits-mlp", "hardware": "edge-npu-int8", **kwargs}
        with pytest.raises(ValueError, match=message):
            layer_sensitivity(out_dir=tmp_path, workers=1, **args)
    assert not list(tmp_path.iterdir())


def _status(process) -> str:
    import psutil
    try:
        return process.status()
    except psutil.NoSuchProcess:
        return psutil.STATUS_DEAD
