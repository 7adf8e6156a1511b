"""The dataset report: what it shows for real simulator runs, the Pareto set and heatmap on
hand-made data, the Markdown summary, atomic writes, the command and bad input."""

import argparse
import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from report_datasets import MLP_PRESETS, simulated_runs, toy_run, write_simulated, write_sweep_layout, write_toy

from qsim.report import build_report, load_report_data, pareto_optimal
from qsim.report import svg
from qsim.report.cli import register
from qsim.report.units import number

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of the simulated runs: (data, html text, markdown text, html path)."""
    root = tmp_path_factory.mktemp("report")
    dataset = write_simulated(root / "dataset")
    html_path, md_path = build_report(dataset, root / "out" / "runs.html", title="Digits <test> & co")
    return load_report_data(dataset), html_path.read_text(), md_path.read_text(), html_path


def charts(html: str) -> dict[str, ET.Element]:
    """Every inline SVG chart by id, parsed as XML (so each is well-formed)."""
    return {m[1]: ET.fromstring(m[0]) for m in re.finditer(r'<svg id="([^"]+)".*?</svg>', html, re.S)}


def test_every_section_and_configuration_is_shown(report):
    data, html, _, _ = report
    assert [m.model for m in data.models] == ["digits-cnn", "digits-mlp"]
    mlp = data.models[1]
    assert list(mlp.summary.index) == sorted(f"{hw} (max)" for hw in MLP_PRESETS)
    for section in ("how-to-read", "model-digits-cnn", "model-digits-mlp", "hardware", "formats"):
        assert f'id="{section}"' in html
    for config in mlp.summary.index:
        assert config in html
    for header in ("top-1 (%)", "energy per batch (µJ)", "energy per inference (µJ)", "cycles per batch",
                   "time per inference (µs)", "throughput (inferences/s)", "data moved per batch (kB)",
                   "SQNR of the worst layer (dB)", "overflow per batch (additions)"):
        assert f">{header}</th>" in html
    assert "<title>Digits &lt;test&gt; &amp; co</title>" in html       # the title is escaped
    assert not re.search(r">\s*nan\s*<", html, re.I)                    # missing values print as –


def test_self_contained(report):
    html = report[1]
    assert not re.search(r'<(script|link|img)[^>]+(src|href)=', html)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    assert "@import" not in html and "url(http" not in html


def test_summary_values_match_the_records(report):
    data = report[0]
    mlp = data.models[1].summary
    for records in simulated_runs():
        model = records[-1]
        if model["model"] != "digits-mlp":
            continue
        row = mlp.loc[f"{model['hardware']} (max)"]
        assert row["accuracy"] == model["top1"]
        assert row["energy_uj"] == pytest.approx(model["energy_total_pj"] / 1e6)
        assert row["inferences"] == 397                        # the digits test set
        assert row["inferences_per_s"] == pytest.approx(397 / model["seconds"])
        layers = records[:-1]
        assert row["min_sqnr_db"] == pytest.approx(min(r["sqnr_db"] for r in layers))
        traffic = sum(v for r in layers for k, v in r.items() if k.startswith("bytes_") and not math.isnan(v))
        assert row["bytes_total"] == pytest.approx(traffic)
        assert row["saturated"] == model["saturated"]
    assert mlp.loc["edge-npu-int8-acc16 (max)", "saturated"] > 0


def test_energy_terms_add_up_to_the_total(report):
    for m in report[0].models:
        assert np.allclose(m.energy_terms.sum(axis=1, min_count=1), m.summary["energy_uj"], rtol=1e-9)


def test_pareto_set_on_hand_made_points():
    energy = np.array([1.0, 2.0, 2.0, 3.0, 4.0, np.nan, 2.0, 0.5])
    accuracy = np.array([0.5, 0.7, 0.6, 0.7, 0.9, 0.99, 0.7, np.nan])
    # B (2, 0.7) and its duplicate are both optimal; (2, 0.6) and (3, 0.7) are dominated by B;
    # points with a missing value never are optimal
    assert pareto_optimal(energy, accuracy).tolist() == [True, True, False, False, True, False, True, False]


def test_pareto_set_and_latest_run_on_a_hand_made_dataset(tmp_path):
    dataset = write_toy(tmp_path / "d", [toy_run("a", "cheap", 0.80, 1e6), toy_run("b", "balanced", 0.90, 2e6),
                                         toy_run("c", "wasteful", 0.85, 3e6),
                                         toy_run("d1", "best", 0.10, 9e6, time_utc="2025-01-01T00:00:00Z"),
                                         toy_run("d2", "best", 0.95, 4e6, time_utc="2025-02-01T00:00:00Z")])
    summary = load_report_data(dataset).models[0].summary
    assert summary.loc["best (max)", "run_id"] == "d2"             # the latest run of a configuration
    assert summary["pareto"].to_dict() == {"balanced (max)": True, "best (max)": True, "cheap (max)": True,
                                           "wasteful (max)": False}
    html_path, _ = build_report(dataset, tmp_path / "toy.html")
    scatter = charts(html_path.read_text())["model-toy-pareto-chart"]
    assert len(scatter.findall(f".//{SVG}circle[@class='point optimal']")) == 3
    assert len(scatter.findall(f".//{SVG}circle[@class='point dominated']")) == 1
    assert len(scatter.findall(f".//{SVG}polyline[@class='frontier']")) == 1


def test_heatmap_has_one_cell_per_configuration_and_layer(report):
    data, html, _, _ = report
    for m in data.models:
        heatmap = charts(html)[f"model-{m.model}-sqnr-chart"]
        cells = heatmap.findall(f".//{SVG}g[@class='cell']")
        assert len(cells) == len(m.summary) * len(m.sqnr.columns)
        columns = [t.text for t in heatmap.findall(f"{SVG}text[@class='column-label']")]
        assert columns == [r["layer"] for r in _first_run(m.model)[:-1]]     # model order
        tips = [c.find(f"{SVG}rect/{SVG}title").text for c in cells]
        config, layer = m.summary.index[0], m.sqnr.columns[0]
        assert f"{config} · {layer}: {number(m.sqnr.loc[config, layer])} dB" in tips


def _first_run(model):
    return next(r for r in simulated_runs() if r[0]["model"] == model)


def test_heatmap_marks_missing_values():
    chart = svg.heatmap(["a", "b"], ["l1", "l2", "l3"], [[1.0, float("nan"), 3.0], [2.0, math.inf, 5.0]],
                        "h", "t")
    cells = ET.fromstring(chart).findall(f".//{SVG}g[@class='cell']")
    assert len(cells) == 6
    assert cells[1].find(f"{SVG}rect").get("fill") == svg.MISSING_FILL
    assert "no value" in cells[1].find(f"{SVG}rect/{SVG}title").text
    assert cells[4].find(f"{SVG}rect").get("fill") == svg.colour(1.0)    # +inf: the top colour


def test_layers_kept_in_fp32_are_shown(tmp_path, report):
    dataset = write_toy(tmp_path / "d", [toy_run("a", "x", 0.8, 1e6),
                                         toy_run("b", "y", 0.9, 2e6, fp32_layers=("fc2", "fc1"))])
    m = load_report_data(dataset).models[0]
    assert m.summary["fp32_layers"].to_dict() == {"x (max)": "", "y (max)": "fc1, fc2"}      # model order
    html_path, md_path = build_report(dataset, tmp_path / "r.html")
    html = html_path.read_text()
    assert ">kept in FP32</th>" in html and '<td class="text" data-v="fc1, fc2">fc1, fc2</td>' in html
    heatmap = charts(html)["model-toy-sqnr-chart"]
    marked = heatmap.findall(f".//{SVG}g[@class='cell marked']")
    assert [c.find(f"{SVG}rect/{SVG}title").text for c in marked] == ["y (max) · fc1: 30 dB (kept in FP32)",
                                                                       "y (max) · fc2: 20 dB (kept in FP32)"]
    assert all(c.find(f"{SVG}rect[@class='mark']") is not None for c in marked)
    assert len(heatmap.findall(f".//{SVG}g[@class='cell']")) == 4                          # the others: plain
    assert "kept in FP32" in [t.text for t in heatmap.iter(f"{SVG}text")]                 # in the legend
    lines = md_path.read_text().splitlines()
    header, _, row_x, row_y = lines[lines.index("## toy") + 2:][:4]
    assert header.startswith("| configuration | Pareto | kept in FP32 | top-1 (%) |")
    assert row_x.startswith("| x (max) | ★ |  | 80.00 |")
    assert row_y.startswith("| y (max) | ★ | fc1, fc2 | **90.00** |")
    assert "kept in FP32" not in report[1] and "kept in FP32" not in report[2]   # no column when none is


def test_infinite_values_show_and_sort(tmp_path):
    # layers that are exact (an FP32 datapath) have an infinite SQNR; JavaScript's parseFloat
    # reads "Infinity" but not Python's "inf", which left such rows unsortable
    dataset = write_toy(tmp_path / "d", [toy_run("a", "exact", 0.9, 1e6, layers=(("fc1", math.inf), ("fc2", math.inf))),
                                         toy_run("b", "lossy", 0.8, 1e6)])
    html = build_report(dataset, tmp_path / "r.html")[0].read_text()
    assert '<td class="num best" data-v="Infinity">∞</td>' in html           # worst layer SQNR of "exact"
    assert ">inf<" not in html


def test_fp32_accuracy_of_zero_is_still_drawn(tmp_path):
    dataset = write_toy(tmp_path / "d", [toy_run("a", "x", 0.0, 1e6, fp32_top1=0.0),
                                         toy_run("b", "y", 0.1, 2e6, fp32_top1=0.0)])
    scatter = charts(build_report(dataset, tmp_path / "r.html")[0].read_text())["model-toy-pareto-chart"]
    assert scatter.find(f".//{SVG}line[@class='reference']") is not None


def test_other_charts(report):
    data, html, _, _ = report
    found = charts(html)
    for m in data.models:
        slug = f"model-{m.model}"
        energy = found[f"{slug}-energy-chart"]
        segments = energy.findall(f".//{SVG}rect[@class='segment']")
        assert len(segments) == int((m.energy_terms > 0).to_numpy().sum())
        bars = found[f"{slug}-throughput-chart"].findall(f".//{SVG}rect")
        assert len([b for b in bars if b.get("class", "").startswith("bar")]) == len(m.summary)
        assert len([b for b in bars if b.get("class") == "bar best"]) == 1


def test_log_axis_when_values_span_decades():
    points = [svg.Point("a", 1.0, 0.5), svg.Point("b", 10.0, 0.6, True), svg.Point("c", 1000.0, 0.7, True)]
    ticks = [t.text for t in ET.fromstring(svg.pareto_scatter(points, "x", "y", "p", "t")).iter(f"{SVG}text")
             if t.get("class") == "tick"]
    assert {"1", "10", "100", "1,000"} <= set(ticks)
    assert svg.spans_decades([1, 50]) is False and svg.spans_decades([1, 101]) is True
    assert svg.nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert svg.log_ticks(3, 40) == [5, 10, 20]


def test_chart_text_is_escaped():
    chart = svg.bars(['<script>alert("x")</script> & co'], [1.0], "unit <b>", "id", "title & more")
    root = ET.fromstring(chart)                          # still well-formed XML
    assert "<script>" not in chart and root.find(f"{SVG}title").text == "title & more"


def test_markdown_summary(report):
    data, _, md, html_path = report
    lines = md.splitlines()
    assert lines[0] == "# Digits <test> & co"
    assert f"[{html_path.name}]({html_path.name})" in md
    for m in data.models:
        start = lines.index(f"## {m.model}") + 2
        header, rule, *rows = lines[start:start + 2 + len(m.summary)]
        assert header.startswith("| configuration | Pareto | top-1 (%) |")
        assert rule.count("|") == header.count("|")
        assert [r.split(" | ")[0].lstrip("| ") for r in rows] == list(m.summary.index)
        assert sum("★" in r for r in rows) == int(m.summary["pareto"].sum())
        assert any("**" in r for r in rows)                # the best values are bold


def test_markdown_path_option_and_default(tmp_path):
    write_toy(tmp_path / "d", [toy_run("a", "x", 0.8, 1e6)])
    html, md = build_report(tmp_path / "d", tmp_path / "r.html", markdown_path=tmp_path / "sub" / "s.md")
    assert md == tmp_path / "sub" / "s.md" and "(../r.html)" in md.read_text()
    assert build_report(tmp_path / "d", tmp_path / "q.html")[1] == tmp_path / "q.md"
    _, md = build_report(tmp_path / "d", tmp_path / "my report.html")
    assert "[my report.html](my%20report.html)" in md.read_text()       # a space would end the link
    with pytest.raises(ValueError, match="same file"):
        build_report(tmp_path / "d", tmp_path / "same.md", markdown_path=tmp_path / "same.md")


def test_sweep_layout_labels_and_stored_hardware(tmp_path):
    dataset = write_sweep_layout(tmp_path / "sweep")
    data = load_report_data(dataset)
    assert list(data.models[0].summary.index) == sorted(f"{hw} sweep-max" for hw in MLP_PRESETS[:3])
    html = build_report(dataset, tmp_path / "sweep.html")[0].read_text()
    for hw in MLP_PRESETS[:3]:
        assert f"stored description of {hw}" in html          # from hardware/<config_hash>.json
    assert ">hardware</th>" in html                           # sweep labels: hardware gets a column
    formats = {f["name"]: f for f in data.formats}
    assert formats["int8"]["used_as"] == "weights, activations, outputs"
    assert formats["e4m3"]["max"] == 448 and "fp32" in formats


def test_hardware_without_description_is_named(tmp_path):
    rows = toy_run("a", "my-npu.toml", 0.8, 1e6)
    dataset = write_toy(tmp_path / "d", [rows])
    data = load_report_data(dataset)
    assert data.hardware == [] and data.unresolved[0]["hardware"] == "my-npu.toml"
    html = build_report(dataset, tmp_path / "r.html")[0].read_text()
    assert "my-npu.toml" in html and "No stored description" in html


def test_missing_columns_and_cosine_models(tmp_path):
    dataset = write_toy(tmp_path / "d", [
        toy_run("a", "x", None, 1e6, with_bytes=False, cosine_mean=0.99, nn_agreement=0.9),
        toy_run("b", "y", None, 2e6, cosine_mean=0.999, nn_agreement=1.0)])
    m = load_report_data(dataset).models[0]
    assert m.accuracy_label == "mean cosine" and m.summary["accuracy"].tolist() == [0.99, 0.999]
    assert math.isnan(m.summary.loc["x (max)", "bytes_total"])
    html = build_report(dataset, tmp_path / "r.html")[0].read_text()
    assert ">mean cosine</th>" in html and "nearest neighbour" in html
    assert re.search(r'data-v="">–</td>', html)                  # x moved no recorded bytes


def test_no_temporary_files_are_left(report):
    html_path = report[3]
    assert sorted(p.name for p in html_path.parent.iterdir()) == ["runs.html", "runs.md"]


@pytest.mark.parametrize("make, error, message", [
    (lambda d: d / "absent", FileNotFoundError, "dataset directory not found"),
    (lambda d: d, FileNotFoundError, "no qsim records"),
    (lambda d: write_toy(d, [[r for r in toy_run("a", "x", 0.8, 1e6) if r["layer"] != "__model__"]]),
     ValueError, "no model rows"),
])
def test_bad_input_names_the_path(tmp_path, make, error, message):
    (tmp_path / "d").mkdir()
    dataset = make(tmp_path / "d")
    with pytest.raises(error, match=message) as caught:
        build_report(dataset, tmp_path / "out" / "r.html")
    assert str(dataset) in str(caught.value)
    assert not (tmp_path / "out").exists()                     # nothing written


def test_command(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="qsim")
    register(parser.add_subparsers(dest="command"))
    help_text = parser._subparsers._group_actions[0].choices["report"].format_help()
    assert "qsim report reports/digits-cnn -o reports/digits-cnn.html" in help_text
    write_toy(tmp_path / "d", [toy_run("a", "x", 0.8, 1e6)])
    args = parser.parse_args(["report", str(tmp_path / "d"), "-o", str(tmp_path / "r.html"), "--title", "T"])
    assert args.func(args) == 0
    assert "<h1>T</h1>" in (tmp_path / "r.html").read_text() and (tmp_path / "r.md").exists()
    assert "report:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["report", str(tmp_path / "d")])     # -o is required


def test_pareto_labels_never_overlap_even_when_crowded():
    """Forty points on one spot: each label gets a free spot or none (then a note says so); the
    placed label boxes never intersect."""
    import re

    from qsim.report import svg
    points = [svg.Point(f"configuration number {i}", 1.0, 0.5, i == 0) for i in range(40)]
    chart = svg.pareto_scatter(points, "energy", "accuracy", "c", "crowded", width=500, height=300)
    labels = re.findall(r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="(\w+)" class="point-label[^"]*">([^<]*)<', chart)
    assert 5 <= len(labels) < 40 and "unlabelled for lack of room" in chart
    boxes = []
    for x, y, anchor, label in labels:
        w = svg._text_width(label)
        left = float(x) if anchor == "start" else float(x) - w
        boxes.append((left, float(y) - 12, left + w, float(y) + 1))
    assert not any(svg._overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_cards_show_each_presets_simplifications(tmp_path):
    from qsim.hardware import load_hardware
    from qsim.io import write_records
    from qsim.report import build_report
    from qsim.sim import simulate
    hw = load_hardware("h100-fp8")
    write_records(simulate("digits-mlp", hw), tmp_path / "d", hardware=hw)
    html, _ = build_report(tmp_path / "d", tmp_path / "r.html")
    card = html.read_text().split('<article class="card"', 1)[1].split("</article>", 1)[0]
    assert "Simplifications" in card and len(hw.simplifications) == 3
    assert "at 7 nm (derived from the formats)" in card
    # the MAC unit's area from the same formats, at the preset's node
    from qsim.plan import resolved_facts
    from qsim.report.units import number
    assert f"area per MAC</th><td>{number(resolved_facts(hw)['mac_area_um2'])} µm² at 7 nm" in card
    for item in hw.simplifications:
        assert f"<li>{item}</li>" in card
