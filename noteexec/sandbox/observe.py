"""The torch observer: what autograd did while a block ran, as facts.

Runs only in a note's process (see :mod:`noteexec.sandbox.execute`). It wraps
``torch.autograd.backward`` and ``torch.autograd.grad`` to record the distinct graphs they walk,
and compares the tensors a note can name before and after a block to see which gradients the
block produced and which leaves it left without one. It never decides whether that is right.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import TypedDict

import torch
from torch.autograd.graph import Node

from noteexec.sandbox.protocol import GradientFacts, GraphFacts, GraphNode

_ROOT_NAME = re.compile(r"[.\[]")
"""What a name's root variable ends at (``x.grad``, ``xs[0]``): compiled once, in the worker,
not in every note's process."""

GRAPH_NODE_CAP = 64
GRAPH_CAP = 8
"""Distinct graphs kept per block: a training loop walks one graph per step, the same each time."""
_WALK_DEPTH = 3
_CONTAINER_CAP = 1000
GRADIENTS_CAP = 2000
"""Gradients, and leaves without one, reported per block (a model has a few hundred tensors)."""

Tensors = dict[int, tuple[str, torch.Tensor]]
"""Tensors a note can name, by ``id``: the name to report and the tensor."""
GradientState = dict[int, tuple[torch.Tensor, int]]
"""A tensor's gradient and that gradient's version, by the tensor's ``id``."""


class _WalkedNode(TypedDict):
    id: str
    label: str
    variable: int | None
    """``id`` of the leaf tensor an ``AccumulateGrad`` node accumulates into, named later."""


class _WalkedGraph(TypedDict):
    nodes: list[_WalkedNode]
    edges: list[tuple[str, str]]
    truncated: bool


class AutogradFacts(TypedDict):
    """The autograd part of a block's facts (see ``protocol.RanBlock``)."""

    gradients: list[GradientFacts]
    leaves_without_grad: list[str]
    backward_calls: int
    graphs: list[GraphFacts]


class Autograd:
    """Wraps ``torch.autograd.backward``/``grad`` to see the distinct graphs they walk and their results."""

    def __init__(self) -> None:
        self.graphs: list[_WalkedGraph] = []
        self.grad_results: list[torch.Tensor] = []
        self.calls = 0
        self._backward = torch.autograd.backward
        self._grad = torch.autograd.grad

    def install(self) -> None:
        # A note's own arguments, passed through as they are: torch checks them.
        original_backward: Callable[..., object] = self._backward
        original_grad: Callable[..., object] = self._grad

        def backward(tensors: object, *args: object, **kwargs: object) -> object:
            self._record(tensors)
            return original_backward(tensors, *args, **kwargs)

        def grad(outputs: object, *args: object, **kwargs: object) -> object:
            self._record(outputs)
            result = original_grad(outputs, *args, **kwargs)
            if isinstance(result, tuple | list):  # a dict of inputs gives a dict: not recorded
                self.grad_results.extend(g for g in result if isinstance(g, torch.Tensor))
            return result

        torch.autograd.backward = backward  # type: ignore[assignment]
        torch.autograd.grad = grad  # type: ignore[assignment]

    def reset(self) -> None:
        self.graphs, self.grad_results, self.calls = [], [], 0

    def _record(self, roots: object) -> None:
        self.calls += 1
        try:
            tensors: Iterable[object] = [roots] if isinstance(roots, torch.Tensor) else roots  # type: ignore[assignment]
            functions = [t.grad_fn for t in tensors if isinstance(t, torch.Tensor) and t.grad_fn]
            if functions and len(self.graphs) < GRAPH_CAP:
                graph = _walk_graph(functions)
                if graph not in self.graphs:
                    self.graphs.append(graph)
        except Exception:
            pass


def _walk_graph(roots: list[Node]) -> _WalkedGraph:
    """Nodes and edges of the backward graph, from the outputs down to the leaves."""
    ids: dict[int, str] = {}
    nodes: list[_WalkedNode] = []
    edges: list[tuple[str, Node]] = []
    pending = list(roots)
    while pending and len(nodes) < GRAPH_NODE_CAP:
        function = pending.pop(0)
        if id(function) in ids:
            continue
        node_id = f"n{len(nodes)}"
        ids[id(function)] = node_id
        variable = getattr(function, "variable", None)
        nodes.append(
            {
                "id": node_id,
                "label": function.name().rsplit("::", 1)[-1],
                "variable": id(variable) if variable is not None else None,
            }
        )
        for child, _ in getattr(function, "next_functions", ()):
            if child is not None:
                pending.append(child)
                edges.append((node_id, child))
    resolved = [(a, ids[id(b)]) for a, b in edges if id(b) in ids]
    return {"nodes": nodes, "edges": resolved, "truncated": bool(pending)}


