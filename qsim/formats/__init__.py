from .registry import builtin_formats, format, register_format
from .spec import FloatFormat, Format, IntFormat

__all__ = ["FloatFormat", "IntFormat", "Format", "format", "register_format", "builtin_formats"]
