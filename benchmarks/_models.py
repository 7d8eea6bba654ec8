"""Models the benchmark scripts share (run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

from dataclasses import replace

from costsim.model.fit import FittedModel


def many_classes(model: FittedModel, n: int) -> FittedModel:
    """The model's classes repeated under new names until there are ``n``, each repeat taking
    its share of the original's traffic."""
    names = list(model.classes)
    copies = -(-n // len(names))
    classes = {}
    for i in range(n):
        cf = model.classes[names[i % len(names)]]
        name = f"{cf.name}_{i}"
        classes[name] = replace(
            cf,
            name=name,
            share=cf.share / copies,
            requests=max(cf.requests // copies, 1),
            cost_total=None if cf.cost_total is None else cf.cost_total / copies,
        )
    total = sum(c.share for c in classes.values())
    return replace(
        model, classes={k: replace(c, share=c.share / total) for k, c in classes.items()}
    )
