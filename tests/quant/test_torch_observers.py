"""qsim.quant.torch_observers against torch.ao.quantization: every observer on seeded random
batches and edge cases (all zeros, one value, negative only, tiny and huge ranges, infinities
for the histogram), scale bitwise equal in float32 and zero point equal; the run-time choice
against torch._choose_qparams_per_tensor, which calls the same quant_utils function."""

import warnings

import numpy as np
import pytest
import torch
from torch.ao.quantization import observer as tob

from qsim.quant import torch_observers as qob

def batch_sets():
    """(name, [batches]) with one or several float32 batches each."""
    rng = np.random.default_rng(20240601)
    sets = [
        ("zeros", [np.zeros(37, np.float32)]),
        ("one value", [np.full(9, 0.7, np.float32)]),
        ("one negative value", [np.full(4, -3.25, np.float32)]),
        ("one huge value", [np.full(6, 3e9, np.float32)]),
        ("single element", [np.array([1e-3], np.float32)]),
        ("negative only", [-np.abs(rng.normal(0, 2, 300)).astype(np.float32)]),
        ("positive only", [np.abs(rng.normal(0, 2, 300)).astype(np.float32)]),
        ("tiny range", [rng.normal(0, 1e-9, 200).astype(np.float32)]),
        ("small range", [rng.normal(0, 1e-5, 200).astype(np.float32)]),
        ("huge range", [rng.normal(0, 1e30, 200).astype(np.float32)]),
        ("offset", [rng.normal(1000, 1, 200).astype(np.float32)]),
        ("quarter steps", [np.round(rng.normal(0, 3, 500) * 4).astype(np.float32) / 4]),
        ("growing", [rng.normal(0, s, 400).astype(np.float32) for s in (0.1, 1, 10)]),
        ("shrinking", [rng.normal(m, s, 400).astype(np.float32) for m, s in ((0, 10), (2, 1), (-1, 0.1))]),
        ("outliers", [np.concatenate([rng.normal(0, 1, 2000), [40, -25]]).astype(np.float32),
                      rng.normal(0.5, 1, 1000).astype(np.float32)]),
        ("one value then more", [np.full(8, 2.0, np.float32), rng.normal(0, 1, 300).astype(np.float32)]),
    ]
    for i in range(12):
        mean, spread = rng.uniform(-2, 2), 10 ** rng.uniform(-3, 3)
        batches = [rng.normal(mean, spread, int(rng.integers(1, 3000))).astype(np.float32)
                   for _ in range(int(rng.integers(1, 4)))]
        sets.append((f"random {i}", batches))
    return sets


BATCHES = batch_sets()
PER_TENSOR = [
    dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine),
    dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine, reduce_range=True),
    dict(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric),
    dict(dtype=torch.qint8, qscheme=torch.per_tensor_affine, reduce_range=True),
    dict(dtype=torch.quint8, qscheme=torch.per_tensor_symmetric),
    dict(dtype=torch.qint32, qscheme=torch.per_tensor_affine),
    dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=0, quant_max=15),
    dict(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=-8, quant_max=7),
    dict(dtype=torch.quint8, qscheme=torch.per_tensor_symmetric, quant_min=0, quant_max=127),
    dict(dtype=torch.qint8, qscheme=torch.per_tensor_affine, eps=1e-3),
]


def names(kwargs: dict) -> dict:
    """torch's arguments as qsim takes them (dtype and qscheme by name)."""
    return {k: str(v).removeprefix("torch.") if isinstance(v, (torch.dtype, torch.qscheme)) else v
            for k, v in kwargs.items()}


def qparams_equal(torch_obs, qsim_obs, batches):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x in batches:
            torch_obs(torch.from_numpy(x.copy()))
            qsim_obs(x)
        s1, z1 = torch_obs.calculate_qparams()
    s2, z2 = qsim_obs.calculate_qparams()
    s1 = s1.numpy().astype(np.float32)
    assert s1.shape == s2.shape and z1.shape == z2.shape
    return np.array_equal(s1.view(np.int32), s2.view(np.int32)) and np.array_equal(z1.numpy(), z2), (s1, z1, s2, z2)


def config_id(config: dict) -> str:
    return "-".join(f"{v}".removeprefix("torch.") for v in config.values())


@pytest.mark.parametrize("config", PER_TENSOR, ids=config_id)
@pytest.mark.parametrize("pair", [(tob.MinMaxObserver, qob.MinMaxObserver, {}),
                                  (tob.MovingAverageMinMaxObserver, qob.MovingAverageMinMaxObserver, {}),
                                  (tob.MovingAverageMinMaxObserver, qob.MovingAverageMinMaxObserver,
                                   {"averaging_constant": 0.3})],
                         ids=["minmax", "moving-average", "moving-average-0.3"])
def test_min_max_observers(pair, config):
    torch_cls, qsim_cls, extra = pair
    failed = []
    for name, batches in BATCHES:
        ok, got = qparams_equal(torch_cls(**config, **extra), qsim_cls(**names(config), **extra), batches)
        if not ok:
            failed.append((name, got))
    assert not failed, failed[:3]


