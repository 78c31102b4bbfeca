"""The write-ahead log (LMDB): record format, storage, group-commit writer."""

from __future__ import annotations

from ..records import FORMAT_VERSION, LogRecord, decode_record, encode_record
from .compact import CompactReport, compact_log
from .store import DirectoryLock, LogStore
from .verify import VerifyReport, verify_log
from .writer import WriteAheadLog

__all__ = [
    "FORMAT_VERSION",
    "CompactReport",
    "DirectoryLock",
    "LogRecord",
    "LogStore",
    "VerifyReport",
    "WriteAheadLog",
    "compact_log",
    "decode_record",
    "encode_record",
    "verify_log",
]
