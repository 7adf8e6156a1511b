"""Running a sweep's points, locally in parallel or on a Dask cluster, into a Parquet dataset,
and reading datasets back:

    OUT/sweep.json                               the spec and its points (written first)
    OUT/model=<model>/part-<point_id>.parquet    one file per finished point (hive-style partitions)
    OUT/hardware/<config_hash>.json              each hardware variant's description

Workers only compute; this process writes each point's file (temporary name, then rename) as
soon as its result arrives, so the cluster needs no shared disk, a killed sweep leaves only
complete files, and a re-run skips every point whose file exists. A point's file depends on
the point alone, so results are the same whatever the number or kind of workers. A directory
may gather the points of several specs (sweep.json describes the last); run one sweep at a
time in it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import __version__
from ..io import SCHEMA, read_records, write_atomic, write_text_atomic
from ..sim import simulate
from .spec import Point, Sweep, load_sweep

SWEEP_SCHEMA = {**SCHEMA,
                "config": "short label of the sweep point: hardware, overrides, calibration",
                "point_id": "hash of the point's canonical description (model, hardware, overrides, calibration, seed, "
                            "fp32_layers)",
                "overrides": "the point's hardware overrides, JSON (dotted key: value)",
                "fp32_layers": "layers the point keeps in FP32, comma-separated"}
# the record files of a dataset: `qsim simulate`'s flat layout, then a sweep's model partitions


@dataclass(frozen=True)
class SweepSummary:
    total: int
    skipped: int                    # already finished by an earlier run
    ran: int                        # finished by this run
    failed: tuple[tuple[Point, str], ...]
    seconds: float
    out: Path


class PointsFailed(RuntimeError):
    """Some points raised; every other point was written. A re-run retries only the failed."""

    def __init__(self, summary: SweepSummary):
        self.summary = summary
        lines = [f"{p.config} on {p.model}: {err}" for p, err in summary.failed]
        super().__init__(f"{len(lines)} of {summary.total} points failed:\n  " + "\n  ".join(lines))


def run_sweep(sweep, out_dir, workers: int | None = None, scheduler: str | None = None,
              progress: bool = True) -> SweepSummary:
    """Run every unfinished point of a sweep (a Sweep or a .toml path) into out_dir.

    workers: local processes (default: all cores); scheduler: a Dask scheduler address instead.
    Raises PointsFailed, after writing everything else, if any point raised. Worker processes
    start by importing the main module, so a script that calls this with workers > 1 needs
    the usual `if __name__ == "__main__":` guard."""
    if not isinstance(sweep, Sweep):
        sweep = load_sweep(sweep)
    out = Path(out_dir)
    write_manifest(sweep, out)
    with open_runner(workers, scheduler) as runner:
        summary = run_points(sweep.points, out, runner, progress, desc=sweep.name)
    if summary.failed:
        raise PointsFailed(summary)
    return summary


def part_path(out_dir, point: Point) -> Path:
    return Path(out_dir) / f"model={point.model}" / f"part-{point.point_id}.parquet"


def run_points(points, out_dir, runner, progress: bool = True, desc: str = "sweep") -> SweepSummary:
    """Compute and write the points whose files are missing; a progress bar on stderr."""
    from tqdm import tqdm
    out, start = Path(out_dir), time.perf_counter()
    _remove_temporaries(out)
    pending = [p for p in points if not part_path(out, p).exists()]
    failed = []
    with tqdm(total=len(points), initial=len(points) - len(pending), desc=desc, unit="point",
              file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
        for point, outcome in runner.outcomes(pending):
            if isinstance(outcome, Exception):
                failed.append((point, f"{type(outcome).__name__}: {outcome}"))
                tqdm.write(f"failed: {point.config} on {point.model}: {outcome!r}", file=sys.stderr)
            else:
                write_point(outcome, point, out)
                bar.set_postfix_str(point.config, refresh=False)
            bar.update()
    return SweepSummary(len(points), len(points) - len(pending), len(pending) - len(failed), tuple(failed),
                        time.perf_counter() - start, out)


def compute_point(point: Point) -> list[dict]:
    """The point's simulation records, with the sweep's columns added."""
    extra = {"fp32_layers": point.fp32_layers} if point.fp32_layers else {}
    records = simulate(point.model, point.hardware, seed=point.seed, calibration=point.calibration, **extra)
    columns = {"config": point.config, "point_id": point.point_id,
               "overrides": json.dumps(dict(point.overrides), sort_keys=True, default=str),
               "fp32_layers": ",".join(point.fp32_layers)}
    return [dict(r, **columns) for r in records]


def _compute_in_worker(point: Point) -> list[dict]:
    # points run side by side, so threads inside one point would only compete for the same cores
    os.environ.setdefault("QSIM_NUM_THREADS", "1")
    return compute_point(point)


def write_point(records: list[dict], point: Point, out_dir) -> Path:
    """The point's records as its part file, atomically (its hardware description first)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    out = Path(out_dir)
    sidecar = out / "hardware" / f"{records[0]['config_hash']}.json"
    if not sidecar.exists():
        write_text_atomic(sidecar, json.dumps(asdict(point.hardware), indent=1))
    table = pa.Table.from_pandas(pd.DataFrame(records), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"qsim.schema": json.dumps(SWEEP_SCHEMA).encode()})
    path = part_path(out, point)
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))
    return path


