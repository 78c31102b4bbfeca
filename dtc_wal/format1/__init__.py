"""Reading log format 1 (dtc-wal 0.1), for ``dtc upgrade`` only: its records
(:mod:`.records`), the replay of one transaction (:mod:`.history`), the read side of its
LMDB store (:mod:`.store`) and its integrity check (:mod:`.verify`). Nothing else in the
library opens a format-1 log: the coordinator and every other ``dtc`` command refuse it,
naming ``dtc upgrade`` (docs/log-format.md, "Format 1")."""
