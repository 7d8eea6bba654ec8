"""The streamed fit (issue 11): a log cut into files, row groups, items and workers gives the
same model, to the byte, as the log read whole; sums are exact, samples bounded and stated."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from costsim import logs
from costsim.errors import CostsimWarning, FitError, LogSchemaError
from costsim.logs import read_pilot
from costsim.model import fit as fit_module
from costsim.model import summaries
from costsim.model.drift import drift_windows
from costsim.model.file import model_to_json
from costsim.model.fit import drift_series, fit_model, fit_source
from costsim.model.summaries import (
    LOGS,
    VALUES,
    Grid,
    StreamJob,
    SummarySpec,
    normalise,
    role_fields,
    summarize_item,
)
from costsim.parallel import Parallel

T0 = 1_790_000_000.0  # 2026-09-21


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CostsimWarning)
        yield


def make_table(n: int = 9000, seed: int = 3) -> pa.Table:
    """Three classes over three days: costs with zeros and a heavy tail, outputs cut at a
    max_tokens atom, latencies, errors, retries, cold starts; rows in time order."""
    rng = np.random.default_rng(seed)
    cls = rng.choice(np.array(["agent", "chat", "rag"]), n, p=[0.2, 0.5, 0.3])
    t = T0 + 1234.5 + np.sort(rng.random(n)) * 3 * 86400
    cost = rng.lognormal(-6.0, 1.0, n) * (1.0 + (rng.random(n) < 0.05) * rng.pareto(1.5, n))
    cost[rng.random(n) < 0.02] = 0.0
    out = np.minimum(np.round(rng.lognormal(5.0, 1.0, n)), 600.0)
    return pa.table(
        {
            "query_class": cls,
            "cost_usd": cost,
            "output_tokens": out.astype(np.int64),
            "timestamp": pa.array((t * 1000).astype(np.int64), pa.timestamp("ms", tz="UTC")),
            "latency_ms": np.round(rng.lognormal(6.0, 0.8, n), 1),
            "status": np.where(rng.random(n) < 0.03, "error", "ok"),
            "retries": rng.poisson(0.1, n),
            "cold_start": rng.random(n) < 0.04,
        }
    )


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_table()


def write_parts(directory: Path, table: pa.Table, cuts: list[int], row_group: int) -> Path:
    """The table as several files (cut at ``cuts``), each in row groups of ``row_group``."""
    directory.mkdir(parents=True)
    bounds = [0, *cuts, table.num_rows]
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        pq.write_table(
            table.slice(a, b - a), directory / f"part-{i}.parquet", row_group_size=row_group
        )
    return directory


def model_json(model: Any) -> dict[str, Any]:
    """The model file as a dict, without the path it was read from."""
    doc = json.loads(model_to_json(model))
    doc.pop("source")
    return doc


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory, table: pa.Table) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("whole") / "pilot.parquet"
    pq.write_table(table, path)
    return path, model_to_json(fit_source(path).model)


def test_a_log_cut_into_files_row_groups_items_and_workers_is_the_same_model(
    tmp_path: Path, table: pa.Table, whole: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, text = whole
    parts = write_parts(tmp_path / "parts", table, [1000, 1001, 4500], row_group=700)
    monkeypatch.setattr(logs.stream, "ITEM_ROWS", 1500)  # several items, some spanning files
    assert len(logs.open_log(parts).items) > 4
    expected = json.loads(text)
    expected.pop("source")
    for workers in (1, 2):
        assert model_json(fit_source(parts, parallel=Parallel(workers)).model) == expected
    # the log read whole into memory, fitted there: the same bytes as streamed
    assert model_to_json(fit_model(read_pilot(path))) == text


def test_streamed_counts_totals_tails_drift_and_rates_are_the_log_s(
    table: pa.Table, whole: tuple[Path, str]
) -> None:
    model = json.loads(whole[1])
    cls = np.asarray(table["query_class"])
    cost = np.asarray(table["cost_usd"])
    for name, c in model["classes"].items():
        rows = cls == name
        assert c["requests"] == int(rows.sum())
        assert c["cost_total"] == pytest.approx(math.fsum(cost[rows]), rel=1e-9)
        q = c["quantities"]["cost_usd"]
        assert q["summary"]["max"] == pytest.approx(cost[rows].max(), rel=1e-9)
        assert q["summary"]["p50"] == pytest.approx(np.quantile(cost[rows], 0.5), rel=1e-9)
        rates = c["rates"]
        errors = np.asarray(table["status"])[rows] == "error"
        assert rates["error_rate"] == pytest.approx(errors.mean(), rel=1e-9)


def test_the_drift_windows_are_the_log_s_on_epoch_aligned_windows(table: pa.Table) -> None:
    log = read_pilot_table(table)
    rows = np.flatnonzero(log.class_index == log.classes.index("chat"))
    assert log.timestamp is not None and log.cost is not None
    for window in (3600.0, 4 * 3600.0):
        ours = drift_series(log, rows, window)
        assert ours is not None
        start = math.floor(log.timestamp.min() / window) * window
        end = start + ours.windows * window
        ref = drift_windows(
            log.timestamp[rows], log.cost[rows], window, adapt=False, start=start, end=end
        )
        assert ours.start == ref.start and np.array_equal(ours.count, ref.count)
        np.testing.assert_allclose(ours.mean, ref.mean, rtol=1e-12, atol=1e-12)
        assert ours.within_var == pytest.approx(ref.within_var, rel=1e-12)
        assert ours.reference == pytest.approx(ref.reference, rel=1e-12)


def read_pilot_table(table: pa.Table) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.parquet"
        pq.write_table(table, path)
        return read_pilot(path)


def test_costs_far_below_the_median_are_floored_exactly_by_a_second_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More costs below the drift's floor than the smallest kept: the rows are read again."""
    monkeypatch.setattr(summaries.limits, "LOW_ROWS", 20)
    passes: list[dict[str, float]] = []  # the classes each fit reads again, with their floors

    def floors_to_sum(summary: summaries.LogSummary) -> dict[str, float]:
        passes.append(summaries.floors_to_sum(summary))
        return passes[-1]

    monkeypatch.setattr(fit_module, "floors_to_sum", floors_to_sum)
    table = make_table(4000, seed=9)
    cost = np.asarray(table["cost_usd"]).copy()
    cost[::25] = 1e-12  # 160 requests a billion times cheaper than the median
    table = table.set_column(1, "cost_usd", pa.array(cost))
    parts = write_parts(tmp_path / "parts", table, [1500], row_group=400)
    log = read_pilot(parts)
    assert log.cost is not None and log.timestamp is not None
    rows = np.flatnonzero(log.class_index == log.classes.index("chat"))
    ours = drift_series(log, rows, 3600.0)
    assert ours is not None
    start = math.floor(log.timestamp.min() / 3600.0) * 3600.0
    ref = drift_windows(
        log.timestamp[rows], log.cost[rows], 3600.0, adapt=False, start=start,
        end=start + ours.windows * 3600.0,
    )  # fmt: skip
    np.testing.assert_allclose(ours.mean, ref.mean, rtol=1e-12, atol=1e-12)
    assert ours.within_var == pytest.approx(ref.within_var, rel=1e-12)
    streamed = fit_source(parts, parallel=Parallel(2)).model
    assert model_json(streamed) == model_json(fit_model(log))
    # every fit read rows again (the drift series, the streamed and the in-memory fit): the
    # smaller limit reached every room that keeps or reads the smallest costs
    assert len(passes) == 3 and all(passes)


