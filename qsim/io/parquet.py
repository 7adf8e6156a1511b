"""One way qsim writes a Parquet file: atomically (see .atomic), with what belongs to the file
in its schema metadata as qsim.<key> = JSON. Simulation records and the golden validation log
are both written here, and read back by read_metadata."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_atomic

METADATA_PREFIX = "qsim."


def write_parquet(path, table, metadata: dict | None = None) -> Path:
    """Write a pyarrow Table to path, atomically. metadata: {key: JSON-able value}, stored as
    qsim.<key> beside the schema metadata the table already has (a value that JSON cannot
    encode is stored as its str())."""
    import pyarrow.parquet as pq
    if metadata:
        entries = {f"{METADATA_PREFIX}{k}".encode(): json.dumps(v, default=str).encode() for k, v in metadata.items()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **entries})
    return write_atomic(path, lambda tmp: pq.write_table(table, tmp))


def read_metadata(path) -> dict:
    """The qsim.<key> entries of a Parquet file's schema metadata, decoded."""
    import pyarrow.parquet as pq
    raw = pq.read_schema(path).metadata or {}
    prefix = METADATA_PREFIX.encode()
    return {k[len(prefix):].decode(): json.loads(v) for k, v in raw.items() if k.startswith(prefix)}
