"""The audit log: a clean chain verifies, and every kind of tampering is found, classified and located."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from factory_pipelines.lib.governance.audit.chain import (
    GENESIS,
    AnchorMismatch,
    AuditEvent,
    append,
    canonical_payload,
    ensure_audit_log,
    entry_hash,
    head,
    read_anchor,
    save_anchor,
)
from factory_pipelines.lib.governance.audit.verify import MAX_PROBLEMS, verify
from factory_pipelines.lib.sql import transaction

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LOG = "governance.audit_log"


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_audit_log(connection)
    yield connection
    connection.close()


def event(i: int, **payload: object) -> AuditEvent:
    details = {"tool": "issue_refund", "verdict": "allow", "i": i, **payload}
    at = T0 + timedelta(seconds=i)
    return AuditEvent("tool_call.decision", "support_triage", f"T-{i:05d}", details, at)


def log(con: duckdb.DuckDBPyConnection, n: int = 20) -> list[int]:
    return append(con, [event(i) for i in range(1, n + 1)])


def found(report) -> list[tuple[str, int]]:
    return [(p.kind, p.seq) for p in report.problems]


def rehash(con: duckdb.DuckDBPyConnection, seq: int) -> None:
    """The attacker recomputes one row's own hash after editing it."""
    sql = f'SELECT prev_hash, "at", kind, actor, subject, payload::VARCHAR FROM {LOG} WHERE seq = ?'
    prev, at, kind, actor, subject, payload = con.execute(sql, [seq]).fetchall()[0]
    digest = entry_hash(prev, seq, at, kind, actor, subject, payload)
    con.execute(f"UPDATE {LOG} SET hash = ? WHERE seq = ?", [digest, seq])


def forge(con: duckdb.DuckDBPyConnection, seq: int, prev: str, payload: dict) -> str:
    """A self-consistent row (its own hash is right) with the given seq and predecessor."""
    at = T0 + timedelta(days=1)
    text = canonical_payload(payload)
    digest = entry_hash(prev, seq, at, "tool_call.decision", "mallory", "T-99999", text)
    con.execute(f"INSERT INTO {LOG} VALUES (?, ?, 'tool_call.decision', 'mallory', 'T-99999', ?, ?, ?)",
                [seq, at, text, prev, digest])
    return digest


def hash_of(con: duckdb.DuckDBPyConnection, seq: int) -> str:
    return con.execute(f"SELECT hash FROM {LOG} WHERE seq = ?", [seq]).fetchall()[0][0]


def test_clean_chain_verifies_and_every_stored_hash_is_the_documented_one(con) -> None:
    assert head(con) == (0, GENESIS) and verify(con).ok
    assert log(con, 20) == list(range(1, 21))
    report = verify(con)
    assert report.ok and report.problems == [] and report.entries == 20
    assert (report.head_seq, report.head_hash) == head(con) and report.summary().endswith(": ok")
    prev = GENESIS
    rows = con.execute(f'SELECT seq, "at", kind, actor, subject, payload::VARCHAR, prev_hash, hash '
                       f"FROM {LOG} ORDER BY seq").fetchall()
    for seq, at, kind, actor, subject, payload, prev_hash, digest in rows:
        assert prev_hash == prev and digest == entry_hash(prev, seq, at, kind, actor, subject, payload)
        prev = digest


def test_hash_is_sha256_of_prev_and_the_json_list_of_the_fields() -> None:
    import hashlib

    at = datetime(2026, 11, 1, 10, 0, 0, 123, tzinfo=timezone(timedelta(hours=2)))  # 08:00 UTC
    for subject in ("T-1", None, 'quote " back\\slash \x01 \u2028 é ✓'):
        text = json.dumps([7, "2026-11-01T08:00:00.000123Z", "k\n", "ä", subject, '{"a":1}'],
                          separators=(",", ":"), ensure_ascii=False)
        expected = hashlib.sha256(("f" * 64 + text).encode()).hexdigest()
        assert entry_hash("f" * 64, 7, at, "k\n", "ä", subject, '{"a":1}') == expected
    with pytest.raises(ValueError, match="time zone"):
        AuditEvent("k", "a", None, {}, datetime(2026, 11, 1))


