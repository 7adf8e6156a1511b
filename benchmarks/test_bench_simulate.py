"""Issue 5 speed target: the digits CNN's whole test set under all hardware presets (11), bit-exact,
in under 30 s (the FP32 numpy forward pass alongside for scale)."""

from qsim.hardware import hardware_presets
from qsim.sim import load_model, simulate
from qsim.sim.graph import forward_fp32


def test_digits_cnn_all_presets(benchmark, mark_role):
    benchmark.group = "digits CNN, 397 test images"
    mark_role("qsim")
    presets = hardware_presets()
    assert len(presets) >= 8
    runs = benchmark.pedantic(lambda: [simulate("digits-cnn", hw) for hw in presets], rounds=3, iterations=1)
    assert len(runs) == len(presets)


def test_digits_cnn_fp32_forward(benchmark, mark_role):
    benchmark.group = "digits CNN, 397 test images"
    mark_role("peer", peer="FP32 numpy forward pass (one model, for scale)")
    work = load_model("digits-cnn")
    benchmark(forward_fp32, work.layers, work.test)