def test_a_class_larger_than_its_sample_has_body_quantiles_within_the_stated_error(
    tmp_path: Path, table: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = 1000
    monkeypatch.setattr(summaries.limits, "SAMPLE_ROWS", m)
    path = tmp_path / "p.parquet"
    pq.write_table(table, path)
    parts = write_parts(tmp_path / "parts", table, [3000, 6000], row_group=512)
    monkeypatch.setattr(logs.stream, "ITEM_ROWS", 1024)
    model = fit_source(path).model
    assert model_json(fit_source(parts, parallel=Parallel(2)).model) == model_json(model)
    chat = np.sort(np.asarray(table["latency_ms"])[np.asarray(table["query_class"]) == "chat"])
    assert chat.size > 4 * m
    # DKW: the sample's CDF is within sqrt(ln(2/d) / 2m) of the class's, d = 0.001
    eps = math.sqrt(math.log(2 / 1e-3) / (2 * m))
    dist = model.classes["chat"].quantities["latency_ms"].dist
    probs = np.linspace(0.05, 0.85, 17)  # the body (the tail starts higher)
    ranks = np.searchsorted(chat, dist.ppf(probs), side="right") / chat.size
    assert np.max(np.abs(ranks - probs)) <= eps + 1.0 / 256  # and the body grid's step
    # the drift pictures put the class on the fit's windows, floored alike
    log = read_pilot(path)
    rows = np.flatnonzero(log.class_index == log.classes.index("chat"))
    fitted = model.classes["chat"].drift
    series = drift_series(log, rows, fitted.window_s)
    assert series is not None and series.reference == pytest.approx(fitted.reference, abs=1e-12)
    # exact still: counts, totals, the top values the tail is fitted to
    c = model.classes["chat"]
    assert c.requests == chat.size
    assert c.quantities["latency_ms"].summary["max"] == chat[-1]
    assert c.quantities["latency_ms"].summary["total"] == pytest.approx(math.fsum(chat), rel=1e-12)
    # the body came from the sample: with the usual limit, the class fits it and is exact
    monkeypatch.setattr(summaries.limits, "SAMPLE_ROWS", 1 << 18)
    assert model_json(fit_source(path).model) != model_json(model)


def test_hive_partitions_csv_and_file_uris_stream_to_the_same_model(
    tmp_path: Path, table: pa.Table, whole: tuple[Path, str]
) -> None:
    expected = json.loads(whole[1])
    expected.pop("source")
    # hive-partitioned by day: the partition key is not a costsim column
    ms = np.asarray(table["timestamp"]).astype("datetime64[ms]").astype(np.int64)
    day = np.floor((ms / 1000 - T0) / 86400)
    hive = tmp_path / "hive"
    for d in np.unique(day):
        rows = np.flatnonzero(day == d)
        part = hive / f"day={int(d)}" / "part-0.parquet"
        part.parent.mkdir(parents=True)
        pq.write_table(table.take(rows), part, row_group_size=1000)
    assert model_json(fit_source(hive, parallel=Parallel(2)).model) == expected
    # hive-partitioned by class: rows come class by class; every class fits its sample
    by_class = tmp_path / "by_class"
    for name in ("agent", "chat", "rag"):
        rows = np.flatnonzero(np.asarray(table["query_class"]) == name)
        part = by_class / f"query_class={name}" / "part-0.parquet"
        part.parent.mkdir(parents=True)
        pq.write_table(table.take(rows).drop_columns(["query_class"]), part)
    got = model_json(fit_source(by_class).model)
    assert got["classes"] == expected["classes"]
    # object storage through pyarrow's filesystems: a file:// URI
    uri = (tmp_path / "hive").resolve().as_uri()
    assert model_json(fit_source(uri).model) == expected
    # CSV, through the same path
    csv = tmp_path / "pilot.csv"
    pa_csv.write_csv(table, csv)
    assert model_json(fit_source(csv).model)["classes"] == expected["classes"]


def test_a_bad_row_in_the_third_file_is_named_by_its_row_in_the_log(
    tmp_path: Path, table: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    cost = np.asarray(table["cost_usd"]).copy()
    cost[5000] = -1.0  # the third file's rows are 3001..6000 (1-based)
    bad = table.set_column(1, "cost_usd", pa.array(cost))
    parts = write_parts(tmp_path / "parts", bad, [2000, 3000, 6000], row_group=500)
    monkeypatch.setattr(logs.stream, "ITEM_ROWS", 1000)
    with pytest.raises(LogSchemaError, match=r"1 invalid row: cost_usd negative \(1 row: 5001\)"):
        fit_source(parts, parallel=Parallel(2))
    fitted = fit_source(parts, drop_invalid=True, parallel=Parallel(2))
    assert [(d.reason, d.count, d.first_rows) for d in fitted.dropped] == [
        ("cost_usd negative", 1, (5001,))
    ]
    assert fitted.model.rows_read == table.num_rows and fitted.model.rows_dropped == 1
    assert sum(c.requests for c in fitted.model.classes.values()) == table.num_rows - 1


def test_an_optional_column_empty_in_every_row_is_left_out(tmp_path: Path) -> None:
    table = make_table(2000)
    empty = pa.array([None] * table.num_rows, pa.float64())
    table = table.set_column(table.column_names.index("latency_ms"), "latency_ms", empty)
    note = "column 'latency_ms' is empty in every row; ignored"
    pq.write_table(table, tmp_path / "p.parquet")  # the metadata says so
    pa_csv.write_csv(table, tmp_path / "p.csv")  # read once, found empty, read again
    for path in (tmp_path / "p.parquet", tmp_path / "p.csv"):
        model = fit_source(path).model
        assert note in model.notes
        assert "latency_ms" not in model.classes["chat"].quantities


def test_memory_bounds_give_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(make_table(2000), path)
    monkeypatch.setattr(logs.read, "_memory_available", lambda: 10_000)
    with pytest.raises(LogSchemaError, match=r"need about .* GiB to read into memory.* streams"):
        read_pilot(path)
    assert fit_source(path).model.traffic.requests == 2000  # streaming needs no such room
    monkeypatch.setattr(summaries.limits, "MAX_CLASSES", 2)
    with pytest.raises(FitError, match=r"more than 2 query classes .*--class-col"):
        fit_source(path)


def test_exact_sums_do_not_depend_on_order_or_grouping() -> None:
    rng = np.random.default_rng(1)
    x = rng.lognormal(-3.0, 4.0, 5000) * rng.choice([1.0, 1e6, 1e-9], 5000)
    acc = VALUES.sums(x, np.zeros(x.size, dtype=np.int64), 1)
    assert VALUES.value(acc)[0] == math.fsum(x)  # the exact sum, correctly rounded
    perm = rng.permutation(x.size)
    parts = [VALUES.reduce(x[perm][a : a + 777], np.array([0])) for a in range(0, x.size, 777)]
    assert np.array_equal(normalise(np.sum(parts, axis=0)), acc)
    y = np.log(x)
    logs_acc = LOGS.reduce(y, np.array([0]), nonnegative=False)
    assert LOGS.value(logs_acc)[0] == math.fsum(y)
    assert Grid(10, 3).exponents == (10, -22, -54, -86)


def test_a_local_dask_cluster_gives_the_same_bytes(
    tmp_path: Path, table: pa.Table, whole: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dask workers in this process (a second of start-up, not eight), and what a cluster of
    processes would be sent pickled and unpickled by hand."""
    distributed = pytest.importorskip("distributed")
    parts = write_parts(tmp_path / "parts", table, [3000, 6000], row_group=1000)
    monkeypatch.setattr(logs.stream, "ITEM_ROWS", 2000)  # five items for two workers
    log = logs.open_log(parts)
    job = StreamJob(log, SummarySpec.of(role_fields(log), 0, 3600.0), drop_invalid=False)
    for item in log.items[:2]:
        sent = summarize_item(pickle.loads(pickle.dumps(job)), pickle.loads(pickle.dumps(item)))
        here = summarize_item(job, item)
        assert {k: c.n for k, c in sent.summary.classes.items()} == {
            k: c.n for k, c in here.summary.classes.items()
        }
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        on_cluster = Parallel.from_options(None, cluster.scheduler_address)
        got = fit_source(parts, parallel=on_cluster).model
    expected = json.loads(whole[1])
    expected.pop("source")
    assert model_json(got) == expected
