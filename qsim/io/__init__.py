"""Records of simulation runs, written as a Parquet dataset."""

from .atomic import write_atomic, write_text_atomic
from .records import MODEL_ROW, SCHEMA, read_records, write_records

__all__ = ["MODEL_ROW", "SCHEMA", "write_records", "read_records", "write_atomic", "write_text_atomic"]
