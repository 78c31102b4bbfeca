"""The write-ahead log (LMDB): record format, storage, group-commit writer."""

from __future__ import annotations

from ..records import FORMAT_VERSION, LogRecord, decode_record, encode_record
from .store import DirectoryLock, LogStore
from .writer import WriteAheadLog

__all__ = [
    "FORMAT_VERSION",
    "DirectoryLock",
    "LogRecord",
    "LogStore",
    "WriteAheadLog",
    "decode_record",
    "encode_record",
]
