"""Tests of costsim.logs: reading and validating pilot logs (DESIGN section 1)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costsim.errors import CostsimError, LogSchemaError
from costsim.logs import ColumnMap, DroppedRows, PilotLog, read_pilot
from costsim.logs.locate import GCS_FIRST_RETRY_S, _bounded

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


# ------------------------------------------------------------------------------------------
# helpers


def write_parquet(path: Path, data: dict[str, object] | pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = data if isinstance(data, pa.Table) else pa.table(data)
    pq.write_table(table, path)
    return path


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def digest(path: Path) -> str:
    """A hash of a file, or of every file under a directory: names, bytes and mtimes."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        h.update(str(file.relative_to(path.parent)).encode())
        h.update(file.read_bytes())
        h.update(str(file.stat().st_mtime_ns).encode())
    return h.hexdigest()


def full_table(n: int = 6) -> dict[str, object]:
    """A small log with every column costsim reads."""
    return {
        "query_class": ["lookup", "agent", "rag_multi_hop", "agent", "lookup", "agent"][:n],
        "cost_usd": [0.001, 0.05, 0.01, 0.2, 0.0, 0.07][:n],
        "input_tokens": pa.array([100, 5000, 2000, 40000, 80, 9000][:n], pa.int64()),
        "output_tokens": pa.array([20, 800, 300, 2500, 10, 600][:n], pa.int32()),
        "cached_input_tokens": [0, 1000, 0, 30000, 0, 0][:n],
        "timestamp": pa.array(
            [(T0 + 60 * i) * 1_000_000 for i in range(n)], pa.timestamp("us", tz="UTC")
        ),
        "latency_ms": [120.0, 9000.5, 2100.0, 31000.0, 95.0, 7000.0][:n],
        "status": ["ok", "OK", "success", "error", "Timeout", "failed"][:n],
        "retries": pa.array([0, 1, 0, 3, 0, 2][:n], pa.int64()),
        "cold_start": [False, True, False, False, False, True][:n],
    }


