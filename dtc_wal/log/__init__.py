"""The transaction log behind an interface (issue 12): format-2 records, the
``TransactionLog`` protocol and its backends. Not yet used by the running coordinator,
which still writes format 1 through :mod:`dtc_wal.wal`."""
