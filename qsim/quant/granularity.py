"""Granularity as a view: per tensor, per channel (axis) or per group (group_size along axis).

Every scheme becomes a 2-D array of rows with one scale and zero point per row, which is what
the integer kernel consumes; `to_rows` and `from_rows` are exact inverses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rows:
    shape: tuple          # the original shape
    axis: int | None
    group_size: int | None
    n_params: tuple       # the shape the scale and zero point must have

    def to_rows(self, x: np.ndarray) -> np.ndarray:
        # explicit sizes: reshape cannot infer -1 when the array is empty
        if self.axis is None:
            return x.reshape(1, x.size)
        a = x.shape[self.axis]
        if self.group_size is None:
            return np.ascontiguousarray(np.moveaxis(x, self.axis, 0).reshape(a, x.size // a if a else 0))
        moved = np.moveaxis(x, self.axis, -1)             # (..., A)
        pad = (-a) % self.group_size
        if pad:
            moved = np.concatenate([moved, np.zeros(moved.shape[:-1] + (pad,), moved.dtype)], axis=-1)
        n_rows = (moved.size // self.group_size)
        return np.ascontiguousarray(moved.reshape(n_rows, self.group_size))

    def from_rows(self, rows: np.ndarray) -> np.ndarray:
        if self.axis is None:
            return rows.reshape(self.shape)
        a = self.shape[self.axis]
        if self.group_size is None:
            rest = self.shape[:self.axis] + self.shape[self.axis + 1:]
            return np.moveaxis(rows.reshape((a,) + rest), 0, self.axis)
        padded = -(-a // self.group_size) * self.group_size
        moved_shape = self.shape[:self.axis] + self.shape[self.axis + 1:] + (padded,)
        moved = rows.reshape(moved_shape)[..., :a]
        return np.ascontiguousarray(np.moveaxis(moved, -1, self.axis))

    def params_to_rows(self, p: np.ndarray) -> np.ndarray:
        """Scale or zero point (shape n_params) in row order."""
        if self.axis is None or self.group_size is None:
            return p.reshape(-1)
        return np.moveaxis(p, self.axis, -1).reshape(-1)


def plan_rows(shape: tuple, axis: int | None, group_size: int | None) -> Rows:
    if group_size is not None and axis is None:
        raise ValueError("group_size needs an axis to group along")
    if axis is None:
        return Rows(shape, None, None, ())
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} is out of range for an array of {len(shape)} dimensions")
    axis = int(axis) % len(shape)
    if group_size is None:
        return Rows(shape, axis, None, (shape[axis],))
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    n_groups = -(-shape[axis] // group_size)
    return Rows(shape, axis, int(group_size), shape[:axis] + (n_groups,) + shape[axis + 1:])