def read_error(path: Path | str, *args: object, **kwargs: object) -> str:
    """Call read_pilot expecting a LogSchemaError; check it is one line and return it."""
    target = Path(path)
    before = digest(target) if target.exists() else None
    with pytest.raises(LogSchemaError) as info:
        read_pilot(path, *args, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and "\r" not in message, message
    assert message.strip() == message and message
    assert "Traceback" not in message
    if before is not None:
        assert digest(target) == before, "input changed"
    return message


def read_ok(path: Path | str, *args: object, **kwargs: object) -> PilotLog:
    target = Path(path)
    before = digest(target)
    log = read_pilot(path, *args, **kwargs)  # type: ignore[arg-type]
    assert digest(target) == before, "input changed"
    return log


def classes_of(log: PilotLog) -> list[str]:
    return [log.classes[i] for i in log.class_index]


# ------------------------------------------------------------------------------------------
# happy paths


def test_parquet_file_with_every_column(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "pilot.parquet", full_table())
    log = read_ok(path)

    assert log.source == str(path)
    assert log.rows_read == 6
    assert log.n_rows == 6
    assert log.columns == ColumnMap()
    assert log.dropped == ()
    assert log.notes == ()
    assert log.classes == ("agent", "lookup", "rag_multi_hop")
    assert log.class_index.dtype == np.int32
    assert classes_of(log) == ["lookup", "agent", "rag_multi_hop", "agent", "lookup", "agent"]

    for name in ("cost", "input_tokens", "output_tokens", "cached_input_tokens", "latency_ms"):
        assert getattr(log, name).dtype == np.float64, name
    np.testing.assert_array_equal(log.cost, [0.001, 0.05, 0.01, 0.2, 0.0, 0.07])
    np.testing.assert_array_equal(log.input_tokens, [100, 5000, 2000, 40000, 80, 9000])
    np.testing.assert_array_equal(log.output_tokens, [20, 800, 300, 2500, 10, 600])
    np.testing.assert_array_equal(log.cached_input_tokens, [0, 1000, 0, 30000, 0, 0])
    np.testing.assert_array_equal(log.latency_ms, [120.0, 9000.5, 2100.0, 31000.0, 95.0, 7000.0])

    assert log.timestamp is not None and log.timestamp.dtype == np.float64
    np.testing.assert_array_equal(log.timestamp, [T0 + 60.0 * i for i in range(6)])
    assert log.error is not None and log.error.dtype == np.bool_
    np.testing.assert_array_equal(log.error, [False, False, False, True, True, True])
    assert log.retries is not None and log.retries.dtype == np.int64
    np.testing.assert_array_equal(log.retries, [0, 1, 0, 3, 0, 2])
    assert log.cold_start is not None and log.cold_start.dtype == np.bool_
    np.testing.assert_array_equal(log.cold_start, [False, True, False, False, False, True])


def test_pq_extension_and_path_object(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "pilot.PQ", {"query_class": ["a"], "cost_usd": [1.0]})
    log = read_ok(path)
    assert log.source == str(path)
    assert log.classes == ("a",)


def test_optional_columns_absent_are_none(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "p.parquet", {"query_class": ["a", "b"], "cost_usd": [1, 2]})
    log = read_ok(path)
    for name in (
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "timestamp",
        "latency_ms",
        "error",
        "retries",
        "cold_start",
    ):
        assert getattr(log, name) is None, name
    assert log.cost is not None and log.cost.dtype == np.float64


def test_tokens_without_cost(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet", {"query_class": ["a"], "output_tokens": pa.array([7], pa.int16())}
    )
    log = read_ok(path)
    assert log.cost is None and log.input_tokens is None
    np.testing.assert_array_equal(log.output_tokens, [7.0])


def test_csv_file(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "pilot.csv",
        "query_class,cost_usd,input_tokens,output_tokens,status,cold_start,retries,timestamp\n"
        "agent,0.5,1000,200,ok,true,0,2024-01-01T00:00:00Z\n"
        "lookup,0.01,50,5,ERROR,False,1,2024-01-01T01:00:00Z\n"
        "agent,0.25,800,100,succeeded,TRUE,2,2024-01-01T02:00:00Z\n",
    )
    log = read_ok(path)
    assert log.classes == ("agent", "lookup")
    assert classes_of(log) == ["agent", "lookup", "agent"]
    np.testing.assert_array_equal(log.cost, [0.5, 0.01, 0.25])
    np.testing.assert_array_equal(log.input_tokens, [1000, 50, 800])
    np.testing.assert_array_equal(log.error, [False, True, False])
    np.testing.assert_array_equal(log.cold_start, [True, False, True])
    np.testing.assert_array_equal(log.retries, [0, 1, 2])
    assert log.retries is not None and log.retries.dtype == np.int64
    jan1 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    np.testing.assert_array_equal(log.timestamp, [jan1, jan1 + 3600, jan1 + 7200])


def test_csv_with_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfquery_class,cost_usd\r\na,1\r\nb,2\r\n")
    log = read_ok(path)
    assert log.classes == ("a", "b")
    np.testing.assert_array_equal(log.cost, [1.0, 2.0])


def test_csv_gz(tmp_path: Path) -> None:
    path = tmp_path / "pilot.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("query_class,input_tokens\nb,10\na,20\n")
    log = read_ok(path)
    assert log.classes == ("a", "b")
    np.testing.assert_array_equal(log.class_index, [1, 0])
    np.testing.assert_array_equal(log.input_tokens, [10.0, 20.0])


def test_csv_nan_and_inf_words_parse_as_numbers(tmp_path: Path) -> None:
    # "NaN" is a value (then reported as NaN), not a missing cell; empty cells are missing.
    path = write_text(tmp_path / "p.csv", "query_class,cost_usd,latency_ms\na,NaN,1\na,1,\na,2,3\n")
    message = read_error(path)
    assert "cost_usd NaN (1 row: 1)" in message
    assert "latency_ms missing (1 row: 2)" in message


def test_directory_of_parquet_files_in_sorted_order(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    write_parquet(directory / "part-1.parquet", {"query_class": ["b", "b"], "cost_usd": [3.0, 4.0]})
    write_parquet(directory / "part-0.parquet", {"query_class": ["a"], "cost_usd": [1.0]})
    write_text(directory / "_SUCCESS", "")
    write_text(directory / ".part-0.parquet.crc", "junk")
    write_text(directory / "README.md", "not data")
    log = read_ok(directory)
    assert log.source == str(directory)
    np.testing.assert_array_equal(log.cost, [1.0, 3.0, 4.0])
    assert classes_of(log) == ["a", "b", "b"]


def test_a_directory_at_a_uri_is_read_as_the_same_directory_here(tmp_path: Path) -> None:
    # the listing an export at a URI shares (`list_uri`): same order, same entries skipped
    directory = tmp_path / "logs"
    write_parquet(directory / "b" / "part-1.parquet", {"query_class": ["b"], "cost_usd": [3.0]})
    write_parquet(directory / "a" / "part-0.parquet", {"query_class": ["a"], "cost_usd": [1.0]})
    write_parquet(directory / "_tmp" / "part-9.parquet", {"query_class": ["z"], "cost_usd": [9.0]})
    write_text(directory / "_SUCCESS", "")
    write_text(directory / "a" / ".part-0.parquet.crc", "junk")
    here = read_pilot(directory)
    there = read_pilot(directory.resolve().as_uri())
    np.testing.assert_array_equal(there.cost, [1.0, 3.0])
    np.testing.assert_array_equal(there.cost, here.cost)
    assert classes_of(there) == classes_of(here) == ["a", "b"]
    missing = (tmp_path / "nowhere").resolve().as_uri()
    with pytest.raises(LogSchemaError, match="pilot log not found"):
        read_pilot(missing)


def test_the_first_request_to_cloud_storage_retries_for_seconds_not_minutes() -> None:
    """Without credentials or a network, Google Cloud Storage's client retried for many minutes
    in silence: the first request bounds its retries (pyarrow's ``retry_limit_seconds``), unless
    the URI sets them; other URIs are left as they are."""
    limit = f"retry_limit_seconds={GCS_FIRST_RETRY_S}"
    assert _bounded("gs://bucket/pilot/") == f"gs://bucket/pilot/?{limit}"
    assert _bounded("gcs://b/p?endpoint_override=x:1") == f"gcs://b/p?endpoint_override=x:1&{limit}"
    for kept in ("gs://b/p?retry_limit_seconds=300", "s3://b/p", "file:///tmp/p"):
        assert _bounded(kept) == kept


def test_directory_row_numbers_continue_across_files(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    write_parquet(directory / "a.parquet", {"query_class": ["x", "x"], "cost_usd": [1.0, 2.0]})
    write_parquet(directory / "b.parquet", {"query_class": ["x", "x"], "cost_usd": [3.0, -4.0]})
    message = read_error(directory)
    assert message.startswith(f"{directory}: 1 invalid row: cost_usd negative (1 row: 4)")


def test_directory_of_csv_files(tmp_path: Path) -> None:
    directory = tmp_path / "csvs"
    write_text(directory / "a.csv", "query_class,cost_usd\na,1\n")
    write_text(directory / "b.csv", "query_class,cost_usd\nb,2.5\n")
    log = read_ok(directory)
    np.testing.assert_array_equal(log.cost, [1.0, 2.5])
    assert log.classes == ("a", "b")


def test_hive_partitioned_directory(tmp_path: Path) -> None:
    directory = tmp_path / "hive"
    write_parquet(
        directory / "query_class=agent" / "part-0.parquet",
        {"cost_usd": [0.5, 0.7], "input_tokens": [10, 20]},
    )
    write_parquet(
        directory / "query_class=lookup" / "part-0.parquet",
        {"cost_usd": [0.01], "input_tokens": [3]},
    )
    log = read_ok(directory)
    assert log.classes == ("agent", "lookup")
    assert classes_of(log) == ["agent", "agent", "lookup"]
    np.testing.assert_array_equal(log.cost, [0.5, 0.7, 0.01])


def test_nested_hive_partitions_with_unused_keys(tmp_path: Path) -> None:
    directory = tmp_path / "hive"
    write_parquet(
        directory / "day=2024-01-02" / "query_class=rag%20multi" / "p.parquet", {"cost_usd": [2.0]}
    )
    write_parquet(
        directory / "day=2024-01-01" / "query_class=agent" / "p.parquet", {"cost_usd": [1.0]}
    )
    log = read_ok(directory)
    assert classes_of(log) == ["agent", "rag multi"]


def test_hive_partition_key_that_is_also_a_column(tmp_path: Path) -> None:
    directory = tmp_path / "hive"
    write_parquet(
        directory / "query_class=agent" / "part-0.parquet",
        {"query_class": ["agent", "agent"], "cost_usd": [1.0, 2.0]},
    )
    log = read_ok(directory)
    assert classes_of(log) == ["agent", "agent"]


def test_column_overrides(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {
            "kind": ["x", "y"],
            "usd": [1.0, 2.0],
            "prompt": [10, 20],
            "completion": [1, 2],
            "query_class": ["ignored", "ignored"],
            "cost_usd": [-1.0, -1.0],  # not read: the map points elsewhere
        },
    )
    cmap = ColumnMap(
        query_class="kind", cost="usd", input_tokens="prompt", output_tokens="completion"
    )
    log = read_ok(path, cmap)
    assert log.columns is cmap
    assert log.classes == ("x", "y")
    np.testing.assert_array_equal(log.cost, [1.0, 2.0])
    np.testing.assert_array_equal(log.input_tokens, [10.0, 20.0])
    np.testing.assert_array_equal(log.output_tokens, [1.0, 2.0])


def test_empty_column_name_switches_a_column_off(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"], "cost_usd": [1.0], "latency_ms": [-5.0]},
    )
    log = read_ok(path, ColumnMap(latency=""))
    assert log.latency_ms is None


def test_only_mapped_columns_are_read(tmp_path: Path) -> None:
    # Columns costsim does not map may hold anything, even types it could never convert.
    table = pa.table(
        {
            "query_class": ["a", "b"],
            "cost_usd": [1.0, 2.0],
            "payload": pa.array([{"x": [1, 2]}, {"x": []}]),
            "note": ["NaN", "-1"],
        }
    )
    log = read_ok(write_parquet(tmp_path / "p.parquet", table))
    assert log.n_rows == 2


def test_categorical_and_integer_class_columns(tmp_path: Path) -> None:
    frame = pd.DataFrame({"query_class": pd.Categorical(["b", "a", "b"]), "cost_usd": [1.0, 2, 3]})
    path = tmp_path / "cat.parquet"
    frame.to_parquet(path)
    assert read_ok(path).classes == ("a", "b")

    path = write_parquet(
        tmp_path / "int.parquet", {"query_class": [10, 2, 10], "cost_usd": [1, 2, 3]}
    )
    log = read_ok(path)
    assert log.classes == ("10", "2")
    assert classes_of(log) == ["10", "2", "10"]


def test_classes_sorted_and_codes_match_across_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    names = np.array(["zeta", "alpha", "mid", "Beta"])
    picked = names[rng.integers(0, 4, 700_000)]
    path = write_parquet(
        tmp_path / "big.parquet",
        pa.table({"query_class": picked, "cost_usd": np.ones(picked.size)}),
    )
    log = read_ok(path)
    assert log.classes == ("Beta", "alpha", "mid", "zeta")
    np.testing.assert_array_equal(np.asarray(log.classes)[log.class_index], picked)


# ------------------------------------------------------------------------------------------
# timestamps


def test_timestamp_naive_datetime_is_utc_with_note(tmp_path: Path) -> None:
    naive = [dt.datetime(2024, 3, 1, 12, 0, 0), dt.datetime(2024, 3, 1, 12, 0, 30)]
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a", "a"], "cost_usd": [1.0, 1.0], "timestamp": pa.array(naive)},
    )
    log = read_ok(path)
    start = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC).timestamp()
    np.testing.assert_array_equal(log.timestamp, [start, start + 30])
    assert any("no time zone" in note for note in log.notes)


def test_timestamp_with_time_zone(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "query_class": ["a"],
            "cost_usd": [1.0],
            "timestamp": pd.to_datetime(["2024-03-01T14:00:00+02:00"]),
        }
    )
    path = tmp_path / "tz.parquet"
    frame.to_parquet(path)
    log = read_ok(path)
    expected = dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC).timestamp()
    np.testing.assert_array_equal(log.timestamp, [expected])
    assert log.notes == ()


