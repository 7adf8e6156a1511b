"""qsim's models of PyTorch's quantized CPU kernels against torch 2.13, op by op, on the fbgemm
and qnnpack engines: the quantize rules (torch.quantize_per_tensor / per_channel) on ties and
boundaries, dequantize, the dynamic linear (float in, float out), convolution, add, cat and
pooling in both memory layouts, with tie-rich (power-of-two) scales."""

import warnings

import numpy as np
import pytest
import torch
import torch.ao.nn.intrinsic.quantized as nniq
import torch.ao.nn.quantized as nnq
import torch.nn.functional as F

from qsim.datapaths import qlinear_conv, qlinear_dynamic, torch_cpu
from qsim.datapaths.requant import fma_float32
from qsim.quant.intquant import quantize_int
from qsim.sim.torch_quant import engine_datapath

# fbgemm's kernels on this CPU: exact VNNI sums, or AVX2's saturating pairs
ENGINES = [("fbgemm", engine_datapath("fbgemm")), ("qnnpack", "qnnpack")]
CPU = torch_cpu.AtenCPU(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())
RANGES = {torch.quint8: ("uint8", 0, 255), torch.qint8: ("int8", -128, 127)}


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():     # quantized tensor creation is deprecated in torch 2.13
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def engine(request):
    old = torch.backends.quantized.engine
    torch.backends.quantized.engine = request.param
    yield request.param
    torch.backends.quantized.engine = old


def qtensor(codes, scale, zero, channels_last=False):
    t = torch._make_per_tensor_quantized_tensor(torch.from_numpy(codes), float(scale), int(zero))
    return t.contiguous(memory_format=torch.channels_last) if channels_last else t


def tie_inputs(rng, scale, n):
    """Values on and next to the rounding ties of `scale`, and at the ends of the range."""
    k = rng.integers(-400, 400, n)
    x = ((k + 0.5) * np.float64(np.float32(scale))).astype(np.float32)
    near = np.nextafter(x, rng.choice([-np.inf, np.inf], n).astype(np.float32))
    ends = np.array([np.inf, -np.inf, 3e38, -3e38, 0.0, -0.0], np.float32)
    return np.concatenate([x, near, ends])


@pytest.mark.parametrize("dtype", [torch.quint8, torch.qint8])
def test_quantize_per_tensor_rule(dtype):
    fmt, lo, hi = RANGES[dtype]
    rng = np.random.default_rng(1)
    wrong = {"divide": 0, "reciprocal": 0, "reciprocal_add": 0}
    for _ in range(120):
        s = np.float32(10 ** rng.uniform(-4, 2))
        zp = int(rng.integers(lo, hi + 1))
        x = tie_inputs(rng, s, 40)
        want = torch.quantize_per_tensor(torch.from_numpy(x), float(s), zp, dtype).int_repr().numpy()
        np.testing.assert_array_equal(quantize_int(x, fmt, s, zp, rule="reciprocal_fma"), want)
        for rule in wrong:
            wrong[rule] += int((quantize_int(x, fmt, s, zp, rule=rule) != want).sum())
    assert min(wrong.values()) > 50, wrong           # the ties tell the rules apart


@pytest.mark.parametrize("dtype", [torch.quint8, torch.qint8])
def test_quantize_per_channel_rule(dtype):
    fmt, lo, hi = RANGES[dtype]
    rng = np.random.default_rng(2)
    wrong = {"divide": 0, "reciprocal": 0, "reciprocal_fma": 0}
    for axis in (0, 1):
        for _ in range(40):
            c = int(rng.integers(1, 6))
            s = (10 ** rng.uniform(-4, 1, c)).astype(np.float32)
            zp = rng.integers(lo, hi + 1, c)
            x = np.stack([tie_inputs(rng, si, 30) for si in s], axis=axis)
            want = torch.quantize_per_channel(torch.from_numpy(x), torch.from_numpy(s.astype(np.float64)),
                                              torch.from_numpy(zp), axis, dtype).int_repr().numpy()
            np.testing.assert_array_equal(quantize_int(x, fmt, s, zp, axis=axis, rule="reciprocal_add"), want)
            for rule in wrong:
                wrong[rule] += int((quantize_int(x, fmt, s, zp, axis=axis, rule=rule) != want).sum())
    assert min(wrong.values()) > 50, wrong


