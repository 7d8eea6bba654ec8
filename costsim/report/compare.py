"""The renderers of `costsim compare` (issue 10; DESIGN section 5): JSON, rich and Markdown.

`compare.run_compare` computes every figure once; the functions here only turn a `Comparison`
into a dictionary, a table or text. `compare_to_dict` is the stable JSON contract
(``kind: costsim.simulate.compare``, ``schema_version: 1``).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from .. import __version__
from ..model.file import _clean
from ..scenario import format_duration
from ..simulate.compare import Comparison, OptionResult
from ..simulate.deployments import OptionStats
from .dashboard import _num, _pct, _print_table, _usd
from .forecast import _md, _md_table

KIND = "costsim.compare"
SCHEMA_VERSION = 1
DASH = "—"

_TITLE = "Cost of each option over the horizon, on the same random numbers"
_COLUMNS = [
    "option", "P5", "P50", "P95", "mean", "P(cheapest)", "expected regret", "regret P95",
    "flexibility",
]  # fmt: skip
_DROP = ("regret P95", "P5")
_SERVICE_TITLE = (
    "How each option serves it (shares of requests; replica-hours, cold starts a trial)"
)
_SERVICE_COLUMNS = [
    "option", "kind", "utilisation", "overflow", "throttled", "delayed", "replica-hours",
    "cold starts",
]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------------------------


def _option_to_dict(cmp: Comparison, i: int) -> dict[str, Any]:
    o, s, f = cmp.options[i], cmp.stats.options[i], cmp.flexibility
    return {
        "kind": o.kind,
        "quantiles": {"p5": s.p5, "p50": s.p50, "p95": s.p95, "mean": s.mean},
        "p_cheapest": s.p_cheapest,
        "p_cheapest_se": s.p_cheapest_se,
        "expected_regret": s.expected_regret,
        "regret_p95": s.regret_p95,
        "utilisation": o.utilisation,
        "overflow_share": o.overflow_share,
        "throttled_share": o.throttled_share,
        "delayed_share": o.delayed_share,
        "cold_starts": o.cold_starts,
        "replica_hours": o.replica_hours,
        "flexibility_value": float(f.value[i]),
        "flexibility_value_se": float(f.value_se[i]),
        "flexibility_clairvoyant": float(f.clairvoyant[i]),
        "switch": {
            "cost": o.switch_cost,
            "lead_time_s": o.lead_time_s,
            "share_switching": float(f.switch_share[i]),
            "to": {
                other: float(f.switch_to[i, j])
                for j, other in enumerate(cmp.names)
                if j != i and f.switch_to[i, j] > 0
            },
        },
    }


def compare_to_dict(cmp: Comparison) -> dict[str, Any]:
    """The stable JSON contract (keys in a fixed order; floats to 10 significant digits)."""
    out = {
        "kind": KIND,
        "schema_version": SCHEMA_VERSION,
        "costsim_version": __version__,
        "scenario": cmp.scenario_name,
        "scenario_hash": cmp.scenario_hash,
        "seed": cmp.seed,
        "trials": cmp.trials,
        "horizon_s": cmp.horizon_s,
        "resolution_s": cmp.resolution_s,
        "review_after_s": cmp.review_after_s,
        "currency": "USD",
        "classes": list(cmp.classes),
        "deployments": {name: _option_to_dict(cmp, i) for i, name in enumerate(cmp.names)},
        "notes": list(cmp.notes),
    }
    return dict(_clean(out))


# ---------------------------------------------------------------------------------------------
# Text shared by rich and Markdown
# ---------------------------------------------------------------------------------------------


def _share(v: float | None) -> str:
    return DASH if v is None else ("0%" if v == 0 else _pct(v))


def _cells(cmp: Comparison, i: int) -> list[str]:
    s: OptionStats = cmp.stats.options[i]
    return [
        cmp.names[i], _usd(s.p5), _usd(s.p50), _usd(s.p95), _usd(s.mean),
        _pct(s.p_cheapest, 0 if s.p_cheapest in (0.0, 1.0) else 1), _usd(s.expected_regret),
        _usd(s.regret_p95), _usd(float(cmp.flexibility.value[i])),
    ]  # fmt: skip


def _service_cells(o: OptionResult) -> list[str]:
    return [
        o.name, o.kind, _share(o.utilisation), _share(o.overflow_share),
        _share(o.throttled_share), _share(o.delayed_share), _num(o.replica_hours),
        _num(o.cold_starts),
    ]  # fmt: skip


def _context(cmp: Comparison) -> str:
    return (
        f"{cmp.scenario_name}: {len(cmp.options)} way{'s' if len(cmp.options) != 1 else ''} to "
        f"serve {format_duration(cmp.horizon_s)}"
        f" of traffic at {format_duration(cmp.resolution_s)} resolution ({cmp.trials:,} trials, "
        f"seed {cmp.seed}; every option on the same random numbers)"
    )


def _reading(cmp: Comparison) -> list[str]:
    """How to read the table, with this comparison's figures."""
    best = max(range(len(cmp.options)), key=lambda i: cmp.stats.options[i].p_cheapest)
    s = cmp.stats.options[best]
    lines = [
        f"P(cheapest): the share of trials in which an option costs least; {cmp.names[best]} "
        f"is cheapest in {_pct(s.p_cheapest, 0)} of them",
        "expected regret: what an option costs on average above the trial's cheapest option "
        "(0 for an option that is always cheapest); regret P95: in a bad month",
        f"flexibility: what starting in an option but deciding after "
        f"{format_duration(cmp.review_after_s)} (paying its switch cost and lead time to leave) "
        "saves on average over committing to it now",
    ]
    return lines