def test_timestamp_date_column(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"], "cost_usd": [1.0], "timestamp": pa.array([dt.date(2024, 1, 2)])},
    )
    expected = dt.datetime(2024, 1, 2, tzinfo=dt.UTC).timestamp()
    np.testing.assert_array_equal(read_ok(path).timestamp, [expected])


def test_timestamp_epoch_seconds(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a", "a"], "cost_usd": [1.0, 1.0], "timestamp": [T0, T0 + 1]},
    )
    log = read_ok(path)
    np.testing.assert_array_equal(log.timestamp, [T0, T0 + 1.0])
    assert log.notes == ()


@pytest.mark.parametrize(
    ("factor", "unit"),
    [(1_000, "milliseconds"), (1_000_000, "microseconds"), (1_000_000_000, "nanoseconds")],
)
def test_timestamp_epoch_units_detected(tmp_path: Path, factor: int, unit: str) -> None:
    stamps = pa.array([T0 * factor, (T0 + 2) * factor], pa.int64())
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a", "a"], "cost_usd": [1.0, 1.0], "timestamp": stamps},
    )
    log = read_ok(path)
    assert log.timestamp is not None
    np.testing.assert_allclose(log.timestamp, [T0, T0 + 2.0])
    assert log.notes == (
        f"timestamp: numbers look like {unit} since the epoch; converted to seconds",
    )


