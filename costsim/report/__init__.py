"""The report stage (STYLE: "renderers are only renderers"): results in, text and pictures out.

`forecast`, `check`, `compare` and `backtest` turn each command's result into the terminal
report, JSON, Markdown and the other file formats; `dashboard` is the fit's per-class table;
`diagnostics` computes, once, the numbers the pictures show, and `html` draws them into one
self-contained HTML report.
"""
