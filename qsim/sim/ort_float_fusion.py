"""ONNX Runtime's float fusions of transformer blocks that change results (see ort_fusion.py)."""

from __future__ import annotations


def float_fuse(g) -> None:
    """Rewrite g (an ort_fusion._Graph) in place."""