def test_edited_payload_is_found_at_its_seq(con) -> None:
    log(con)
    con.execute(f"""UPDATE {LOG} SET payload = '{{"i":7,"verdict":"deny"}}' WHERE seq = 7""")
    report = verify(con)
    assert found(report) == [("edited", 7)] and not report.ok
    assert "edited 7" in report.summary()


@pytest.mark.parametrize("column, value", [("kind", "'other'"), ("actor", "'mallory'"), ("subject", "NULL"),
                                           ("at", "\"at\" + INTERVAL 1 SECOND")])
def test_any_edited_field_is_found(con, column: str, value: str) -> None:
    log(con)
    con.execute(f'UPDATE {LOG} SET "{column}" = {value} WHERE seq = 12')
    assert found(verify(con)) == [("edited", 12)]


def test_edit_with_the_rows_hash_recomputed_breaks_the_next_link(con) -> None:
    log(con)
    con.execute(f"""UPDATE {LOG} SET payload = '{{"verdict":"deny"}}' WHERE seq = 7""")
    rehash(con, 7)
    report = verify(con)
    assert found(report) == [("edited", 7)]
    assert "recomputed" in report.problems[0].detail and "entry 8" in report.problems[0].detail


def test_rehashed_last_entry_needs_the_anchor(con, tmp_path: Path) -> None:
    log(con)
    anchor = tmp_path / "audit.anchor"
    assert save_anchor(con, anchor) == head(con) == read_anchor(anchor)
    con.execute(f"""UPDATE {LOG} SET payload = '{{"verdict":"deny"}}' WHERE seq = 20""")
    rehash(con, 20)
    assert verify(con).ok  # a valid, rewritten chain: only the anchor knows the old head
    assert found(verify(con, anchor)) == [("edited", 20)]


def test_deleted_middle_entries_are_named(con) -> None:
    log(con)
    con.execute(f"DELETE FROM {LOG} WHERE seq = 7")
    assert found(verify(con)) == [("deleted", 7)]
    con.execute(f"DELETE FROM {LOG} WHERE seq BETWEEN 12 AND 14")
    report = verify(con)
    assert found(report) == [("deleted", 7), ("deleted", 12)]
    assert "entries 12..14" in report.problems[1].detail


def test_deleted_then_renumbered_is_still_found(con) -> None:
    log(con)
    con.execute(f"DELETE FROM {LOG} WHERE seq BETWEEN 7 AND 8")
    con.execute(f"UPDATE {LOG} SET seq = seq - 2 WHERE seq > 8")
    report = verify(con)
    assert found(report) == [("deleted", 7)]  # one problem, not one per renumbered row
    assert "renumbered" in report.problems[0].detail


def test_deleted_tail_is_invisible_without_anchor_and_truncated_with_it(con, tmp_path: Path) -> None:
    log(con)
    anchor = tmp_path / "audit.anchor"
    save_anchor(con, anchor)
    con.execute(f"DELETE FROM {LOG} WHERE seq > 17")
    assert verify(con).ok  # a shorter chain is still a valid chain
    report = verify(con, anchor)
    assert found(report) == [("truncated", 20)] and "18..20" in report.problems[0].detail
    with pytest.raises(AnchorMismatch):  # moving the anchor now would hide the truncation
        save_anchor(con, anchor)
    assert read_anchor(anchor)[0] == 20


