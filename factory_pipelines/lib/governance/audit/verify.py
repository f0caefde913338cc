"""Verifying the audit log: re-hash every entry in seq order and say what was changed, and where.

What `verify` reports. Rows are read in (seq, insertion) order and each one is re-hashed; a row that
fails (its hash, its link to the row before, or seq + 1) is then explained, the most specific reading
first, each problem once with its seq; a run of rows failing the same way is one problem:
- reordered: rows that hash with each other's seqs ("entries N and M are out of order", or a rotation);
  one row that hashes with a seq that is missing or taken twice (an entry moved to another seq).
- inserted: a row with the same hash as another one (a replayed copy); rows sharing a seq (the one the
  chain does not go through is named); a row inserted with the following rows renumbered up; rows at the
  end that do not chain to the entry before them (a break at the last row, or right after the anchored
  head).
- deleted: a gap in seq; rows deleted with the following rows renumbered down (renumbered rows are found
  by the seq they hash with, up to 64 away, or by the row they link to).
- edited: rows that no longer match their hash (fields or the hash column changed); a link break between
  two self-consistent rows further up than the last one (the entry before it was changed and its hash
  recomputed: a forged row that does not chain looks the same, and is the reading only at the end);
  rows renumbered with nothing deleted or inserted; an anchored entry that is no longer in the log
  while the log still reaches its seq (rewritten with recomputed hashes, or cut and appended to again).
- truncated: the anchored entry is not in the log and the log ends before its seq (the tail was
  deleted). Without an anchor a deleted tail, or a rewrite of the last entries, cannot be seen.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Literal

from factory_pipelines.lib.governance.audit.chain import GENESIS, chain_hash, read_anchor, unaudited_effects

MAX_PROBLEMS = 100  # problems listed in a report; the rest are counted
BATCH_ROWS = 100_000  # rows per Arrow batch while verifying
_MAX_RECORDS = 10_000  # anomalous rows kept for classification; beyond, rows are only counted
_MAX_SHIFT = 64  # how far a renumbered or swapped entry's own seq is searched, either way
_MAX_SEARCHES = 1_000
# The scan hashes `at` as text formatted by DuckDB; `at_text` formats it the same way in Python.
_SCAN_SQL = (
    "SELECT seq, strftime(\"at\" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ'), kind, actor, subject, "
    "payload::VARCHAR, coalesce(prev_hash, ''), coalesce(hash, '') "
    "FROM governance.audit_log ORDER BY seq, rowid"
)

ProblemKind = Literal["edited", "deleted", "inserted", "reordered", "truncated", "unaudited"]


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: ProblemKind
    detail: str


@dataclass
class VerifyReport:
    entries: int
    problems: list[Problem]
    seconds: float
    head_seq: int
    head_hash: str
    more_problems: int = 0  # found but not listed (beyond MAX_PROBLEMS)
    anchor: tuple[int, str] | None = None  # (seq, hash) read from the anchor file, when one was given
    anchor_missing: bool = False  # an anchor file was given but does not exist: a cut tail cannot be seen

    @property
    def ok(self) -> bool:
        return not self.problems and not self.more_problems

    def summary(self) -> str:
        """One line when ok, else a line per problem."""
        anchored = "" if self.anchor is None else f", anchor at {self.anchor[0]}"
        anchored += ", NO ANCHOR FILE (a cut tail cannot be seen)" if self.anchor_missing else ""
        head = (f"{self.entries:,} entries, head {self.head_seq} ({self.head_hash[:12]}){anchored}, "
                f"{self.seconds:.2f} s")
        if self.ok:
            return f"audit log verified: {head}: ok"
        count = len(self.problems) + self.more_problems
        lines = [f"audit log NOT verified: {head}: {count} problem{'s' if count > 1 else ''}"]
        lines += [f"  {p.kind} {p.seq}: {p.detail}" for p in self.problems]
        if self.more_problems:
            lines.append(f"  ... and {self.more_problems} more")
        return "\n".join(lines)


@dataclass(slots=True)
class _Anomaly:
    """A row that failed a check (or a run of consecutive rows failing only their hash), with its context."""

    pos: int  # position in (seq, insertion) order
    row: tuple[Any, ...]  # seq, at text, kind, actor, subject, payload, prev_hash, hash
    hash_ok: bool
    link_ok: bool  # prev_hash is the stored hash of the row before
    step: int  # seq minus the seq of the row before
    last_seq: int  # the row before: seq, hash; and the hash of the one before that
    last_hash: str
    before_last: str
    shift: int = 0  # the row hashes with seq + shift (renumbered, swapped)
    end_pos: int = -1
    end_seq: int = -1
    end_hash: str = ""  # stored hash of the run's last row
    count: int = 1
    open_hash: bool = field(init=False)  # still to be explained
    open_link: bool = field(init=False)
    open_step: bool = field(init=False)

    def __post_init__(self) -> None:
        self.end_pos, self.end_seq, self.end_hash = self.pos, self.seq, self.stored
        self.open_hash, self.open_link, self.open_step = not self.hash_ok, not self.link_ok, self.step != 1

    @property
    def seq(self) -> int:
        return self.row[0]

    @property
    def prev(self) -> str:
        return self.row[6]

    @property
    def stored(self) -> str:
        return self.row[7]

    def hashes_as(self, seq: int) -> bool:
        return chain_hash(self.prev, seq, *self.row[1:6]) == self.stored

    def close(self) -> None:
        self.open_hash = self.open_link = self.open_step = False


class _Scan:
    """One pass over the log: hashes every row; the slow path (`flag`) runs only for rows failing a check."""

    def __init__(self) -> None:
        self.records: list[_Anomaly] = []
        self.unanalysed = 0
        self.first_unanalysed = 0
        self.searches = _MAX_SEARCHES
        self.entries = 0
        self.head = (0, GENESIS)

    def run(self, batches: Iterable[Any]) -> None:
        sha, esc, flag = hashlib.sha256, encode_basestring, self.flag
        last_seq, last_hash, before_last, pos = 0, GENESIS, GENESIS, 0
        for batch in batches:
            for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                seq, at, kind, actor, subject, payload, prev, stored = row
                subject_json = "null" if subject is None else esc(subject)
                text = f"{prev}[{seq},{esc(at)},{esc(kind)},{esc(actor)},{subject_json},{esc(payload)}]"
                computed = sha(text.encode()).hexdigest()
                if computed != stored or prev != last_hash or seq != last_seq + 1:
                    flag(pos, row, computed == stored, last_seq, last_hash, before_last)
                before_last, last_hash, last_seq = last_hash, stored, seq
                pos += 1
        self.entries, self.head = pos, (last_seq, last_hash)

    def flag(self, pos: int, row: tuple[Any, ...], hash_ok: bool, last_seq: int, last_hash: str,
             before_last: str) -> None:
        seq, prev = row[0], row[6]
        link_ok, step = prev == last_hash, seq - last_seq
        tail = self.records[-1] if self.records else None
        if tail is not None and tail.end_pos == pos - 1 and link_ok and step == 1 and not hash_ok:
            # Continue a run: renumbered rows hash with the same shift; edited rows just fail.
            if tail.shift:
                continues = chain_hash(prev, seq + tail.shift, *row[1:6]) == row[7]
            else:
                continues = not tail.hash_ok
            if continues:
                tail.end_pos, tail.end_seq, tail.end_hash, tail.count = pos, seq, row[7], tail.count + 1
                return
        if len(self.records) >= _MAX_RECORDS:
            self.first_unanalysed = self.first_unanalysed or seq
            self.unanalysed += 1
            return
        record = _Anomaly(pos, row, hash_ok, link_ok, step, last_seq, last_hash, before_last)
        if not hash_ok and (not link_ok or step != 1) and self.searches > 0:
            self.searches -= 1
            record.shift = next((d for k in range(1, _MAX_SHIFT + 1) for d in (k, -k)
                                 if seq + d >= 1 and record.hashes_as(seq + d)), 0)
        self.records.append(record)


def verify(con: Any, anchor: Path | None = None) -> VerifyReport:
    """Re-hash the whole log in seq order and classify every break (see the module docstring); then check
    that an audit event accounts for every executed side effect (`unaudited_effects`).

    With `anchor` (a file written by `save_anchor`) a deleted tail or a rewritten chain up to the anchored
    entry is found too. A missing anchor file is no problem of the chain (none is written before the first
    `save_anchor`) but shows in the report (`anchor_missing`, and the summary): keep the file where the
    warehouse's writers cannot delete it.
    """
    start = time.perf_counter()
    missing = anchor is not None and not Path(anchor).exists()
    anchored = read_anchor(anchor) if anchor is not None and not missing else None
    scan = _Scan()
    reader = con.sql(_SCAN_SQL).to_arrow_reader(BATCH_ROWS)
    try:
        scan.run(reader)
    finally:
        reader.close()  # a reader left half-read keeps the connection busy
    problems = _classify(con, scan, anchored) + [Problem(0, "unaudited", detail) for detail in unaudited_effects(con)]
    unique = list({(p.kind, p.seq, p.detail if p.kind == "unaudited" else ""): p for p in problems}.values())
    unique.sort(key=lambda p: (p.seq, p.kind))
    return VerifyReport(entries=scan.entries, problems=unique[:MAX_PROBLEMS],
                        seconds=time.perf_counter() - start, head_seq=scan.head[0], head_hash=scan.head[1],
                        more_problems=max(0, len(unique) - MAX_PROBLEMS), anchor=anchored,
                        anchor_missing=missing)


def _entries(first: int, last: int) -> str:
    return f"entry {first}" if first == last else f"entries {first}..{last}"


def _classify(con: Any, scan: _Scan, anchored: tuple[int, str] | None) -> list[Problem]:
    """Explain the anomalous rows, most specific explanation first; each explanation closes the flags it
    accounts for, and what is left gets the generic reading."""
    records, problems = scan.records, []
    by_pos = {r.pos: r for r in records}
    copies = _lookup(con, records)
    _reordered(records, by_pos, problems)
    _renumbered(records, by_pos, copies, problems)
    _duplicates(records, by_pos, scan.entries, problems)
    _remaining(records, by_pos, scan.entries, scan.head[0], anchored, problems)
    if anchored is not None and anchored[0] > 0:
        problems += _anchor_problems(con, anchored, scan.head[0])
    if scan.unanalysed:
        first = scan.first_unanalysed
        detail = f"{scan.unanalysed} more rows from seq {first} on fail their checks (not analysed further)"
        problems.append(Problem(first, "edited", detail))
    return problems


def _anchor_problems(con: Any, anchored: tuple[int, str], head_seq: int) -> list[Problem]:
    """The anchored entry must still be in the log. When it is there under another seq, the checks of the
    chain have reported how it moved."""
    seq, digest = anchored
    if con.execute("SELECT count(*) FROM governance.audit_log WHERE hash = ?", [digest]).fetchall()[0][0]:
        return []
    if seq > head_seq:
        detail = (f"the anchor names entry {seq} ({digest[:12]}) but the log ends at entry {head_seq}: "
                  f"{_entries(head_seq + 1, seq)} removed from the end")
        return [Problem(seq, "truncated", detail)]
    found = con.execute("SELECT hash FROM governance.audit_log WHERE seq = ?", [seq]).fetchall()
    if not found:
        return []  # a gap: reported as deleted
    detail = (f"entry {seq} is not the anchored one (hash {found[0][0][:12]}, anchored {digest[:12]}): the "
              "log was rewritten, or cut and appended to again, up to here")
    return [Problem(seq, "edited", detail)]


def _lookup(con: Any, records: list[_Anomaly]) -> set[str]:
    """For single rows out of place beyond the shift search, the row they link to gives their own seq.
    Returns the hashes of those rows stored more than once (copies of another entry)."""
    single = [r for r in records if not r.hash_ok and not r.link_ok and r.count == 1][:_MAX_SEARCHES]
    if not single:
        return set()
    wanted = sorted({r.prev for r in single if not r.shift} | {r.stored for r in single})
    rows = con.execute(
        "SELECT hash, seq FROM governance.audit_log WHERE hash IN (SELECT unnest(?::VARCHAR[]))", [wanted]
    ).fetchall()
    seqs: dict[str, list[int]] = {}
    for digest, seq in rows:
        seqs.setdefault(digest, []).append(seq)
    for r in single:
        if not r.shift:
            after = [s + 1 for s in seqs.get(r.prev, []) if s + 1 != r.seq]
            r.shift = next((seq - r.seq for seq in after if r.hashes_as(seq)), 0)
    return {digest for digest, found in seqs.items() if len(found) > 1}


def _reordered(records: list[_Anomaly], by_pos: dict[int, _Anomaly], problems: list[Problem]) -> None:
    """Rows that hash with each other's seqs, closing a cycle: swapped or rotated entries."""
    target: dict[int, int] = {}
    owner: dict[int, _Anomaly] = {}
    for r in records:
        if r.shift and r.step != 0 and r.count <= _MAX_SHIFT:
            for seq in range(r.seq, r.end_seq + 1):
                target[seq], owner[seq] = seq + r.shift, r
    done: set[int] = set()
    for seq in sorted(target):
        if seq in done:
            continue
        cycle, nxt = [seq], target[seq]
        while nxt in target and nxt not in cycle and len(cycle) < _MAX_SHIFT:
            cycle.append(nxt)
            nxt = target[nxt]
        if nxt != seq or len(cycle) < 2:
            continue
        done.update(cycle)
        seqs = sorted(cycle)
        if len(seqs) == 2:
            detail = f"entries {seqs[0]} and {seqs[1]} are out of order (their seq values were exchanged)"
        else:
            detail = f"entries {', '.join(map(str, seqs))} are out of order (their seq values were rotated)"
        problems.append(Problem(seqs[0], "reordered", detail))
    members = {id(r): r for s, r in owner.items() if s in done}.values()
    hashes = {h for m in members for h in (m.stored, m.end_hash)}
    for m in members:
        if all(s in done for s in range(m.seq, m.end_seq + 1)):
            m.close()
            after = by_pos.get(m.end_pos + 1)
            if after is not None and after.open_link and after.prev in hashes:
                after.open_link = False