@pytest.mark.parametrize("config", [c for c in PER_TENSOR if c["dtype"] != torch.qint32][:6], ids=config_id)
def test_histogram_observer(config):
    failed = []
    for bins in (2048, 256, 37):
        for name, batches in BATCHES:
            ok, got = qparams_equal(tob.HistogramObserver(bins=bins, **config),
                                    qob.HistogramObserver(bins=bins, **names(config)), batches)
            if not ok:
                failed.append((bins, name, got))
    assert not failed, failed[:3]


def test_histogram_drops_infinities_and_matches_the_histogram():
    rng = np.random.default_rng(3)
    batches = [np.concatenate([rng.normal(0, 1, 500), [np.inf, -np.inf]]).astype(np.float32),
               rng.normal(2, 3, 700).astype(np.float32), np.array([np.inf], np.float32)]
    t, q = tob.HistogramObserver(), qob.HistogramObserver()
    ok, got = qparams_equal(t, q, batches)
    assert ok, got
    np.testing.assert_array_equal(t.histogram.numpy(), q.histogram)


@pytest.mark.parametrize("qscheme", [torch.per_channel_affine, torch.per_channel_symmetric])
@pytest.mark.parametrize("cls", ["PerChannelMinMaxObserver", "MovingAveragePerChannelMinMaxObserver"])
def test_per_channel_observers(cls, qscheme):
    rng = np.random.default_rng(7)
    failed = []
    for dtype in (torch.qint8, torch.quint8):
        for ch_axis in (0, 1, -1):
            for name, batches in BATCHES:
                n = min(b.size for b in batches)
                scale = np.array([1, 0, -2, 1e-6], np.float32)[:, None]    # a zero channel, a negative one
                shaped = [(b[:n] * scale).reshape(4, 1, n) + rng.normal(0, 0.01, (1, 3, 1)).astype(np.float32)
                          for b in batches]
                shaped = [np.moveaxis(s, 0, ch_axis).copy() for s in shaped]
                kw = dict(ch_axis=ch_axis, dtype=dtype, qscheme=qscheme)
                ok, got = qparams_equal(getattr(tob, cls)(**kw), getattr(qob, cls)(**names(kw)), shaped)
                if not ok:
                    failed.append((dtype, ch_axis, name, got))
    assert not failed, failed[:3]


def test_choose_qparams_matches_torch():
    """The run-time choice against torch._choose_qparams_per_tensor (quant_utils, double)."""
    rng = np.random.default_rng(11)
    failed = []
    for name, batches in BATCHES:
        for x in batches:
            for reduce_range in (False, True):
                want = torch._choose_qparams_per_tensor(torch.from_numpy(x), reduce_range)
                got = qob.choose_qparams(x.min(), x.max(), reduce_range=reduce_range)
                if want != got:
                    failed.append((name, reduce_range, want, got))
    for _ in range(300):      # ranges around the 6.1e-5 cut and scale 0
        lo, hi = sorted(rng.normal(0, 10 ** rng.uniform(-9, 1), 2).astype(np.float32))
        for reduce_range in (False, True):
            want = torch._choose_qparams_per_tensor(torch.tensor([lo, hi]), reduce_range)
            got = qob.choose_qparams(lo, hi, reduce_range=reduce_range)
            if want != got:
                failed.append(("range", lo, hi, want, got))
    assert not failed, failed[:3]


def test_dynamic_qparams_per_engine():
    x = np.linspace(-1, 3, 50, dtype=np.float32)
    assert qob.dynamic_qparams(x, "fbgemm", True) == qob.choose_qparams(-1, 3, reduce_range=True)
    assert qob.dynamic_qparams(x, "qnnpack", True) == qob.choose_qparams(-1, 3)     # qnnpack ignores it
    assert qob.dynamic_qparams(np.zeros(0, np.float32), "fbgemm") == (0.1, 0)


def test_torch_sum_order():
    """torch_sum follows ATen's cascade: it equals torch.sum where a naive float32 sum differs."""
    rng = np.random.default_rng(5)
    differs = 0
    for n in (1, 3, 15, 16, 17, 63, 64, 100, 2047, 2048, 5000, 30000):
        x = (rng.normal(0, 1, n) * 10 ** rng.uniform(-3, 3, n)).astype(np.float32)
        want = torch.sum(torch.from_numpy(x)).numpy()
        assert qob.torch_sum(x).view(np.int32) == want.view(np.int32), n
        differs += np.float32(np.cumsum(x, dtype=np.float32)[-1]) != want
    assert differs >= 3                     # the order matters on these inputs


def test_bad_arguments():
    with pytest.raises(ValueError, match="unsupported dtype"):
        qob.MinMaxObserver(dtype="float8")
    with pytest.raises(ValueError, match="per-channel"):
        qob.PerChannelMinMaxObserver(qscheme="per_tensor_affine")
    with pytest.raises(ValueError, match="quant_min"):
        qob.MinMaxObserver(quant_min=1, quant_max=10)
    with pytest.raises(ValueError, match="symmetric quint8"):
        qob.MinMaxObserver(qscheme="per_tensor_symmetric", reduce_range=True)
    with pytest.raises(ValueError, match="NaN"):
        qob.MinMaxObserver()(np.array([1.0, np.nan], np.float32))
    with pytest.raises(TypeError, match="float array"):
        qob.HistogramObserver()(np.arange(4))
    with pytest.raises(ValueError, match="channels"):
        obs = qob.PerChannelMinMaxObserver(ch_axis=0)
        obs(np.zeros((3, 2), np.float32))
        obs(np.zeros((4, 2), np.float32))
