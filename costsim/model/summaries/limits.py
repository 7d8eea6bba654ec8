"""The limits a summary keeps to (`costsim.model.summaries`): how many rows, values and
cells it holds, and how a log in memory is cut into work. The rooms of the package read
them here when they run (``limits.LOW_ROWS``), so that changing one (a test, a program
with other needs) changes it everywhere at once."""

from ..tail import K_MAX

SAMPLE_ROWS = 1 << 18  # rows per class kept for the body grid, KS and the copula (exact below)
SAMPLE_BUDGET = 1 << 22  # sampled rows over all classes: with many classes each keeps fewer
MIN_SAMPLE_ROWS = 1 << 12  # ... but never fewer than this
MAX_CLASSES = 2000  # classes a log may have (each keeps its buffers)
TOP_ROWS = K_MAX + 1  # largest values kept per class and quantity (the tail's candidates)
LOW_ROWS = 2048  # smallest positive unit costs kept per class (the drift's floor)
CONCENTRATION_TOP = 1 << 16  # largest costs of the log kept exactly
MAX_WINDOW_CELLS = 1 << 22  # (class, drift window) cells with requests, over all classes
#: rows of an in-memory log summarised at a time, and per work item
MEMORY_CHUNK_ROWS = 1 << 18
MEMORY_ITEM_ROWS = 1 << 20
