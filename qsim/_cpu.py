"""What this CPU can do, where it decides a real kernel's numbers: x86's VNNI dot products sum
u8 x s8 products exactly, while without VNNI fbgemm and ONNX Runtime's MLAS use VPMADDUBSW,
which saturates each pair of products to int16."""

from __future__ import annotations

import functools
from pathlib import Path


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    return frozenset(cpuinfo.read_text().split()) if cpuinfo.exists() else frozenset()


def x86_pairs_saturate(vnni_flags: tuple[str, ...]) -> bool:
    """Whether an x86 int8 kernel that uses VNNI when the CPU has one of vnni_flags falls back to
    VPMADDUBSW's saturating pairs here (an x86 CPU with AVX2 and none of them)."""
    flags = cpu_flags()
    return "avx2" in flags and not flags.intersection(vnni_flags)


def ort_integer_datapath() -> str:
    """The integer kernel path of ONNX Runtime's CPU provider on this CPU: MLAS takes VNNI
    (AVX512-VNNI, AVX-VNNI or AMX) where it can, else its AVX2 kernels with saturating pairs."""
    if x86_pairs_saturate(("avx512_vnni", "avx_vnni", "amx_int8")):
        return "onnxruntime-x86-avx2"
    return "onnxruntime-x86"
