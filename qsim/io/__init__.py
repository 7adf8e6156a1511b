"""Records of simulation runs, written as a Parquet dataset."""

from .atomic import write_atomic, write_text_atomic
from .records import (MODEL_ROW, SCHEMA, beside, check_dataset_dir, file_metadata, read_hardware, read_records,
                      record_files, schema_entry, write_records)

__all__ = ["MODEL_ROW", "SCHEMA", "write_records", "read_records", "read_hardware", "record_files", "file_metadata",
           "schema_entry", "check_dataset_dir", "beside", "write_atomic", "write_text_atomic"]