def test_numbers_before_2000_as_times_are_doubted(tmp_path: Path) -> None:
    # latencies in ms given as the time column read as 1970: a note says so; the same numbers
    # as CSV text, and a time of 2000 or later, do not fool it
    for values, early in (([120.0, 3400.0, T0], 2), ([T0, T0 + 1.0], 0)):
        path = write_parquet(
            tmp_path / "p.parquet",
            {"query_class": ["a"] * len(values), "cost_usd": [1.0] * len(values),
             "timestamp": values},
        )  # fmt: skip
        notes = [n for n in read_ok(path).notes if "before 2000" in n]
        assert notes == (
            [
                f"timestamp: {early:,} of its numbers fall before 2000 when read as times since "
                "1970: is it the arrival-time column (--timestamp-col)?"
            ]
            if early
            else []
        )
    text = write_text(tmp_path / "p.csv", "query_class,cost_usd,timestamp\na,1,120\na,1,35\n")
    assert any("2 of its numbers fall before 2000" in n for n in read_ok(text).notes)


def test_timestamp_epoch_milliseconds_in_csv(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "p.csv",
        f"query_class,cost_usd,timestamp\na,1,{T0 * 1000}\na,1,{T0 * 1000 + 500}\n",
    )
    log = read_ok(path)
    assert log.timestamp is not None
    np.testing.assert_allclose(log.timestamp, [T0, T0 + 0.5])
    assert any("milliseconds" in note for note in log.notes)