def test_missing_anchor_file_is_reported_not_fatal(con, tmp_path: Path) -> None:
    log(con)
    report = verify(con, tmp_path / "absent.anchor")
    assert report.ok and report.anchor_missing and report.anchor is None
    assert "NO ANCHOR FILE" in report.summary()
    save_anchor(con, tmp_path / "absent.anchor")
    report = verify(con, tmp_path / "absent.anchor")
    assert not report.anchor_missing and report.anchor == head(con) and "NO ANCHOR" not in report.summary()


def test_inserted_duplicate_seq_is_found(con) -> None:
    log(con)
    forge(con, 7, hash_of(con, 6), {"verdict": "allow", "amount": 10_000})
    report = verify(con)
    assert found(report) == [("inserted", 7)] and "2 entries have seq 7" in report.problems[0].detail


def test_forged_rows_at_the_end_that_do_not_chain_are_inserted(con, tmp_path: Path) -> None:
    log(con)
    forge(con, 21, "a" * 64, {"verdict": "allow"})
    assert found(verify(con)) == [("inserted", 21)]
    con.execute(f"DELETE FROM {LOG} WHERE seq = 21")
    anchor = tmp_path / "audit.anchor"
    save_anchor(con, anchor)
    digest = forge(con, 21, hash_of(con, 19), {"verdict": "allow"})  # linked to the wrong entry
    forge(con, 22, digest, {"verdict": "allow"})
    assert found(verify(con, anchor)) == [("inserted", 21)]


def test_replayed_copy_of_an_entry_is_inserted(con) -> None:
    log(con)
    con.execute(f'INSERT INTO {LOG} SELECT 21, "at", kind, actor, subject, payload, prev_hash, hash '
                f"FROM {LOG} WHERE seq = 4")
    report = verify(con)
    assert found(report) == [("inserted", 21)] and "copy of entry 4" in report.problems[0].detail


def test_inserted_entry_with_the_rest_renumbered_up_is_inserted(con) -> None:
    log(con)
    before = hash_of(con, 4)
    con.execute(f"UPDATE {LOG} SET seq = seq + 1 WHERE seq >= 5")
    forge(con, 5, before, {"verdict": "allow"})  # chains to 4; entry 6 (the old 5) no longer chains
    report = verify(con)
    assert found(report) == [("inserted", 5)]
    assert "entries 5..20 renumbered to 6..21" in report.problems[0].detail


def test_renumbering_alone_and_a_moved_entry_are_found(con) -> None:
    log(con)
    con.execute(f"UPDATE {LOG} SET seq = seq + 1 WHERE seq >= 15")  # seq 15 left empty, nothing deleted
    report = verify(con)
    assert found(report) == [("edited", 16)]
    assert "entries 15..20 renumbered to 16..21" in report.problems[0].detail
    con.execute(f"UPDATE {LOG} SET seq = seq - 1 WHERE seq >= 16")
    assert verify(con).ok
    con.execute(f"UPDATE {LOG} SET seq = 9 WHERE seq = 4")
    report = verify(con)
    assert found(report) == [("reordered", 4)]
    assert report.problems[0].detail.startswith("entry 4 was moved to seq 9")


@pytest.mark.parametrize("a, b", [(3, 12), (5, 6), (2, 150)])
def test_swapped_entries_are_out_of_order(con, a: int, b: int) -> None:
    log(con, 160)
    con.execute(f"UPDATE {LOG} SET seq = CASE seq WHEN {a} THEN {b} ELSE {a} END WHERE seq IN ({a}, {b})")
    report = verify(con)
    assert found(report) == [("reordered", a)]
    assert report.problems[0].detail.startswith(f"entries {a} and {b} are out of order")


def test_rotated_entries_are_out_of_order(con) -> None:
    log(con)
    con.execute(f"UPDATE {LOG} SET seq = CASE seq WHEN 3 THEN 8 WHEN 8 THEN 14 ELSE 3 END "
                "WHERE seq IN (3, 8, 14)")
    report = verify(con)
    assert found(report) == [("reordered", 3)]
    assert report.problems[0].detail.startswith("entries 3, 8, 14 are out of order")