def reachable_tensors(namespace: dict[str, object]) -> Tensors:
    """Tensors a note can name: top-level values, containers, module and optimizer parameters."""
    found: Tensors = {}

    def visit(name: str, value: object, depth: int) -> None:
        if isinstance(value, torch.Tensor):
            found.setdefault(id(value), (name, value))
        elif depth >= _WALK_DEPTH:
            return
        elif isinstance(value, torch.nn.Module):
            for parameter_name, parameter in value.named_parameters():
                visit(f"{name}.{parameter_name}", parameter, depth + 1)
        elif isinstance(value, torch.optim.Optimizer):
            for group_index, group in enumerate(value.param_groups):
                for index, parameter in enumerate(group["params"]):
                    visit(f"{name}.param_groups[{group_index}][{index}]", parameter, depth + 1)
        elif isinstance(value, list | tuple) and len(value) <= _CONTAINER_CAP:
            for index, item in enumerate(value):
                visit(f"{name}[{index}]", item, depth + 1)
        elif isinstance(value, dict) and len(value) <= _CONTAINER_CAP:
            for key, item in value.items():
                visit(f"{name}[{key!r}]", item, depth + 1)

    for name, value in list(namespace.items()):
        if not name.startswith("__"):
            visit(name, value, 0)
    return found


def gradient_state(tensors: Tensors) -> GradientState:
    state = {}
    for key, (_, tensor) in tensors.items():
        grad = tensor.grad if tensor.is_leaf or tensor.retains_grad else None
        if grad is not None:
            state[key] = (grad, grad._version)
    return state


def _tensor_summary(name: str, tensor: torch.Tensor) -> GradientFacts:
    detached = tensor.detach()
    finite = (
        bool(torch.isfinite(detached).all())
        if detached.is_floating_point() or detached.is_complex()
        else True
    )
    flat: list[object] = detached.reshape(-1)[:6].tolist()
    preview = ", ".join(_format_number(value) for value in flat)
    if detached.numel() > 6:
        preview += ", …"
    return {
        "name": name,
        "shape": list(detached.shape),
        "dtype": str(detached.dtype).removeprefix("torch."),
        "finite": finite,
        "preview": f"[{preview}]",
    }


def _format_number(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def gradient_facts(
    before: Tensors,
    after: Tensors,
    grads_before: GradientState,
    autograd: Autograd,
    used: set[str],
) -> AutogradFacts:
    """Gradients the block produced; leaves that got none among the variables it names (a
    tensor an earlier block left without a gradient is not this block's doing)."""
    produced = []
    names = {key: name for key, (name, _) in {**before, **after}.items()}
    for key, (grad, version) in gradient_state(after).items():
        previous = grads_before.get(key)
        if previous is None or previous[0] is not grad or previous[1] != version:
            produced.append(_tensor_summary(f"{names[key]}.grad", grad))
    for index, result in enumerate(autograd.grad_results):
        produced.append(_tensor_summary(f"torch.autograd.grad(...)[{index}]", result))
    without = []
    if not autograd.grad_results:
        without = [
            name
            for name, tensor in after.values()
            if tensor.is_leaf
            and tensor.requires_grad
            and tensor.grad is None
            and _ROOT_NAME.split(name, maxsplit=1)[0] in used
        ]
    return {
        "gradients": produced[:GRADIENTS_CAP],
        "leaves_without_grad": sorted(set(without))[:GRADIENTS_CAP],
        "backward_calls": autograd.calls,
        "graphs": [_named(graph, names) for graph in autograd.graphs],
    }


def _named(graph: _WalkedGraph, names: dict[int, str]) -> GraphFacts:
    """A walked graph as facts: a leaf's label names its variable, e.g. ``AccumulateGrad (w)``."""
    nodes: list[GraphNode] = []
    for node in graph["nodes"]:
        variable, label = node["variable"], node["label"]
        if variable is not None and variable in names:
            label += f" ({names[variable]})"
        nodes.append({"id": node["id"], "label": label})
    return {"nodes": nodes, "edges": graph["edges"], "truncated": graph["truncated"]}