def test_timestamp_iso_strings_with_mixed_offsets(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {
            "query_class": ["a", "a", "a"],
            "cost_usd": [1.0, 1.0, 1.0],
            "timestamp": [
                "2024-01-01T00:00:00Z",
                "2024-01-01T02:00:00+02:00",
                "2024-01-01 00:00:01",
            ],
        },
    )
    log = read_ok(path)
    jan1 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    np.testing.assert_array_equal(log.timestamp, [jan1, jan1, jan1 + 1])


def test_timestamp_offsets_on_every_row_need_no_note(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "p.csv",
        "query_class,cost_usd,timestamp\na,1,2024-01-01T00:00:00Z\na,1,2024-01-01T02:00:00+02:00\n",
    )
    log = read_ok(path)
    jan1 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    np.testing.assert_array_equal(log.timestamp, [jan1, jan1])
    assert log.notes == ()


def test_timestamp_strings_over_many_batches(tmp_path: Path) -> None:
    n = 300_000  # more than one record batch
    lines = [f"a,1,2024-01-01 00:00:{i % 60:02d}" for i in range(n)]
    path = write_text(tmp_path / "p.csv", "query_class,cost_usd,timestamp\n" + "\n".join(lines))
    log = read_ok(path)
    jan1 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()
    assert log.timestamp is not None
    np.testing.assert_array_equal(log.timestamp, jan1 + np.arange(n) % 60)


def test_timestamp_bad_string_is_invalid_row(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "p.csv",
        "query_class,cost_usd,timestamp\na,1,2024-01-01T00:00:00\na,1,yesterday\n",
    )
    message = read_error(path)
    assert "timestamp not an ISO 8601 date/time (1 row: 2, e.g. 'yesterday')" in message


# ------------------------------------------------------------------------------------------
# status, error flag, retries, cold start


def test_status_strings_are_case_insensitive(tmp_path: Path) -> None:
    words = ["ok", " Success ", "SUCCEEDED", "error", "Failed", "failure", "FAIL", "timeout"]
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"] * len(words), "cost_usd": [1.0] * len(words), "status": words},
    )
    np.testing.assert_array_equal(read_ok(path).error, [False] * 3 + [True] * 5)


def test_unknown_status_is_invalid_row(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a", "a", "a"], "cost_usd": [1.0] * 3, "status": ["ok", "pending", None]},
    )
    message = read_error(path)
    assert "status not ok/error (1 row: 2, e.g. 'pending')" in message
    assert "status missing (1 row: 3)" in message


def test_bool_error_column(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a", "a"], "cost_usd": [1.0, 1.0], "error": [False, True]},
    )
    log = read_ok(path)
    assert log.error is not None and log.error.dtype == np.bool_
    np.testing.assert_array_equal(log.error, [False, True])


def test_status_wins_over_error_column_with_note(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"], "cost_usd": [1.0], "status": ["error"], "error": [False]},
    )
    log = read_ok(path)
    np.testing.assert_array_equal(log.error, [True])
    assert any("'status'" in note for note in log.notes)


@pytest.mark.parametrize(
    "values",
    [[0, 1, 1], ["0", "1", "1"], ["false", "True", "YES"], [0.0, 1.0, 1.0], ["no", "yes", "t"]],
)
def test_cold_start_forms(tmp_path: Path, values: list[object]) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"] * 3, "cost_usd": [1.0] * 3, "cold_start": values},
    )
    np.testing.assert_array_equal(read_ok(path).cold_start, [False, True, True])


def test_cold_start_not_boolean(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"] * 2, "cost_usd": [1.0] * 2, "cold_start": [0, 2]},
    )
    assert "cold_start not a boolean (1 row: 2, e.g. 2)" in read_error(path)


def test_cold_start_word_not_boolean(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"] * 3, "cost_usd": [1.0] * 3, "cold_start": ["yes", "maybe", None]},
    )
    message = read_error(path)
    assert "cold_start not a boolean (1 row: 2, e.g. 'maybe')" in message
    assert "cold_start missing (1 row: 3)" in message


def test_retries_must_be_whole_numbers(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"] * 3, "cost_usd": [1.0] * 3, "retries": [0.0, 1.5, -1.0]},
    )
    message = read_error(path)
    assert "retries not a whole number (1 row: 2, e.g. 1.5)" in message
    assert "retries negative (1 row: 3)" in message


def test_retries_float_whole_numbers_become_int64(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "p.parquet",
        {"query_class": ["a"] * 2, "cost_usd": [1.0] * 2, "retries": [0.0, 2.0]},
    )
    log = read_ok(path)
    assert log.retries is not None and log.retries.dtype == np.int64
    np.testing.assert_array_equal(log.retries, [0, 2])