def write_manifest(sweep: Sweep, out_dir) -> Path:
    """OUT/sweep.json: the spec as written and every point's description."""
    manifest = {"name": sweep.name, "description": sweep.description, "qsim_version": __version__,
                "spec": sweep.document,
                "points": [{"point_id": p.point_id, "config": p.config, **p.describe()} for p in sweep.points]}
    return write_text_atomic(Path(out_dir) / "sweep.json", json.dumps(manifest, indent=1, default=str))


def read_sweep(out_dir):
    """Every finished point of a sweep directory as one DataFrame, in the manifest's order."""
    return read_records(out_dir, order=_manifest_order(Path(out_dir)))


def _manifest_order(out: Path):
    """Sort key: the manifest's point order, then points of earlier specs by name."""
    try:
        order = {p["point_id"]: i for i, p in enumerate(json.loads((out / "sweep.json").read_text())["points"])}
    except (OSError, ValueError, KeyError, TypeError):
        order = {}
    return lambda path: (order.get(path.stem.removeprefix("part-"), len(order)), str(path))


def _remove_temporaries(out: Path) -> None:
    """Half-written files of a killed run (never visible as results, but clutter): sweep.json's,
    the part files' and the hardware descriptions'."""
    for tmp in [*out.glob(".*.tmp"), *out.glob("*/.*.tmp")]:
        tmp.unlink(missing_ok=True)


def open_runner(workers: int | None = None, scheduler: str | None = None):
    """Where points run: local processes (default: one per core) or a Dask cluster."""
    if scheduler is not None:
        if workers is not None:
            raise ValueError("give --workers or --scheduler, not both (a cluster has its own workers)")
        return DaskRunner(scheduler)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return LocalRunner(workers)


class LocalRunner(AbstractContextManager):
    """One process per worker (none for a single worker: points run here, in order)."""

    def __init__(self, workers: int):
        self.workers, self.pool = workers, None

    def __exit__(self, kind, error, trace):
        if self.pool is not None:
            self.pool.shutdown(wait=kind is None, cancel_futures=True)

    def outcomes(self, points):
        """(point, records or the exception it raised), in order of completion."""
        if self.workers == 1 or len(points) <= 1:
            for point in points:
                yield point, _attempt(compute_point, point)
            return
        futures = {self._pool().submit(_compute_in_worker, p): p for p in points}
        for future in as_completed(futures):
            yield futures.pop(future), _attempt(future.result)

    def _pool(self):
        if self.pool is None:
            import multiprocessing
            # forkserver, not fork: OpenMP kernels already run in this process do not survive a fork
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_end_with,
                                            initargs=(os.getpid(),))
        return self.pool


def _end_with(sweep_pid: int) -> None:
    """Pool worker initializer: end when the sweep's process is gone (even killed by SIGKILL),
    instead of waiting for work forever."""
    def watch():
        while True:
            time.sleep(1)
            try:
                os.kill(sweep_pid, 0)
            except ProcessLookupError:
                os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


class DaskRunner(AbstractContextManager):
    """Points as tasks on a Dask distributed cluster (connected on first use)."""

    def __init__(self, address: str):
        self.address, self.client = address, None

    def __exit__(self, kind, error, trace):
        if self.client is not None:
            self.client.close()              # the cluster drops the tasks nobody waits for

    def outcomes(self, points):
        if not points:
            return
        try:
            from distributed import Client, as_completed as dask_completed
        except ImportError:
            raise ValueError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
        if self.client is None:
            try:
                self.client = Client(self.address)
            except OSError as e:
                raise ValueError(f"cannot reach the Dask scheduler at {self.address}: {e}") from None
        futures = {self.client.submit(_compute_in_worker, p, pure=False): p for p in points}
        for future in dask_completed(futures):
            yield futures.pop(future), _attempt(future.result)


def _attempt(fn, *args):
    """fn's result, or the exception it raised: one failed point must not stop the others."""
    try:
        return fn(*args)
    except Exception as e:
        return e