def _switch_lines(cmp: Comparison) -> list[str]:
    f = cmp.flexibility
    lines = []
    for i, o in enumerate(cmp.options):
        if f.value[i] <= 0:
            continue
        moves = ", ".join(
            f"{_pct(float(f.switch_to[i, j]), 0)} to {other}"
            for j, other in enumerate(cmp.names)
            if j != i and f.switch_to[i, j] > 0
        )
        lines.append(
            f"Starting in {o.name} (switch cost {_usd(o.switch_cost)}, lead time "
            f"{format_duration(o.lead_time_s)}): keeping the choice open saves "
            f"{_usd(float(f.value[i]))} ± {_usd(float(f.value_se[i]))} (a clairvoyant choice: "
            f"{_usd(float(f.clairvoyant[i]))}); at the review, trials switch {moves or 'never'}"
        )
    return lines


def _sentence(text: str) -> str:
    """Capitalised, with a full stop (lines that begin with an option's name begin with a word
    before it, so that the name keeps its case)."""
    return text[:1].upper() + text[1:] + "."


# ---------------------------------------------------------------------------------------------
# Rich
# ---------------------------------------------------------------------------------------------


def render_compare(cmp: Comparison, console: Console) -> None:
    """Print the comparison: context, one row per option, how to read it, switches, notes."""
    console.print(f"[bold]{escape(_context(cmp))}[/]", soft_wrap=True)
    best = max(s.p_cheapest for s in cmp.stats.options)
    rows: list[list[str | Text]] = []
    for i, s in enumerate(cmp.stats.options):
        cells: list[str | Text] = [*_cells(cmp, i)]
        if s.p_cheapest == best:
            cells[0] = Text(str(cells[0]), style="bold green")
        rows.append(cells)
    _print_table(console, _TITLE, _COLUMNS, rows, drop=_DROP)
    service: list[list[str | Text]] = [[*_service_cells(o)] for o in cmp.options]
    _print_table(console, _SERVICE_TITLE, _SERVICE_COLUMNS, service)
    for line in [*_reading(cmp), *_switch_lines(cmp)]:
        console.print(Text(_sentence(line)), soft_wrap=True)
    for note in cmp.notes:
        console.print(Text(f"note: {note}", style="dim"), soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def compare_to_markdown(cmp: Comparison) -> str:
    """GitHub-flavoured Markdown with the same content as the rich report."""
    out = [
        f"### costsim compare: {_md(cmp.scenario_name)}",
        "",
        _md(_context(cmp)) + ".",
        "",
        f"**{_TITLE}**",
        "",
        *_md_table(_COLUMNS, [_cells(cmp, i) for i in range(len(cmp.options))]),
        "",
        f"**{_SERVICE_TITLE}**",
        "",
        *_md_table(_SERVICE_COLUMNS, [_service_cells(o) for o in cmp.options]),
        "",
        *(f"- {_md(_sentence(line))}" for line in [*_reading(cmp), *_switch_lines(cmp)]),
    ]
    if cmp.notes:
        out += ["", "Notes:", "", *(f"- {_md(note)}" for note in cmp.notes)]
    return "\n".join(out) + "\n"