def reference_quantize(x, scale, zero, rule, lo, hi):
    """The PyTorch rules in numpy float64, element by element (requant.fma_float32 gives the
    single rounding of an FMA): the reference for the compiled kernel."""
    x = x.astype(np.float32)
    inv = np.float32(1) / np.float32(scale)
    out = []
    for v in x:
        if rule == "reciprocal_add":
            r = np.rint(np.float32(np.float32(v * inv) + np.float32(zero)))
            out.append(lo if r < lo else hi if r > hi else int(r))
            continue
        f = fma_float32(v, inv, np.float32(zero)) if rule == "reciprocal_fma" else np.float32(v * inv)
        f = min(f, np.float32(2 ** 31 - 128))
        r = int(np.rint(f)) if f >= -2.0 ** 31 else -(1 << 31)          # CVTPS2DQ
        if rule == "reciprocal":
            r = (r + zero + (1 << 31)) % (1 << 32) - (1 << 31)            # int32 wrap
        out.append(min(max(r, lo), hi))
    return np.array(out)


@pytest.mark.parametrize("rule", ["reciprocal", "reciprocal_add", "reciprocal_fma"])
def test_quantize_kernel_against_reference(rule):
    """Ties, their neighbours, subnormals, -0, infinities, values past int32 and zero points
    at the ends of the range."""
    rng = np.random.default_rng(12)
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, np.inf, -np.inf, 3e38, -3e38, 2.1e9, -2.1e9, 4e9],
                       np.float32)
    for fmt, lo, hi in (("uint8", 0, 255), ("int8", -128, 127), ("int16", -32768, 32767)):
        for _ in range(25):
            s = np.float32(10 ** rng.uniform(-6, 3))
            zero = int(rng.choice([lo, hi, 0, int(rng.integers(lo, hi + 1))]))
            x = np.concatenate([tie_inputs(rng, s, 30), special, rng.normal(0, 300 * s, 30).astype(np.float32)])
            np.testing.assert_array_equal(quantize_int(x, fmt, s, zero, rule=rule),
                                          reference_quantize(x, s, zero, rule, lo, hi), err_msg=f"{fmt} {s} {zero}")


def test_quantize_rule_errors():
    with pytest.raises(ValueError, match="unknown quantize rule"):
        quantize_int(np.zeros(3, np.float32), "uint8", 0.5, 0, rule="torch")
    with pytest.raises(ValueError, match="rounds half to even"):
        quantize_int(np.zeros(3, np.float32), "uint8", 0.5, 0, rounding="rna", rule="reciprocal_fma")


def test_dequantize():
    rng = np.random.default_rng(3)
    for dtype in (torch.quint8, torch.qint8):
        fmt, lo, hi = RANGES[dtype]
        q = rng.integers(lo, hi + 1, (4, 50)).astype(fmt)
        s, z = np.float32(0.0137), int(rng.integers(lo, hi + 1))
        want = torch._make_per_tensor_quantized_tensor(torch.from_numpy(q), float(s), z).dequantize().numpy()
        np.testing.assert_array_equal(torch_cpu.dequantize(q, s, z).view(np.int32), want.view(np.int32))


@pytest.mark.parametrize("engine,preset", ENGINES, indirect=["engine"])
def test_dynamic_linear(engine, preset):
    """quantized::linear_dynamic / linear_relu_dynamic: float outputs bitwise equal."""
    rng = np.random.default_rng(4)
    for t in range(60):
        m, k, n = int(rng.integers(1, 9)), int(rng.integers(1, 300)), int(rng.integers(1, 40))
        shape = (m, k) if t % 3 else (2, m, k)
        x = (rng.normal(0, 10 ** rng.uniform(-6, 3), shape) + rng.uniform(-1, 1) * (t % 3)).astype(np.float32)
        if t % 10 == 0:
            x[...] = 0
        w = rng.normal(0, 0.1, (n, k)).astype(np.float32)
        bias = rng.normal(0, 1, n).astype(np.float32) if t % 2 else None
        relu = t % 4 == 1
        if engine == "fbgemm" and t % 5 == 0:
            scales = torch.from_numpy(np.abs(w).max(1).astype(np.float64) / 127 + 1e-6)
            zeros = torch.zeros(n, dtype=torch.long)
            wq = torch.quantize_per_channel(torch.from_numpy(w), scales, zeros, 0, torch.qint8)
            w_scale = wq.q_per_channel_scales().numpy().astype(np.float32)
            w_zero = wq.q_per_channel_zero_points().numpy()
        else:
            wq = torch.quantize_per_tensor(torch.from_numpy(w), float(np.abs(w).max() / 127 + 1e-6), 0, torch.qint8)
            w_scale, w_zero = np.float32(wq.q_scale()), np.int64(wq.q_zero_point())
        packed = torch.ops.quantized.linear_prepack(wq, None if bias is None else torch.from_numpy(bias))
        op = torch.ops.quantized.linear_relu_dynamic if relu else torch.ops.quantized.linear_dynamic
        for reduce_range in (True, False):
            want = op(torch.from_numpy(x), packed, reduce_range=reduce_range).numpy()
            got = qlinear_dynamic(x, wq.int_repr().numpy().T, w_scale, w_zero.astype(np.int8), bias, datapath=preset,
                                  activation="relu" if relu else None, reduce_range=reduce_range)
            np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32), err_msg=f"case {t}")