# ------------------------------------------------------------------------------------------
# bad inputs: files


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "data" / "x.parquet"
    assert read_error(path) == f"pilot log not found: {path}"


def test_missing_path_keeps_the_path_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert read_error("data/x.parquet") == "pilot log not found: data/x.parquet"


def test_not_parquet_or_csv(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.txt", "query_class,cost_usd\na,1\n")
    assert read_error(path) == (
        f"{path}: not a Parquet or CSV file (expected .parquet, .pq, .csv or a directory of them)"
    )


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    message = read_error(path)
    assert message.startswith(f"cannot read {path} as Parquet: ")
    assert "magic bytes" in message


def test_truncated_parquet(tmp_path: Path) -> None:
    good = write_parquet(tmp_path / "good.parquet", full_table())
    path = tmp_path / "x.parquet"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert read_error(path).startswith(f"cannot read {path} as Parquet: ")


def test_corrupt_file_in_directory_is_named(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    write_parquet(directory / "a.parquet", {"query_class": ["a"], "cost_usd": [1.0]})
    (directory / "b.parquet").write_bytes(b"PAR1 this is not parquet at all")
    message = read_error(directory)
    assert message.startswith(f"cannot read {directory / 'b.parquet'} as Parquet: ")


def test_empty_csv_file(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.csv", "")
    assert read_error(path) == f"pilot log {path} has no rows"


def test_csv_with_header_only(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.csv", "query_class,cost_usd\n")
    assert read_error(path) == f"pilot log {path} has no rows"


def test_empty_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"")
    assert read_error(path) == f"pilot log {path} has no rows"


def test_parquet_with_schema_but_zero_rows(tmp_path: Path) -> None:
    table = pa.table(
        {"query_class": pa.array([], pa.string()), "cost_usd": pa.array([], pa.float64())}
    )
    path = write_parquet(tmp_path / "x.parquet", table)
    assert read_error(path) == f"pilot log {path} has no rows"


def test_empty_directory(tmp_path: Path) -> None:
    directory = tmp_path / "empty"
    directory.mkdir()
    write_text(directory / "notes.txt", "hello")
    message = read_error(directory)
    assert message.startswith(f"{directory}: no Parquet or CSV files in directory")


def test_directory_mixing_formats(tmp_path: Path) -> None:
    directory = tmp_path / "mixed"
    write_parquet(directory / "a.parquet", {"query_class": ["a"], "cost_usd": [1.0]})
    write_text(directory / "b.csv", "query_class,cost_usd\na,1\n")
    assert "both Parquet and CSV" in read_error(directory)


def test_csv_parse_error(tmp_path: Path) -> None:
    path = write_text(tmp_path / "x.csv", "query_class,cost_usd\na,1\nb,2,3,4\n")
    message = read_error(path)
    assert message.startswith(f"cannot read {path} as CSV: ")


def test_hive_partitioned_csv_directory(tmp_path: Path) -> None:
    directory = tmp_path / "hive"
    write_text(directory / "query_class=b" / "0.csv", "cost_usd,status\n1,ok\n")
    write_text(directory / "query_class=a" / "0.csv", "cost_usd,status\n2,error\n3,ok\n")
    log = read_ok(directory)
    assert classes_of(log) == ["a", "a", "b"]
    np.testing.assert_array_equal(log.error, [True, False, False])


def test_duplicate_column(tmp_path: Path) -> None:
    table = pa.Table.from_arrays(
        [pa.array(["a"]), pa.array([1.0]), pa.array([2.0])],
        names=["query_class", "cost_usd", "cost_usd"],
    )
    path = write_parquet(tmp_path / "x.parquet", table)
    assert read_error(path) == f"{path}: column 'cost_usd' appears more than once"


def test_directory_with_mixed_schemas(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    write_parquet(directory / "a.parquet", {"query_class": ["a"], "cost_usd": [1.0]})
    write_parquet(directory / "b.parquet", {"query_class": ["a"], "cost_usd": ["1.0"]})
    assert read_error(directory) == (
        f"{directory}: files disagree on column 'cost_usd': "
        "a.parquet has double, b.parquet has string"
    )


def test_directory_with_column_missing_from_one_file(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    write_parquet(
        directory / "a.parquet", {"query_class": ["a"], "cost_usd": [1.0], "retries": [0]}
    )
    write_parquet(directory / "sub" / "b.parquet", {"query_class": ["a"], "cost_usd": [1.0]})
    assert read_error(directory) == (
        f"{directory}: files disagree on column 'retries': a.parquet has int64, "
        "sub/b.parquet does not have it"
    )


def test_directory_with_int_and_float_of_one_column_is_fine(tmp_path: Path) -> None:
    directory = tmp_path / "dir"
    write_parquet(directory / "a.parquet", {"query_class": ["a"], "cost_usd": [1]})
    write_parquet(directory / "b.parquet", {"query_class": ["a"], "cost_usd": [1.5]})
    write_parquet(
        directory / "c.parquet", {"query_class": ["a"], "cost_usd": pa.array([None], pa.null())}
    )
    message = read_error(directory)  # the null of c.parquet is an invalid row, not a type clash
    assert message == (
        f"{directory}: 1 invalid row: cost_usd missing (1 row: 3); fix them or pass --drop-invalid"
    )
    log = read_ok(directory, drop_invalid=True)
    np.testing.assert_array_equal(log.cost, [1.0, 1.5])


# ------------------------------------------------------------------------------------------
# bad inputs: columns


def test_missing_class_column(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", {"a": [1], "b": [2], "c": [3]})
    assert read_error(path) == (
        f"{path}: missing column 'query_class' (the query class; choose another with "
        "--class-col); found: a, b, c"
    )


def test_missing_overridden_class_column(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", {"query_class": ["a"], "cost_usd": [1.0]})
    message = read_error(path, ColumnMap(query_class="kind"))
    assert "missing column 'kind'" in message and "found: query_class, cost_usd" in message


def test_neither_cost_nor_tokens(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", {"query_class": ["a"], "price": [1.0]})
    message = read_error(path)
    assert message.startswith(f"{path}: no cost or token columns")
    for expected in (
        "'cost_usd'",
        "'input_tokens'",
        "'output_tokens'",
        "found: query_class, price",
        "--cost-col",
        "--input-tokens-col",
        "--output-tokens-col",
    ):
        assert expected in message


def test_explicitly_mapped_optional_column_must_exist(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "x.parquet", {"query_class": ["a"], "cost_usd": [1.0]})
    message = read_error(path, ColumnMap(latency="lat"))
    assert message == (
        f"{path}: missing column 'lat' (latency in ms, set with --latency-col); "
        "found: query_class, cost_usd"
    )


def test_column_of_wrong_type(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "x.parquet",
        {"query_class": ["a"], "cost_usd": pa.array([dt.datetime(2024, 1, 1)])},
    )
    message = read_error(path)
    assert message.startswith(f"{path}: column 'cost_usd' (cost in USD) has type timestamp")
    assert "expected numbers" in message


def test_status_of_wrong_type(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "x.parquet", {"query_class": ["a"], "cost_usd": [1.0], "status": [200]}
    )
    message = read_error(path)
    assert message.startswith(f"{path}: column 'status' (request outcome ok/error) has type int64")


# ------------------------------------------------------------------------------------------
# bad inputs: values


def test_negative_cost(tmp_path: Path) -> None:
    costs = [1.0] * 40
    for row in (3, 17, 29, 30, 31, 32, 33, 40):
        costs[row - 1] = -0.5
    path = write_parquet(tmp_path / "x.parquet", {"query_class": ["a"] * 40, "cost_usd": costs})
    assert read_error(path) == (
        f"{path}: 8 invalid rows: cost_usd negative (8 rows: 3, 17, 29, 30, 31, ...); "
        "fix them or pass --drop-invalid"
    )


def test_nan_and_inf(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "x.parquet",
        {
            "query_class": ["a"] * 5,
            "cost_usd": [1.0, np.nan, 2.0, np.inf, -np.inf],
            "input_tokens": [np.nan, 1.0, 1.0, 1.0, 1.0],
        },
    )
    message = read_error(path)
    assert message.startswith(f"{path}: 4 invalid rows: ")
    assert "cost_usd NaN (1 row: 2)" in message
    assert "cost_usd infinite (2 rows: 4, 5)" in message
    assert "input_tokens NaN (1 row: 1)" in message
    assert message.endswith("; fix them or pass --drop-invalid")


def test_null_in_optional_column_is_invalid(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "x.parquet",
        {"query_class": ["a"] * 3, "cost_usd": [1.0] * 3, "latency_ms": [1.0, None, 3.0]},
    )
    assert "latency_ms missing (1 row: 2)" in read_error(path)


def test_empty_class_is_invalid(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "x.parquet", {"query_class": ["a", "", None, "  "], "cost_usd": [1.0] * 4}
    )
    assert "query_class empty (3 rows: 2, 3, 4)" in read_error(path)


def test_non_numeric_tokens_in_csv(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "x.csv",
        "query_class,cost_usd,input_tokens\na,1,10\na,1,abc\na,1, 12 \na,1,n/a\na,1,1e3\n",
    )
    message = read_error(path)
    assert message == (
        f"{path}: 2 invalid rows: input_tokens not a number (1 row: 2, e.g. 'abc'), "
        "input_tokens missing (1 row: 4); fix them or pass --drop-invalid"
    )
    log = read_ok(path, drop_invalid=True)
    np.testing.assert_array_equal(log.input_tokens, [10.0, 12.0, 1000.0])


def test_non_numeric_value_late_in_a_large_csv(tmp_path: Path) -> None:
    rows = ["a,1,10"] * 200_000 + ["a,1,lots"]
    path = write_text(tmp_path / "x.csv", "query_class,cost_usd,input_tokens\n" + "\n".join(rows))
    assert "input_tokens not a number (1 row: 200001, e.g. 'lots')" in read_error(path)


def test_strings_in_a_parquet_number_column_are_coerced(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "x.parquet", {"query_class": ["a", "a"], "cost_usd": ["0.25", "cheap"]}
    )
    assert "cost_usd not a number (1 row: 2, e.g. 'cheap')" in read_error(path)


def test_invalid_rows_message_lists_every_reason(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "x.csv",
        "query_class,cost_usd,status\na,1,ok\nb,-2,ok\n,3,ok\nc,4,maybe\nd,5,ok\n",
    )
    assert read_error(path) == (
        f"{path}: 3 invalid rows: query_class empty (1 row: 3), cost_usd negative (1 row: 2), "
        "status not ok/error (1 row: 4, e.g. 'maybe'); fix them or pass --drop-invalid"
    )


def test_drop_invalid_drops_and_reports(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "x.parquet",
        {
            "query_class": ["a", "gone", "b", "a", "", "b", "a"],
            "cost_usd": [1.0, -1.0, 2.0, np.nan, 1.0, 3.0, -7.0],
            "latency_ms": [10.0, 10.0, None, 10.0, 10.0, 10.0, 10.0],
        },
    )
    log = read_ok(path, drop_invalid=True)
    assert log.rows_read == 7
    assert log.n_rows == 2
    assert log.classes == ("a", "b")  # 'gone' only appeared in a dropped row
    assert classes_of(log) == ["a", "b"]
    np.testing.assert_array_equal(log.cost, [1.0, 3.0])
    np.testing.assert_array_equal(log.latency_ms, [10.0, 10.0])
    assert log.dropped == (
        DroppedRows("query_class empty", 1, (5,)),
        DroppedRows("cost_usd NaN", 1, (4,)),
        DroppedRows("cost_usd negative", 2, (2, 7)),
        DroppedRows("latency_ms missing", 1, (3,)),
    )


def test_drop_invalid_keeps_at_most_five_row_numbers(tmp_path: Path) -> None:
    costs = [-1.0] * 9 + [1.0]
    path = write_parquet(tmp_path / "x.parquet", {"query_class": ["a"] * 10, "cost_usd": costs})
    log = read_ok(path, drop_invalid=True)
    assert log.dropped == (DroppedRows("cost_usd negative", 9, (1, 2, 3, 4, 5)),)
    assert log.n_rows == 1


def test_every_row_invalid(tmp_path: Path) -> None:
    path = write_parquet(
        tmp_path / "x.parquet", {"query_class": ["a", "b"], "cost_usd": [-1.0, -2.0]}
    )
    for drop in (False, True):
        message = read_error(path, drop_invalid=drop)
        assert message == f"{path}: all 2 rows are invalid: cost_usd negative (2 rows: 1, 2)"


def test_optional_column_empty_in_every_row_is_ignored(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "x.csv", "query_class,cost_usd,latency_ms,status\na,1,,ok\nb,2,,error\n"
    )
    log = read_ok(path)
    assert log.latency_ms is None
    np.testing.assert_array_equal(log.error, [False, True])
    assert log.notes == ("column 'latency_ms' is empty in every row; ignored",)


def test_errors_are_costsim_errors(tmp_path: Path) -> None:
    with pytest.raises(CostsimError):
        read_pilot(tmp_path / "nothing.csv")


# ------------------------------------------------------------------------------------------
# properties


_rows = st.lists(
    st.tuples(
        st.sampled_from(["agent", "lookup", "rag", "a b", "é"]),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
        st.integers(min_value=0, max_value=2**40),
        st.booleans(),
        st.integers(min_value=0, max_value=10),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(rows=_rows, fmt=st.sampled_from(["parquet", "csv"]))
def test_round_trip(rows: list[tuple[str, float, int, bool, int]], fmt: str) -> None:
    frame = pd.DataFrame(
        rows, columns=["query_class", "cost_usd", "input_tokens", "cold_start", "retries"]
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"log.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path)
        else:
            frame.to_csv(path, index=False, float_format="%.17g")
        log = read_ok(path)
    assert log.classes == tuple(sorted(set(frame["query_class"])))
    assert classes_of(log) == list(frame["query_class"])
    np.testing.assert_array_equal(log.cost, frame["cost_usd"].to_numpy())
    np.testing.assert_array_equal(log.input_tokens, frame["input_tokens"].to_numpy(float))
    np.testing.assert_array_equal(log.cold_start, frame["cold_start"].to_numpy())
    np.testing.assert_array_equal(log.retries, frame["retries"].to_numpy())
