"""Reading and validating pilot logs (DESIGN sections 1 and 7).

One row per request, from a Parquet file, a directory / hive-partitioned Parquet dataset, or CSV,
on this machine or behind a URI pyarrow's filesystems know (``s3://``, ``gs://``, ``file://``).
Only the columns costsim needs are read. Every problem becomes a `LogSchemaError` whose message
is one line naming the file, the column and the rows concerned.

Every record batch (column projection) is converted to numpy and validated at once
(`Chunk`). `read_pilot` collects the batches into a `PilotLog` in memory (and refuses, in one
line, a log that would not fit); `open_log` plans a log for streaming instead: it is cut into
`ScanItem`s of whole Parquet row groups, each knowing the position of its first row from the
files' metadata, and an `ItemReader` gives an item's chunks, so that items can be read on any
worker (`costsim.model.summaries`). Row numbers in messages are 1-based positions in the whole log
(files of a directory in sorted path order, rows in file order), however it is read.

The stage's rooms, in the order data flows through them: `table` (the one internal table,
`PilotLog`, its columns and what each means), `locate` (the files of a path or URI), `plan`
(which columns, with which types; the scan), `convert` (one arrow array to numpy and its
problems), `collect` (a batch converted and validated; problems gathered into one line), then
`read` (a log whole, or a tool's export) and `stream` (a log in items, on any worker).
"""

from .collect import Chunk, Issues, empty_columns, invalid_rows
from .convert import Timestamps
from .locate import UriListing, is_table_name, is_uri, list_uri
from .read import export_table, read_export, read_pilot
from .stream import ITEM_ROWS, ItemReader, LogSource, ScanItem, open_log
from .table import MAX_VALUE, ColumnMap, DroppedRows, PilotLog

__all__ = [
    "ITEM_ROWS",
    "MAX_VALUE",
    "Chunk",
    "ColumnMap",
    "DroppedRows",
    "Issues",
    "ItemReader",
    "LogSource",
    "PilotLog",
    "ScanItem",
    "Timestamps",
    "UriListing",
    "empty_columns",
    "export_table",
    "invalid_rows",
    "is_table_name",
    "is_uri",
    "list_uri",
    "open_log",
    "read_export",
    "read_pilot",
]
