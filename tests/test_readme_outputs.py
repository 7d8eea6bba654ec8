"""README.md shows what the commands print: every marked output block is regenerated and compared.

Regenerate with `.venv/bin/python tests/readme_outputs.py` (see its docstring for the markers).
"""

from __future__ import annotations

import pytest
from readme_outputs import README, Block, ReadmeError, apply, diff, drifted, parse, same


def test_readme_outputs_are_current() -> None:
    changes = drifted(README.read_text(encoding="utf-8"))
    if changes:
        listing = "\n".join(f"  README.md:{b.line}: {b.label}" for b, _ in changes)
        pytest.fail(
            f"{len(changes)} README output block(s) drifted from what the commands print:\n"
            f"{listing}\nregenerate with `.venv/bin/python tests/readme_outputs.py`; "
            f"the first:\n{diff(*changes[0])}",
            pytrace=False,
        )


def test_every_text_block_but_the_source_tree_is_generated() -> None:
    # ```text blocks show what costsim prints; the one exception is the source-tree listing
    text = README.read_text(encoding="utf-8")
    marked = {b.start for b in parse(text) if isinstance(b, Block)}
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "```text" and lines[i + 1] != "costsim/":
            assert i + 1 in marked, f"README.md:{i + 1}: an output block without a marker"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("P95 $161,019 is 2.19x", "P95 $161,019 is 2.19x", True),
        ("cap of 1,162,580", "cap of 1,162,581", True),  # within 1e-6
        ("P95 $161,019 is 2.19x", "P95 $161,020 is 2.19x", False),  # a printed digit moved
        ("unseen tail -$11", "unseen tail +$11", False),
        ("30.2% of the cost", "30.3% of the cost", False),
        ("P50 $98,006", "P50 $98,006 (new)", False),
        ("light    0.0%", "heavy    0.0%", False),
    ],
)
def test_numbers_compare_with_a_relative_tolerance(old: str, new: str, expected: bool) -> None:
    assert same(old, new) is expected


MINI = """intro
<!-- run: costsim forecast a.yaml --json base.json -q -->
<!-- output: costsim fit bad.csv (stderr, exit 2, prompt) -->
<!-- output: costsim forecast bad.yaml (stderr, exit 2, prompt) -->
```text
old
```
<!-- output: costsim schema -->
```text
{}
```
end"""


def test_markers_parse_and_blocks_are_replaced_in_place() -> None:
    steps = parse(MINI)
    assert [type(s).__name__ for s in steps] == ["Run", "Block", "Block"]
    block, schema = steps[1], steps[2]
    assert isinstance(block, Block) and isinstance(schema, Block)
    assert [(s.command, s.stream, s.exit_code, s.prompt) for s in block.shown] == [
        ("costsim fit bad.csv", "stderr", 2, True),
        ("costsim forecast bad.yaml", "stderr", 2, True),
    ]
    assert schema.shown[0].stream == "stdout" and schema.shown[0].exit_code == 0
    out = apply(MINI, [(block, "new\nlines"), (schema, '{"a": 1}')])
    assert out.split("\n")[5:11] == ["new", "lines", "```", "<!-- output: costsim schema -->",
                                     "```text", '{"a": 1}']  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "<!-- output: costsim fit x.csv -->\nno block here\n",
        "<!-- output: costsim fit x.csv (loud) -->\n```text\n```\n",
        "<!-- output: costsim fit x.csv -->\n```text\nunclosed\n",
        "<!-- output costsim fit x.csv -->\n",
    ],
)
def test_bad_markers_are_refused(text: str) -> None:
    with pytest.raises(ReadmeError):
        parse(text)
