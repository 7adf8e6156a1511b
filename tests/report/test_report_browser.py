"""The HTML report in headless Chromium: it renders without console errors, every section and
chart is in the DOM with a size, the tables sort, and a screenshot of the whole page is saved
to $QSIM_TEST_OUTPUT (default test-output/) for a person to look at.

Needs chromium, chromedriver and selenium (CI installs them); without them the test fails
rather than skips, so a missing browser is never mistaken for a pass."""

import os
import shutil
from pathlib import Path

import pytest
from report_datasets import write_sweep_layout

from qsim.report import build_report, load_report_data

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _chrome():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the browser test needs selenium: pip install selenium")
    browser = next(filter(None, map(shutil.which, CHROMIUM)), None)
    driver_path = shutil.which("chromedriver")
    if browser is None or driver_path is None:
        pytest.fail("the browser test needs Chromium and chromedriver on PATH "
                    "(Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = browser
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver_path))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A sweep of digits-mlp on three hardware presets (real simulator runs) and its report."""
    root = tmp_path_factory.mktemp("browser")
    dataset = write_sweep_layout(root / "dataset")
    html_path, _ = build_report(dataset, root / "report.html")
    return load_report_data(dataset), html_path


@pytest.fixture(scope="module")
def page(report):
    """The report open in Chromium."""
    driver = _chrome()
    try:
        driver.get(report[1].as_uri())
        yield driver
    finally:
        driver.quit()


def test_renders_without_console_errors(page):
    severe = [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == [], severe
    assert page.execute_script("return document.readyState") == "complete"


def test_sections_and_charts_are_in_the_dom(page, report):
    from selenium.webdriver.common.by import By
    data = report[0]
    for section in ("how-to-read", "hardware", "formats"):
        assert page.find_element(By.ID, section).is_displayed()
    for m in data.models:
        section = page.find_element(By.ID, f"model-{m.model}")
        assert len(section.find_elements(By.CSS_SELECTOR, "table.summary tbody tr")) == len(m.summary)
        for chart in ("pareto", "sqnr", "throughput", "energy"):
            svg = section.find_element(By.ID, f"model-{m.model}-{chart}-chart")
            assert svg.is_displayed() and svg.size["width"] > 200 and svg.size["height"] > 50, chart
        cells = section.find_elements(By.CSS_SELECTOR, f"#model-{m.model}-sqnr-chart g.cell")
        assert len(cells) == len(m.summary) * len(m.sqnr.columns)
        assert len(section.find_elements(By.CSS_SELECTOR, ".point.optimal")) == int(m.summary["pareto"].sum())
    assert len(page.find_elements(By.CSS_SELECTOR, "#hardware article.card")) == len(data.hardware)
    assert len(page.find_elements(By.CSS_SELECTOR, "#formats tbody tr")) == len(data.formats)


def test_tables_sort_on_click(page):
    from selenium.webdriver.common.by import By
    table = page.find_element(By.CSS_SELECTOR, "#model-digits-mlp table.summary")
    headers = table.find_elements(By.CSS_SELECTOR, "thead th")
    column = next(i for i, th in enumerate(headers) if th.text.replace("\n", " ") == "energy per batch (µJ)")

    def energies():
        return [float(row.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-v"))
                for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    headers[column].click()
    assert energies() == sorted(energies())
    headers[column].click()
    assert energies() == sorted(energies(), reverse=True)
    assert headers[column].get_attribute("aria-sort") == "descending"
    assert not [e for e in page.get_log("browser") if e["level"] == "SEVERE"]


def test_screenshot(page):
    out = Path(os.environ.get("QSIM_TEST_OUTPUT", "test-output"))
    out.mkdir(parents=True, exist_ok=True)
    height = page.execute_script("return document.documentElement.scrollHeight")
    page.set_window_size(1400, height)
    path = out / "report.png"
    assert page.save_screenshot(str(path)) and path.stat().st_size > 10_000
    print(f"report screenshot: {path.resolve()}")


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """Every preset on digits-mlp under --iso (long names, a dozen configurations) with the mapper,
    at batch 1: the widest summary and the most crowded Pareto plot the presets make."""
    from qsim.cli import main
    root = tmp_path_factory.mktemp("crowded")
    assert main(["compare", "--model", "digits-mlp", "--iso", "7", "--set", "array.mapper=energy", "--batch", "1",
                 "--out", str(root / "dataset")]) == 0
    html_path, _ = build_report(root / "dataset", root / "report.html")
    driver = _chrome()
    try:
        driver.set_window_size(1400, 1000)
        driver.get(html_path.as_uri())
        yield driver
    finally:
        driver.quit()


def test_summary_fits_1400_pixels(crowded):
    width = crowded.execute_script("return window.innerWidth")
    assert width == 1400
    assert crowded.execute_script("return document.documentElement.scrollWidth") <= width
    wraps = crowded.execute_script("return [...document.querySelectorAll('table.summary')]"
                                   ".map(t => [t.parentElement.scrollWidth, t.parentElement.clientWidth])")
    assert wraps and all(scroll <= client for scroll, client in wraps), wraps


def test_pareto_labels_never_overlap(crowded):
    charts = crowded.execute_script("""return [...document.querySelectorAll('svg[id$="-pareto-chart"]')].map(svg =>
        [...svg.querySelectorAll('text.point-label')].map(t => {
            const r = t.getBoundingClientRect(); return [t.textContent, r.left, r.top, r.right, r.bottom]; }))""")
    assert charts and all(len(c) >= 8 for c in charts)          # most of them are labelled
    for labels in charts:
        overlaps = [(a[0], b[0]) for i, a in enumerate(labels) for b in labels[i + 1:]
                    if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]]
        assert overlaps == []


def test_per_layer_cost_tables(crowded):
    from selenium.webdriver.common.by import By
    from qsim.hardware import hardware_presets
    details = crowded.find_elements(By.CSS_SELECTOR, "details.layers")
    assert len(details) == len(hardware_presets())
    details[0].find_element(By.TAG_NAME, "summary").click()
    table = details[0].find_element(By.CSS_SELECTOR, "table.layers")
    headers = [th.text.replace("\n", " ") for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    for header in ("dataflow (mapper)", "DRAM tile M×K×N, loops", "cycles per batch", "bound", "utilization (%)",
                   "MAC energy (nJ)", "energy (nJ)"):
        assert header in headers
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 3                                                      # fc1, relu1, fc2
    tile = headers.index("DRAM tile M×K×N, loops")
    cells = rows[0].find_elements(By.TAG_NAME, "td")
    assert cells[tile].text.endswith("untiled") or cells[tile].text.split()[-1] in ("mnk", "nmk", "mkn", "kmn", "nkm", "knm")


def test_screenshot_at_1400_pixels(crowded):
    out = Path(os.environ.get("QSIM_TEST_OUTPUT", "test-output"))
    out.mkdir(parents=True, exist_ok=True)
    height = crowded.execute_script("return document.documentElement.scrollHeight")
    crowded.set_window_size(1400, height)
    path = out / "report-1400.png"
    assert crowded.save_screenshot(str(path)) and path.stat().st_size > 10_000
    width = int.from_bytes(path.read_bytes()[16:20], "big")          # PNG IHDR: width in pixels
    assert width == 1400
    print(f"report screenshot at 1400 px: {path.resolve()}")