def _remove(r: _Anomaly, by_pos: dict[int, _Anomaly]) -> None:
    """Explain row `r` as not belonging where it is: its flags, and the next row's flags that only come from
    `r` being in the way (it links past `r`, or shares `r`'s seq)."""
    r.close()
    after = by_pos.get(r.pos + 1)
    if after is not None and after.prev == r.last_hash:
        after.open_link = False
        after.open_step = after.open_step and not (after.step == 0 and after.seq == r.seq)


def _renumbered(records: list[_Anomaly], by_pos: dict[int, _Anomaly], copies: set[str],
                problems: list[Problem]) -> None:
    """Rows that hash with another seq and are not part of a cycle: a copy of another entry (replayed),
    an entry moved to another seq, renumbered runs after a deletion or an insertion."""
    for r in records:
        if not r.shift or not (r.open_hash or r.open_link):
            continue
        a, b, d = r.seq, r.end_seq, r.shift
        if r.count == 1:
            gap = next((g for g in records if g.open_step and g.last_seq < a + d < g.seq), None)
            if r.stored in copies:
                _remove(r, by_pos)
                problems.append(Problem(a, "inserted", f"entry {a} is a copy of entry {a + d} (same hash)"))
                continue
            if gap is not None or r.step != 1:
                _remove(r, by_pos)
                if gap is not None and gap.step == 2:
                    gap.open_step = gap.open_link = False
                why = [f"it hashes as {a + d}"] + [f"seq {a + d} is missing"] * (gap is not None) + [
                    f"seq {a} appears twice"] * (r.step == 0)
                problems.append(Problem(a + d, "reordered",
                                        f"entry {a + d} was moved to seq {a} ({'; '.join(why)})"))
                continue
        r.close()
        renumbered = f"{_entries(a + d, b + d)} renumbered to {a}..{b} (they hash with their old seqs)"
        if r.link_ok:  # the first of them still links to the entry before: nothing deleted or inserted
            problems.append(Problem(a, "edited", renumbered))
        elif d > 0:
            problems.append(Problem(a, "deleted", f"{_entries(a, a + d - 1)} deleted and {renumbered}"))
        else:
            first = a + d
            for q in records:
                if first <= q.seq < a and q is not r:
                    q.close()
            problems.append(Problem(first, "inserted", f"{_entries(first, a - 1)} inserted and {renumbered}"))


