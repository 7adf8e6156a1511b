"""Records of simulation runs, written as a Parquet dataset."""

from .atomic import write_atomic, write_text_atomic
from .records import SCHEMA, read_records, write_records

__all__ = ["SCHEMA", "write_records", "read_records", "write_atomic", "write_text_atomic"]
