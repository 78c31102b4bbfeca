"""The e-commerce example of dtc-wal: one checkout across four services.

Order and inventory live in PostgreSQL (two databases, two-phase commit branches through
:class:`~dtc_wal.participants.postgres.PostgresResource`), payment is a ledger behind an
:class:`~dtc_wal.participants.IdempotencyBarrier`, notification writes an email to an
outbox only when the outcome is commit. Run it with ``python -m examples.ecommerce`` from
the repository root; see README.md in this folder.
"""
