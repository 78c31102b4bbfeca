"""Optional participant abilities are declared contracts, read once at enlist time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from helpers import Journal, RecordingParticipant

from dtc_wal import TransactionCoordinator
from dtc_wal.abilities import Abilities, BatchParticipant, ListsPrepared, abilities_of


class Batching(RecordingParticipant):
    def commit_many(self, transaction_ids: Sequence[str]) -> None: ...

    def rollback_many(self, transaction_ids: Sequence[str]) -> None: ...


def test_abilities_of_reads_each_declared_ability() -> None:
    journal = Journal()
    plain = RecordingParticipant("plain", journal)
    assert abilities_of(plain) == Abilities()
    listing = RecordingParticipant("listing", journal)
    listing.lists_prepared = True  # type: ignore[attr-defined]
    assert abilities_of(listing) == Abilities(lists_prepared=True)
    assert isinstance(listing, ListsPrepared)
    truthy = RecordingParticipant("truthy", journal)
    truthy.lists_prepared = "yes"  # type: ignore[attr-defined]  # truthy is not True
    assert abilities_of(truthy).lists_prepared is False
    batching = Batching("batching", journal)
    assert abilities_of(batching) == Abilities(commit_many=True, rollback_many=True)
    assert isinstance(batching, BatchParticipant)


def test_an_ability_that_appears_after_enlisting_is_not_used(tmp_path: Any) -> None:
    """Read once: a commit_one_phase attached after enlist_participant is never called, so
    what the coordinator decided at enlist time (and logged) holds for the whole commit."""
    journal = Journal()
    participant = RecordingParticipant("alone", journal)
    with TransactionCoordinator(tmp_path / "log", recovery_interval=None) as coord:
        txid = coord.begin_transaction()
        coord.enlist_participant(txid, participant)

        def commit_one_phase(transaction_id: str, data: Mapping[str, Any]) -> None:
            journal.add("alone", "one-phase", transaction_id)

        participant.commit_one_phase = commit_one_phase  # type: ignore[attr-defined]
        coord.commit_transaction(txid)
    assert journal.what("alone") == ["prepare", "commit"]