def test_dynamic_linear_errors():
    w = np.zeros((4, 3), np.int8)
    with pytest.raises(ValueError, match="no dynamic float output"):
        qlinear_dynamic(np.zeros((2, 4), np.float32), w, 0.1, 0, datapath="onnxruntime-x86")
    with pytest.raises(TypeError, match="float32"):
        qlinear_dynamic(np.zeros((2, 4)), w, 0.1, 0)
    with pytest.raises(ValueError, match="does not match"):
        qlinear_dynamic(np.zeros((2, 5), np.float32), w, 0.1, 0)
    with pytest.raises(ValueError, match="relu"):
        qlinear_dynamic(np.zeros((2, 4), np.float32), w, 0.1, 0, activation="relu6")


@pytest.mark.parametrize("engine,preset", ENGINES, indirect=["engine"])
def test_convolution(engine, preset):
    """nnq.Conv1d / Conv2d / ConvReLU: groups, depthwise, dilation, stride, padding, per tensor
    and per channel weights, with and without bias."""
    rng = np.random.default_rng(5)
    for t in range(48):
        dims = 1 if t % 4 == 3 else 2
        groups = [1, 1, 2, None][t % 4] if dims == 2 else 1
        c_in = int(rng.integers(1, 9)) * (groups or 1)
        groups = groups or c_in
        c_out = int(rng.integers(1, 5)) * groups
        k, stride, pad = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
        dil = 1 + (t % 5 == 0)
        size = (int(rng.integers(k * dil, 10)),) * dims
        x = rng.normal(0, 1, (int(rng.integers(1, 3)), c_in) + size).astype(np.float32)
        w = rng.normal(0, 0.3, (c_out, c_in // groups) + (k,) * dims).astype(np.float32)
        bias = rng.normal(0, 0.5, c_out).astype(np.float32) if t % 3 else None
        sx, zx = float(np.float32(np.abs(x).max() / 127)), int(rng.integers(0, 256))
        if t % 2 == 0:
            scales = torch.from_numpy(np.abs(w).reshape(c_out, -1).max(1).astype(np.float64) / 127 + 1e-3)
            wq = torch.quantize_per_channel(torch.from_numpy(w), scales, torch.zeros(c_out, dtype=torch.long), 0,
                                            torch.qint8)
            w_scale, w_zero = wq.q_per_channel_scales().numpy().astype(np.float32), wq.q_per_channel_zero_points()
        else:
            wq = torch.quantize_per_tensor(torch.from_numpy(w), float(np.abs(w).max() / 127 + 1e-3), 0, torch.qint8)
            w_scale, w_zero = np.float32(wq.q_scale()), wq.q_zero_point()
        xq = torch.quantize_per_tensor(torch.from_numpy(x), sx, zx, torch.quint8)
        sy, zy, relu = float(np.float32(sx * 3)), int(rng.integers(0, 256)), t % 3 == 1
        cls = {(2, False): nnq.Conv2d, (2, True): nniq.ConvReLU2d, (1, False): nnq.Conv1d, (1, True): nniq.ConvReLU1d}
        mod = cls[dims, relu](c_in, c_out, k, stride=stride, padding=pad, dilation=dil, groups=groups)
        mod.set_weight_bias(wq, None if bias is None else torch.from_numpy(bias))
        mod.scale, mod.zero_point = sy, zy
        want = mod(xq).int_repr().numpy()
        got = qlinear_conv(xq.int_repr().numpy(), np.float32(sx), np.uint8(zx), wq.int_repr().numpy(), w_scale,
                           np.asarray(w_zero).astype(np.int8), np.float32(sy), np.uint8(zy), bias, stride=stride,
                           padding=pad, dilation=dil, groups=groups, datapath=preset, channels_last=True,
                           activation="relu" if relu else None)
        np.testing.assert_array_equal(got, want, err_msg=f"case {t}")


def memory_order(codes, channels_last):
    return codes.transpose(0, 2, 3, 1) if channels_last else codes


@pytest.mark.parametrize("engine", ["fbgemm", "qnnpack"], indirect=True)
def test_add(engine):
    """quantized::add / add_relu: ATen's vector and scalar paths by position (fbgemm), qnnpack's
    fixed point; power-of-two scales make ties; one tensor large enough to split across threads."""
    rng = np.random.default_rng(6)
    for t in range(50):
        cl = t % 2 == 0
        shape = (2, 64, 30, 30) if t == 0 else tuple(int(v) for v in rng.integers(1, [3, 70, 6, 6]))
        if t % 3:
            sa, sb, s = 0.5, 0.25, 0.5
        else:
            sa, sb = (float(np.float32(10 ** rng.uniform(-2, 0))) for _ in range(2))
            s = float(np.float32(sa + sb))
        za, zb, z = (int(v) for v in rng.integers(1, 255, 3))
        a, b = (rng.integers(0, 256, shape).astype(np.uint8) for _ in range(2))
        relu = t % 4 == 1
        op = torch.ops.quantized.add_relu if relu else torch.ops.quantized.add
        want = op(qtensor(a, sa, za, cl), qtensor(b, sb, zb, cl), s, z).int_repr().numpy()
        got = torch_cpu.add(memory_order(a, cl), sa, za, memory_order(b, cl), sb, zb, s, z, relu=relu, engine=engine,
                            cpu=CPU)
        np.testing.assert_array_equal(got.transpose(0, 3, 1, 2) if cl else got, want, err_msg=f"case {t}")


def test_add_vector_and_scalar_paths_differ():
    """The position model matters: with every element on one path the ties come out wrong."""
    rng = np.random.default_rng(7)
    a, b = (rng.integers(100, 160, 1000).astype(np.uint8) for _ in range(2))
    torch.backends.quantized.engine = "fbgemm"
    want = torch.ops.quantized.add(qtensor(a, 0.5, 130), qtensor(b, 0.25, 128), 0.5, 127).int_repr().numpy()
    np.testing.assert_array_equal(torch_cpu.add(a, 0.5, 130, b, 0.25, 128, 0.5, 127, cpu=CPU), want)
    scalar = torch_cpu.requantize(torch_cpu.dequantize(a, 0.5, 130) + torch_cpu.dequantize(b, 0.25, 128), 0.5, 127,
                                  "quint8", "reciprocal_add")
    assert (scalar[:960] != want[:960]).sum() > 50     # the vector path's elements
    np.testing.assert_array_equal(scalar[960:], want[960:])     # the scalar tail


@pytest.mark.parametrize("engine", ["fbgemm", "qnnpack"], indirect=True)
def test_cat(engine):
    """quantized::cat: the channels-last kernel (whole uint8 vectors, whole float vectors, a
    scalar tail, parts with the output's parameters copied) and the dequantize-cat-quantize path."""
    rng = np.random.default_rng(8)
    for t in range(60):
        cl = t % 2 == 0
        n, h, w = (int(v) for v in rng.integers(1, [3, 5, 5]))
        params = [(rng.choice([0.5, 0.25, float(np.float32(10 ** rng.uniform(-2, 0)))]), int(rng.integers(0, 256)))
                  for _ in range(int(rng.integers(1, 4)))]
        parts = [rng.integers(0, 256, (n, int(rng.integers(1, 90)), h, w)).astype(np.uint8) for _ in params]
        s, z = (params[0] if t % 5 == 0 else (rng.choice([0.5, 0.25, 0.0371]), int(rng.integers(0, 256))))
        relu = t % 4 == 1
        tensors = [qtensor(q, ps, pz, cl) for q, (ps, pz) in zip(parts, params)]
        op = torch.ops.quantized.cat_relu if relu else torch.ops.quantized.cat
        want = op(tensors, 1, float(s), z).int_repr().numpy()
        if all(x.is_contiguous(memory_format=torch.channels_last) for x in tensors):
            rows = [(q.transpose(0, 2, 3, 1).reshape(-1, q.shape[1]), ps, pz) for q, (ps, pz) in zip(parts, params)]
            got = torch_cpu.cat_channels_last(rows, s, z, relu=relu, cpu=CPU).reshape(n, h, w, -1).transpose(0, 3, 1, 2)
        else:
            got = torch_cpu.cat([(q, ps, pz) for q, (ps, pz) in zip(parts, params)], s, z, axis=1)
            got = np.maximum(got, np.uint8(z)) if relu else got
        np.testing.assert_array_equal(got, want, err_msg=f"case {t}")


@pytest.mark.parametrize("engine", ["fbgemm", "qnnpack"], indirect=True)
def test_pooling(engine):
    """avg_pool2d, adaptive_avg_pool2d, max_pool2d in both layouts, with odd zero points and
    power-of-two scales (ties at every even window size)."""
    rng = np.random.default_rng(9)
    for t in range(120):
        cl = t % 2 == 0
        n, c = int(rng.integers(1, 3)), int(rng.integers(1, 50))
        h, w = [(4, 4), (6, 6), (4, 6), (3, 6)][t % 4] if t % 3 else tuple(int(v) for v in rng.integers(2, 9, 2))
        s = 0.125 if t % 3 else float(np.float32(10 ** rng.uniform(-2, 0)))
        z = int(rng.integers(0, 127)) * 2 + 1
        q = rng.integers(0, 256, (n, c, h, w)).astype(np.uint8)
        x = qtensor(q, s, z, cl)
        k = int(rng.integers(2 if engine == "qnnpack" else 1, min(h, w) + 1))
        stride, pad, cip = int(rng.integers(1, 3)), int(rng.integers(0, k // 2 + 1)), t % 3 != 0
        layout = x.is_contiguous(memory_format=torch.channels_last)
        want = F.avg_pool2d(x, k, stride, pad, count_include_pad=cip).int_repr().numpy()
        got = torch_cpu.avg_pool2d(q, s, z, (k, k), (stride, stride), (pad, pad), count_include_pad=cip,
                                   engine=engine, channels_last=layout, cpu=CPU)
        np.testing.assert_array_equal(got, want, err_msg=f"avg case {t}")
        out = (int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))) if t % 4 else (1, 1)
        want = F.adaptive_avg_pool2d(x, out).int_repr().numpy()
        got = torch_cpu.adaptive_avg_pool2d(q, s, z, out, engine=engine, channels_last=layout, cpu=CPU)
        np.testing.assert_array_equal(got, want, err_msg=f"adaptive case {t}")
        want = F.max_pool2d(x, k, stride, pad).int_repr().numpy()
        np.testing.assert_array_equal(torch_cpu.max_pool2d(q, (k, k), (stride, stride), (pad, pad), (1, 1)), want)


def test_pooling_kernel_widths_matter():
    """The channels-last average pooling splits channels at torch's vector width: modelling the
    AVX2 width on this AVX-512 torch gives wrong codes (so the split is really tested)."""
    if CPU.capability != "AVX512":
        pytest.skip("needs torch's AVX-512 kernels to compare the two widths")
    rng = np.random.default_rng(10)
    wrong = 0
    for t in range(40):
        q = rng.integers(0, 256, (1, int(rng.integers(17, 50)), 6, 6)).astype(np.uint8)
        z = int(rng.integers(0, 127)) * 2 + 1
        want = F.avg_pool2d(qtensor(q, 0.0213, z, True), 2, 1).int_repr().numpy()
        wrong += int((torch_cpu.avg_pool2d(q, 0.0213, z, (2, 2), (1, 1), (0, 0), channels_last=True,
                                           cpu=torch_cpu.AtenCPU("AVX2")) != want).sum())
    assert wrong > 0


def test_kernel_errors():
    q = np.zeros((1, 1, 2, 2), np.uint8)
    with pytest.raises(ValueError, match="1x1"):
        torch_cpu.avg_pool2d(q, 0.1, 0, (1, 1), (1, 1), (0, 0), engine="qnnpack")
    with pytest.raises(ValueError, match="one shape"):
        torch_cpu.add(q, 0.1, 0, q[0], 0.1, 0, 0.1, 0)
    with pytest.raises(ValueError, match="XNNPACK"):
        torch_cpu.add(q.astype(np.int8), 0.1, 0, q.astype(np.int8), 0.1, 0, 0.1, 0, dtype="qint8", engine="qnnpack")
    with pytest.raises(ValueError, match="capability"):
        torch_cpu.AtenCPU("AVX10")
    with pytest.raises(ValueError, match="no output"):
        torch_cpu.max_pool2d(q, (3, 3), (1, 1), (0, 0), (1, 1))
