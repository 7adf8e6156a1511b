"""Records of simulation runs, written as a Parquet dataset."""

from .records import SCHEMA, read_records, write_records

__all__ = ["SCHEMA", "write_records", "read_records"]