def _duplicates(records: list[_Anomaly], by_pos: dict[int, _Anomaly], entries: int,
                problems: list[Problem]) -> None:
    """Rows sharing a seq: the one the chain goes through stays, the others were inserted."""
    groups: list[list[_Anomaly]] = []
    for r in records:
        if r.open_step and r.step == 0:
            if groups and groups[-1][-1].pos == r.pos - 1:
                groups[-1].append(r)
            else:
                groups.append([r])
    for group in groups:
        first = by_pos.get(group[0].pos - 1)
        before = first.last_hash if first is not None else group[0].before_last
        # (stored hash, prev hash, hash ok, record) of every row with this seq, in order
        if first is not None:
            rows = [(first.stored, first.prev, first.hash_ok, first)]
        else:  # a row that passed its checks
            rows = [(group[0].last_hash, before, True, None)]
        rows += [(r.stored, r.prev, r.hash_ok, r) for r in group]
        after_pos = group[-1].pos + 1
        after = by_pos.get(after_pos)
        expected = (after.prev if after is not None else group[-1].stored) if after_pos < entries else None
        genuine = next((row for row in rows if row[0] == expected), None)
        genuine = genuine or next((row for row in rows if row[2] and row[1] == before), rows[0])
        intruders = [row for row in rows if row is not genuine]
        for _stored, prev, _ok, rec in rows:
            if rec is None:
                continue
            if rec is genuine[3]:
                rec.open_step = rec.open_step and rec.step != 0
                rec.open_link = rec.open_link and prev != before
            else:
                rec.close()
        if after is not None and after.open_link and after.prev == genuine[0]:
            after.open_link = False
        seq = group[0].seq
        names = ", ".join(row[0][:12] for row in intruders)
        which = f"the entry with hash {names}" if len(intruders) == 1 else f"the entries with hashes {names}"
        problems.append(Problem(seq, "inserted", f"{len(rows)} entries have seq {seq}; the chain does not go "
                                                 f"through {which}"))


