"""Reading a scenario: the YAML file, the document validated into a `Scenario`, and the class
names it uses checked against a fitted model."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from ..errors import ScenarioError
from ..formats import Problem, show, suggest, validated
from .common import _iso
from .format import Scenario, ScenarioDoc


def _error(path: Path | str | None, message: str) -> ScenarioError:
    text = f"{path}: {message}" if path is not None else message
    return ScenarioError(re.sub(r"[\r\n]+", " ", text))  # always one line


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing duplicate keys (which YAML would silently overwrite)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, Any]] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:  # with the tag: 1 and true are different keys though 1 == True
                duplicate = (key_node.tag, key) in seen
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add((key_node.tag, key))
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """A date or date-time; an impossible one (2026-02-30), or one PyYAML resolves as a
        timestamp but cannot build (a zone offset with seconds), stays a string, so that the
        key it is under reports it rather than the YAML reader failing."""
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError, AttributeError):
            return self.construct_scalar(node)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        """An integer; one of more digits than Python converts stays a string."""
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _yaml_problem(path: str | Path, exc: yaml.YAMLError) -> ScenarioError:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
        ctx, ctx_mark = exc.context, exc.context_mark
        if ctx and ctx_mark is not None and ctx_mark.line != mark.line:
            message += f" ({ctx} at line {ctx_mark.line + 1}, column {ctx_mark.column + 1})"
        return _error(path, message)
    return _error(path, f"invalid YAML: {exc}")


def read_yaml(path: str | Path, what: str = "scenario") -> Any:
    """Read a YAML file safely (duplicate keys refused); errors name the file, line and column."""
    p = Path(path)
    if p.is_dir():
        raise _error(path, f"is a directory, expected a {what} file (YAML)")
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{what} file not found: {path}") from None
    except UnicodeDecodeError:
        raise _error(path, f"cannot read the {what} file: not UTF-8 text") from None
    except OSError as exc:
        raise _error(path, f"cannot read the {what} file ({exc.strerror or exc})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        raise _yaml_problem(path, exc) from None
    except RecursionError:
        raise _error(path, f"invalid YAML: the {what} is nested too deeply") from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file. Raises `ScenarioError` listing every problem."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq", ".csv", ".gz", ".jsonl"):  # YAML reads JSON
        raise _error(
            path,
            "a pilot log or export, not a scenario (YAML); a scenario names its model "
            "(`model:`) or pilot (`pilot:`): `costsim init MODEL` writes one to start from",
        )
    doc = read_yaml(p)
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if isinstance(kind, str) and kind.startswith("costsim."):  # `kind` is no scenario key
        start = (
            f": a scenario names it (`model: {p.name}`); `costsim init {path}` writes one"
            if kind == "costsim.model"
            else "; `costsim init MODEL` writes one to start from"
        )
        raise _error(path, f"a {kind} document, not a scenario (YAML){start}")
    return parse_scenario(doc, p, p.parent)


def _plain(obj: Any) -> Any:
    """The YAML document with dates as ISO strings, so that it serialises as JSON."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, (datetime, date)):
        return _iso(obj)
    return obj


def parse_scenario(data: Any, path: Path | None = None, base_dir: Path | None = None) -> Scenario:
    """Validate an already-parsed YAML document. Raises `ScenarioError` naming every problem
    by its key path.

    ``path`` (the scenario file) prefixes messages; ``model:`` and ``pilot:`` are resolved
    relative to ``base_dir`` (default: the file's folder), without checking that they exist.
    """
    path = Path(path) if path is not None else None
    if base_dir is None and path is not None:
        base_dir = path.parent
    if data is None:
        raise _error(path, "the scenario is empty; expected a mapping with model, horizon, volume")
    if not isinstance(data, dict):
        raise _error(
            path,
            "expected a mapping of scenario keys (model, horizon, volume, ...) at the top level, "
            f"got {show(data)}",
        )
    doc = validated(ScenarioDoc, data, ScenarioError, str(path) if path is not None else None)

    def resolve(text: str | None) -> Path | None:
        if text is None:
            return None
        p = Path(text).expanduser()
        return p if p.is_absolute() or base_dir is None else base_dir / p

    fields = {f.name: getattr(doc, f.name) for f in dataclasses.fields(doc)}
    return Scenario(
        **fields,
        path=path,
        model_path=resolve(doc.model),
        pilot_path=resolve(doc.pilot),
        raw=_plain(data),
    )


def validate_against_model(scenario: Scenario, classes: tuple[str, ...]) -> None:
    """Check class names used by the scenario against the model's classes (ScenarioError).

    Classes named in ``mix``, the spikes' and events' ``classes``, ``pricing.classes`` and in
    the deployments (``route.classes``, ``throughput.classes``, ``batch.classes``, their
    ``pricing.classes``) must be model classes or declared new classes;
    ``new_classes.*.like`` must be a model class and a new class must not take a model class's
    name. Model classes missing from an absolute mix get a share of 0.
    """
    model = tuple(classes)
    known = set(model)
    new = tuple(n for n in scenario.new_classes if n not in known)
    problems: list[Problem] = []

    def listing(with_new: bool) -> str:
        text = f"model classes: {', '.join(model)}"
        return text + (f" (new classes: {', '.join(new)})" if with_new and new else "")

    def check(where: str, name: str, *, keyed: bool, with_new: bool = True) -> None:
        pool = model + (new if with_new else ())
        if name in pool:
            return
        what = "class not in the model" if keyed else f"class '{name}' not in the model"
        guess = suggest(name, pool)
        hint = f"; did you mean '{guess}'? " if guess else "; "
        problems.append((where, f"{what}{hint}{listing(with_new)}"))

    def check_all(where: str, names: tuple[str, ...] | None) -> None:
        for i, name in enumerate(names or ()):
            check(f"{where}[{i}]", name, keyed=False)

    for name, spec in scenario.new_classes.items():
        where = f"new_classes.{name}"
        if name in known:
            problems.append((
                where,
                "already a class of the model (pick another name, or change its share in mix)",
            ))  # fmt: skip
        check(f"{where}.like", spec.like, keyed=False, with_new=False)
    for name in scenario.shares or {}:
        check(f"mix.{name}", name, keyed=True)
    check_all("traffic.spikes.classes", scenario.traffic.spikes.classes)
    for k, event in enumerate(scenario.traffic.events):
        check_all(f"traffic.events[{k}].classes", event.classes)
    for name in scenario.pricing.classes if scenario.pricing is not None else {}:
        check(f"pricing.classes.{name}", name, keyed=True)
    for option_name, option in scenario.deployments.items():
        where = f"deployments.{option_name}"
        if option.kind == "api":
            for name in option.pricing.classes if option.pricing is not None else {}:
                check(f"{where}.pricing.classes.{name}", name, keyed=True)
            if option.batch is not None:
                check_all(f"{where}.batch.classes", option.batch.classes)
        else:
            for name in option.throughput.classes:
                check(f"{where}.throughput.classes.{name}", name, keyed=True)
    for name in scenario.route.classes if scenario.route is not None else {}:
        check(f"route.classes.{name}", name, keyed=True)
    if problems:
        text = "; ".join(f"{where}: {message}" for where, message in problems)
        raise _error(scenario.path, text)
