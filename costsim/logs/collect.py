"""Converting and collecting batches: a record batch converted and validated at once
(`Chunk`), and the problems of many batches gathered into one line (`Issues`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from .convert import (
    Timestamps,
    _ClassCodes,
    _convert_count,
    _convert_flag,
    _convert_number,
    _convert_status,
    _Problem,
)
from .locate import _error
from .plan import _Plan
from .table import (
    _CLASS,
    _COST_ROLES,
    _COUNT,
    _DTYPES,
    _FLAG,
    _MAX_EXAMPLES,
    _MAX_ROWS_SHOWN,
    _NUMBER,
    _STATUS,
    _TIME,
    DroppedRows,
    _Role,
)


@dataclass
class _Issue:
    count: int = 0
    rows: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def extend(self, later: _Issue) -> None:
        """Add the problems of rows that come after this issue's."""
        self.count += later.count
        self.rows.extend(later.rows[: _MAX_ROWS_SHOWN - len(self.rows)])
        for example in later.examples:
            if len(self.examples) < _MAX_EXAMPLES and example not in self.examples:
                self.examples.append(example)


@dataclass
class Issues:
    """The problems found in a log's rows: per column (role) and reason, how many rows, the
    first few 1-based row numbers and a few offending values. Mergeable: the issues of a
    later part of the log `extend` those of an earlier one."""

    by_role: dict[str, tuple[str, dict[str, _Issue]]] = field(default_factory=dict)

    def add(
        self, role: _Role, column: str, problems: list[_Problem], offset: int
    ) -> np.ndarray | None:
        """Record one batch's problems of a column (``offset``: 0-based position of its first
        row); returns the mask of its rows with any problem (None: none)."""
        bad: np.ndarray | None = None
        for reason, mask, examples in problems:
            count = int(np.count_nonzero(mask))
            if count == 0:
                continue
            issue = self.by_role.setdefault(role.attr, (column, {}))[1].setdefault(reason, _Issue())
            issue.count += count
            room = _MAX_ROWS_SHOWN - len(issue.rows)
            if room > 0:
                issue.rows.extend(int(i) + offset + 1 for i in np.flatnonzero(mask)[:room])
            for example in examples:
                if len(issue.examples) < _MAX_EXAMPLES and example not in issue.examples:
                    issue.examples.append(example)
            bad = mask.copy() if bad is None else (bad | mask)
        return bad

    def extend(self, later: Issues) -> None:
        for attr, (column, reasons) in later.by_role.items():
            mine = self.by_role.setdefault(attr, (column, {}))[1]
            for reason, issue in reasons.items():
                mine.setdefault(reason, _Issue()).extend(issue)

    def missing(self, role: _Role) -> int:
        """Rows where the role's column is missing."""
        entry = self.by_role.get(role.attr)
        issue = entry[1].get("missing") if entry is not None else None
        return 0 if issue is None else issue.count

    def listed(self, roles: Iterable[_Role]) -> list[tuple[str, _Issue]]:
        """``("<column> <reason>", issue)`` of the given roles, in their order."""
        out: list[tuple[str, _Issue]] = []
        for role in roles:
            entry = self.by_role.get(role.attr)
            if entry is not None:
                out.extend((f"{entry[0]} {reason}", issue) for reason, issue in entry[1].items())
        return out


@dataclass
class Chunk:
    """One record batch converted and checked: per role, the column read, its values (numpy,
    of the role's dtype) and the problems found. ``offset`` is the 0-based position of the
    batch's first row in the whole log; class codes index ``labels``."""

    offset: int
    rows: int
    columns: list[tuple[_Role, str, np.ndarray, list[_Problem]]]
    labels: list[str]


class _Reader:
    """Converts the record batches of one scan (a log, or a part of it), in order."""

    def __init__(self, plan: _Plan) -> None:
        self.roles = plan.roles
        self.classes = _ClassCodes()
        self.times = Timestamps()
        self.converters: dict[str, Callable[[pa.Array], tuple[np.ndarray, list[_Problem]]]] = {
            _CLASS: self.classes.convert,
            _NUMBER: _convert_number,
            _COUNT: _convert_count,
            _TIME: self.times.convert,
            _STATUS: _convert_status,
            _FLAG: _convert_flag,
        }

    def convert(self, batch: pa.RecordBatch, offset: int) -> Chunk:
        columns = []
        for role, name in self.roles:
            values, problems = self.converters[role.kind](batch.column(name))
            columns.append((role, name, values, problems))
        return Chunk(offset, batch.num_rows, columns, self.classes.labels())


@dataclass
class _Column:
    """One column being read into memory: values written batch by batch, and its bad rows."""

    role: _Role
    name: str
    total: int | None  # rows to expect, when known up front: values go straight into `out`
    out: np.ndarray | None = None
    pieces: list[np.ndarray] = field(default_factory=list)
    bad: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (offset, mask)

    def store(self, values: np.ndarray, offset: int) -> None:
        n = values.shape[0]
        if self.total is not None and self.out is None:
            self.out = np.empty(self.total, dtype=_DTYPES[self.role.kind])
        if self.out is not None and offset + n > self.out.shape[0]:
            # More rows than the metadata said: fall back to collecting pieces.
            self.pieces = [self.out[:offset]]
            self.out = self.total = None
        if self.out is not None:
            self.out[offset : offset + n] = values
        else:
            self.pieces.append(values)

    def values(self, rows: int) -> np.ndarray:
        """All values read (a fresh, writeable array); frees the pieces."""
        if self.out is not None:
            out = self.out[:rows]
        else:
            out = np.concatenate(self.pieces).astype(_DTYPES[self.role.kind], copy=False)
        self.out, self.pieces = None, []
        return out


def _describe(issues: list[tuple[str, _Issue]]) -> str:
    parts = []
    for reason, issue in issues:
        rows = ", ".join(str(r) for r in issue.rows)
        if issue.count > len(issue.rows):
            rows += ", ..."
        example = f", e.g. {', '.join(issue.examples)}" if issue.examples else ""
        parts.append(f"{reason} ({_plural(issue.count, 'row')}: {rows}{example})")
    return ", ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def empty_columns(
    roles: Iterable[tuple[_Role, str]], missing: Callable[[_Role], int], rows: int
) -> list[tuple[_Role, str]]:
    """The optional columns empty in every row, which are treated as absent: every column but
    the class, as long as a cost or token column is left that is not empty."""
    roles = list(roles)
    empty = [(r, n) for r, n in roles if r.kind != _CLASS and missing(r) == rows]
    usable_cost = [r for r, _ in roles if r.attr in _COST_ROLES and missing(r) != rows]
    return empty if usable_cost else []


def invalid_rows(
    src: str, rows: int, n_invalid: int, issues: list[tuple[str, _Issue]], drop_invalid: bool
) -> tuple[DroppedRows, ...]:
    """What becomes of a log with ``n_invalid`` invalid rows: the one-line error, or (with
    ``drop_invalid``) the rows dropped by reason."""
    if n_invalid == 0:
        return ()
    if n_invalid == rows:
        raise _error(f"{src}: all {_plural(rows, 'row')} are invalid: {_describe(issues)}")
    if not drop_invalid:
        raise _error(
            f"{src}: {_plural(n_invalid, 'invalid row')}: {_describe(issues)}; "
            "fix them or pass --drop-invalid"
        )
    return tuple(DroppedRows(reason, issue.count, tuple(issue.rows)) for reason, issue in issues)
