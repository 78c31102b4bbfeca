"""What ``commit_transaction(..., wait=False)`` returns: a handle on phase two running in
the background once the commit decision is durable."""

from __future__ import annotations

import concurrent.futures as cf

__all__ = ["CommitHandle"]


class CommitHandle:
    """The decided-commit transaction whose participants are being told in the background."""

    def __init__(self, txid: str) -> None:
        self.txid = txid
        self._future: cf.Future[None] = cf.Future()

    @classmethod
    def completed(cls, txid: str) -> CommitHandle:
        """A handle for a transaction already finished (one-phase commit)."""
        handle = cls(txid)
        handle._future.set_result(None)
        return handle

    def done(self) -> bool:
        """True once every participant acknowledged, or the completer gave up for now."""
        return self._future.done()

    def wait(self, timeout: float | None = None) -> None:
        """Return when every participant acknowledged commit.

        Raises :class:`~dtc_wal.errors.CommitIncompleteError` when some did not (the
        outcome is still commit; recovery keeps trying) and ``TimeoutError`` when the
        completer has not finished within ``timeout`` seconds.
        """
        try:
            self._future.result(timeout)
        except cf.TimeoutError:
            raise TimeoutError(
                f"phase two of {self.txid} not finished within {timeout}s; the commit is "
                "decided and will complete -- wait again or check coordinator.state()"
            ) from None

    def __repr__(self) -> str:
        return f"CommitHandle({self.txid!r}, done={self.done()})"
