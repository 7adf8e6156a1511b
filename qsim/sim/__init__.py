"""Simulation of workloads on described hardware."""

from .models import MODELS, load_model
from .simulate import simulate

__all__ = ["MODELS", "load_model", "simulate"]
