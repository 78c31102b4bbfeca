"""docs/log-format.md stays byte-exact: its worked example is what the codec writes, and
its code tables are the codec's."""

from __future__ import annotations

import re
from pathlib import Path

import lmdb

from dtc_wal.log.lmdb import LmdbLog
from dtc_wal.log.lmdb.codec import RECORD_KEY, TN, VERSION, encode, frame
from dtc_wal.log.lmdb.layout import ACKS, MODES, OPS, OUTCOMES, TYPE_CODES, VOTES
from dtc_wal.protocol.records import (
    Decided,
    Ended,
    MemberSpec,
    MemberState,
    Mode,
    Opened,
    Outcome,
    Record,
    Vote,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "log-format.md"

EXAMPLE: tuple[Record, ...] = (
    Opened(
        "tx-1",
        1700000000.5,
        Mode.TWO_PHASE,
        (MemberSpec("payment", "pay", {"amount": 5}), MemberSpec("stock")),
    ),
    Decided("tx-1", 1700000001.25, Outcome.COMMIT, ((0, Vote.YES), (1, Vote.READ_ONLY))),
    Ended("tx-1", 1700000002.0, ((0, MemberState.COMMITTED),)),
)

_HEX = re.compile(r"^[0-9a-f]{2}$")


def example_entries() -> dict[str, list[tuple[bytes, bytes]]]:
    """``{table: [(key, value), ...]}`` as the worked example's code block spells them."""
    text = DOC.read_text()
    block = text.split("## Worked example", 1)[1].split("```", 2)[1]
    tables: dict[str, list[tuple[bytes, bytes]]] = {}
    table = ""
    field = ""
    for line in block.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] in ("records", "txns", "unfinished"):
            table = words[0]
            tables.setdefault(table, [])
            continue
        if words[0] in ("key", "value"):
            field = words.pop(0)
            if field == "key":
                tables[table].append((b"", b""))
        data = bytes.fromhex(" ".join(w for w in _take_hex(words)))
        key, value = tables[table][-1]
        tables[table][-1] = (key + data, value) if field == "key" else (key, value + data)
    return tables


def _take_hex(words: list[str]) -> list[str]:
    out = []
    for word in words:
        if not _HEX.match(word):
            break
        out.append(word)
    return out


def test_the_worked_example_is_what_the_codec_writes() -> None:
    expected = [
        (RECORD_KEY.pack(1, seq), frame(RECORD_KEY.pack(1, seq), encode([r])[0][4]))
        for seq, r in enumerate(EXAMPLE)
    ]
    entries = example_entries()
    assert entries["records"] == expected
    assert entries["txns"] == [(b"tx-1", TN.pack(1))]
    assert entries["unfinished"] == [(TN.pack(1), b"tx-1")]


def raw(path: Path) -> dict[str, list[tuple[bytes, bytes]]]:
    env = lmdb.open(str(path), max_dbs=8, readonly=True)
    try:
        with env.begin() as txn:
            return {
                name: [
                    (bytes(k), bytes(v))
                    for k, v in txn.cursor(db=env.open_db(name.encode(), txn=txn, create=False))
                ]
                for name in ("records", "txns", "unfinished")
            }
    finally:
        env.close()


def test_the_worked_example_is_what_the_log_stores(tmp_path: Path) -> None:
    entries = example_entries()
    with LmdbLog(tmp_path) as log:
        log.append(EXAMPLE[:1])
    assert raw(tmp_path) == {
        "records": entries["records"][:1],
        "txns": entries["txns"],
        "unfinished": entries["unfinished"],
    }
    with LmdbLog(tmp_path) as log:
        log.append(EXAMPLE[1:2])
        log.append(EXAMPLE[2:], durable=False)
    final = {"records": entries["records"], "txns": entries["txns"], "unfinished": []}
    assert raw(tmp_path) == final


def test_the_code_tables_are_the_codecs() -> None:
    text = DOC.read_text()
    assert VERSION == 2 and "version, 0x02" in text
    for kind, code in TYPE_CODES.items():
        assert re.search(rf"\| {code}\s+\| `{kind.__name__}`", text), kind
    rows = {
        "mode": MODES,
        "outcome": OUTCOMES,
        "vote": VOTES,
        "ack": ACKS,
        "op": OPS,
    }
    for name, table in rows.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}`"))
        listed = ", ".join(f"{i} `{value.value}`" for i, value in enumerate(table))
        assert listed in row, (name, row)
