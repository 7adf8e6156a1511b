"""Simulation of workloads on described hardware."""

from .models import MODELS, load_model
from .onnx_import import load_onnx, onnx_workload
from .onnx_export import export_onnx
from .run import run_model
from .simulate import simulate

__all__ = ["MODELS", "load_model", "simulate", "load_onnx", "onnx_workload", "run_model", "export_onnx"]
