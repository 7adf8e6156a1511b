"""Runners for the real kernels qsim is checked against (onnxruntime, torch, LiteRT)."""