def test_mass_edit_is_one_problem_and_many_problems_are_capped(con) -> None:
    log(con, 300)
    con.execute(f"UPDATE {LOG} SET actor = 'mallory' WHERE seq BETWEEN 10 AND 250")
    report = verify(con)
    assert found(report) == [("edited", 10)] and "entries 10..250 (241)" in report.problems[0].detail
    con.execute(f"UPDATE {LOG} SET actor = 'support_triage'")
    assert verify(con).ok
    con.execute(f"DELETE FROM {LOG} WHERE seq % 2 = 0 AND seq < 300")
    report = verify(con)
    assert len(report.problems) == MAX_PROBLEMS and report.more_problems == 149 - MAX_PROBLEMS
    assert {p.kind for p in report.problems} == {"deleted"} and report.problems[0].seq == 2
    assert "and 49 more" in report.summary()


def test_append_in_a_rolled_back_transaction_leaves_nothing(con) -> None:
    log(con, 3)
    con.execute("BEGIN TRANSACTION")
    assert append(con, [event(4), event(5)]) == [4, 5]
    assert head(con)[0] == 5  # visible inside the transaction
    con.execute("ROLLBACK")
    assert head(con)[0] == 3 and verify(con).ok
    with pytest.raises(RuntimeError), transaction(con):
        con.execute("CREATE TABLE reviews (ticket VARCHAR)")
        append(con, [event(4)])
        raise RuntimeError("reviewer crashed")
    assert head(con)[0] == 3
    with transaction(con):
        append(con, [event(4)])
    assert head(con)[0] == 4 and verify(con).ok


def test_appending_after_verify_continues_the_chain(con, tmp_path: Path) -> None:
    anchor = tmp_path / "audit.anchor"
    log(con, 5)
    assert verify(con).ok
    save_anchor(con, anchor)
    assert append(con, [event(6)]) == [6] and append(con, []) == []
    report = verify(con, anchor)
    assert report.ok and report.head_seq == 6
    assert con.execute(f"SELECT prev_hash FROM {LOG} WHERE seq = 6").fetchall()[0][0] == hash_of(con, 5)
    save_anchor(con, anchor)
    assert read_anchor(anchor) == (6, hash_of(con, 6))


def test_unicode_nested_payloads_and_other_time_zones_round_trip(con) -> None:
    payload = {"ticket": "Zurück → 退款 🙂", "control": "tab\tnew\nline\x01",
               "nested": {"z": [1, 2.5, None, True], "a": {"deep": ["\"q\"", "\\"]}},
               "at": datetime(2026, 11, 1, tzinfo=UTC)}
    india = datetime(2026, 11, 1, 14, 30, 0, 250, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    append(con, [AuditEvent("review.decision", "reviewer:анна", "T-ü", payload, None),
                 AuditEvent("review.decision", "reviewer:анна", None, {}, india)])
    stored, subject = con.execute(f"SELECT payload::VARCHAR, subject FROM {LOG} WHERE seq = 1").fetchall()[0]
    assert stored == canonical_payload(payload) and subject == "T-ü"
    assert json.loads(stored) == {**payload, "at": "2026-11-01 00:00:00+00:00"}  # default=str: not JSON
    at = con.execute(f'SELECT "at" FROM {LOG} WHERE seq = 2').fetchall()[0][0]
    assert at == india and at.astimezone(UTC).isoformat() == "2026-11-01T09:00:00.000250+00:00"
    assert verify(con).ok


def test_threads_appending_on_their_own_cursors_keep_one_chain(con) -> None:
    def work(k: int) -> None:
        cursor = con.cursor()
        for i in range(10):
            append(cursor, [event(1000 * k + i), event(1000 * k + i + 500)])
        cursor.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = verify(con)
    assert report.ok and report.entries == 80 and report.head_seq == 80