def _remaining(records: list[_Anomaly], by_pos: dict[int, _Anomaly], entries: int, head_seq: int,
               anchored: tuple[int, str] | None, problems: list[Problem]) -> None:
    """The generic reading of what no specific explanation covered."""
    for r in records:
        last = r.end_pos == entries - 1
        if r.open_step and r.step > 1:
            r.open_step = r.open_link = False
            missing = _entries(r.last_seq + 1, r.seq - 1)
            where = f"follows entry {r.last_seq}" if r.last_seq else "is the first"
            problems.append(Problem(r.last_seq + 1, "deleted", f"{missing} missing (entry {r.seq} {where})"))
        if r.open_hash:
            r.open_hash = False
            if r.open_link and last and r.count == 1:
                r.open_link = False
                detail = f"entry {r.seq} at the end matches neither its hash nor entry {r.last_seq}'s hash"
                problems.append(Problem(r.seq, "inserted", detail))
                continue
            linked = "" if not r.open_link else f", and does not link to entry {r.last_seq}"
            r.open_link = False
            what = f"entry {r.seq} does not match its hash" if r.count == 1 else (
                f"entries {r.seq}..{r.end_seq} ({r.count}) do not match their hashes")
            problems.append(Problem(r.seq, "edited", what + linked))
            after = by_pos.get(r.end_pos + 1)
            if after is not None and after.open_link and after.hash_ok:
                after.open_link = False  # the edited row's hash column changed
        if r.open_link:
            r.open_link = False
            attested = anchored is not None and anchored == (r.last_seq, r.last_hash)
            if last or attested:
                where = "the anchored head" if attested else "the entry before it"
                detail = (f"{_entries(r.seq, head_seq)} added at the end: entry {r.seq} does not chain to "
                          f"{where}, entry {r.last_seq}")
                problems.append(Problem(r.seq, "inserted", detail))
            else:
                detail = (f"entry {r.last_seq} was changed and its hash recomputed: entry {r.seq} records "
                          f"another hash for it ({r.prev[:12]}, not {r.last_hash[:12]})")
                problems.append(Problem(r.last_seq, "edited", detail))
        if r.open_step:
            r.open_step = False
            problems.append(Problem(r.seq, "inserted",
                                    f"entry {r.seq} is out of sequence after entry {r.last_seq}"))


