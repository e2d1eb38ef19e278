"""What happened when a note ran: plain frozen data, built from the sandbox's JSON.

The JSON shapes are :mod:`noteexec.sandbox.protocol`'s (a worker's result; the cache stores
the same without its id). They are imported for type checking only: reading facts (a renderer
does) never loads the sandbox package, its subprocesses and threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: reading facts (renderers do) never loads the sandbox package
    from noteexec.sandbox.protocol import (
        BlockFactsJSON,
        BlockState,
        ExceptionFacts,
        Isolation,
        NoteFactsJSON,
        RaisedFacts,
    )


@dataclass(frozen=True)
class Raised:
    """An exception or a warning, with every class name it answers to."""

    type: str
    names: tuple[str, ...]
    message: str
    line: int | None
    top_line: int | None = None
    """For an exception: the line of the running block's top-level code (where it called the
    helper that raised; ``line`` itself when the block's own code raised)."""

    def describe(self) -> str:
        text = f"{self.type}: {self.message}" if self.message else self.type
        return f"{text} at line {self.line}" if self.line is not None else text

    @classmethod
    def from_json(cls, data: RaisedFacts) -> Raised:
        """An exception, or a warning (``category`` from the worker, ``type`` in the cache)."""
        return cls(
            type=data["type"] if "type" in data else data["category"],
            names=tuple(data["names"]),
            message=data["message"],
            line=data["line"],
            top_line=data.get("top_line") if "type" in data else None,
        )


@dataclass(frozen=True)
class Gradient:
    name: str
    shape: tuple[int, ...]
    dtype: str
    finite: bool
    preview: str


@dataclass(frozen=True)
class Graph:
    """A backward graph as recorded when ``backward``/``autograd.grad`` started from it."""

    nodes: tuple[tuple[str, str], ...]
    """(id, label) pairs; a leaf's label names its variable, e.g. ``AccumulateGrad (w)``."""
    edges: tuple[tuple[str, str], ...]
    truncated: bool = False


@dataclass(frozen=True)
class BlockFacts:
    state: BlockState
    reason: str | None = None
    exception: Raised | None = None
    warnings: tuple[Raised, ...] = ()
    stdout: str = ""
    stdout_by_line: tuple[tuple[int | None, str], ...] = ()
    stderr: str = ""
    truncated: bool = False
    duration: float = 0.0
    gradients: tuple[Gradient, ...] = ()
    leaves_without_grad: tuple[str, ...] = ()
    backward_calls: int = 0
    graphs: tuple[Graph, ...] = ()

    @classmethod
    def from_json(cls, data: BlockFactsJSON) -> BlockFacts:
        exception = data.get("exception")
        return cls(
            state=data["state"],
            reason=data.get("reason"),
            exception=Raised.from_json(exception) if exception else None,
            warnings=tuple(Raised.from_json(item) for item in data.get("warnings", ())),
            stdout=data.get("stdout", ""),
            stdout_by_line=tuple((line, text) for line, text in data.get("stdout_by_line", ())),
            stderr=data.get("stderr", ""),
            truncated=bool(data.get("truncated", False)),
            duration=float(data.get("duration", 0.0)),
            gradients=tuple(
                Gradient(
                    name=item["name"],
                    shape=tuple(item["shape"]),
                    dtype=item["dtype"],
                    finite=item["finite"],
                    preview=item["preview"],
                )
                for item in data.get("gradients", ())
            ),
            leaves_without_grad=tuple(data.get("leaves_without_grad", ())),
            backward_calls=int(data.get("backward_calls", 0)),
            graphs=tuple(
                Graph(
                    nodes=tuple([(node["id"], node["label"]) for node in graph["nodes"]]),
                    edges=tuple([(a, b) for a, b in graph["edges"]]),
                    truncated=bool(graph.get("truncated", False)),
                )
                for graph in data.get("graphs", ())
            ),
        )


@dataclass(frozen=True)
class SetupFailure:
    line: int | None
    exception: Raised

    def describe(self) -> str:
        where = f"hidden setup at line {self.line}" if self.line is not None else "the prelude"
        return f"{where} raised {self.exception.describe()}"


@dataclass(frozen=True)
class NoteFacts:
    blocks: tuple[BlockFacts, ...]
    setup_failure: SetupFailure | None = None
    ended: str | None = None
    """How the note process ended when it did not finish normally."""
    isolation: Isolation = field(default_factory=lambda: _no_isolation(), hash=False, compare=False)
    """Empty for a note the sandbox lost."""
    vault_changes: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: NoteFactsJSON) -> NoteFacts:
        setup = data.get("setup_failed")
        return cls(
            blocks=tuple(BlockFacts.from_json(item) for item in data.get("blocks", ())),
            setup_failure=SetupFailure(setup["line"], Raised.from_json(setup["exception"]))
            if setup
            else None,
            ended=data.get("ended"),
            isolation=data.get("isolation", _no_isolation()).copy(),
            vault_changes=tuple(data.get("vault_changes", ())),
        )

    def to_json(self) -> NoteFactsJSON:
        """The worker's JSON shape again (the inverse of :meth:`from_json`), for the cache."""
        return {
            "blocks": [_block_json(block) for block in self.blocks],
            "setup_failed": {
                "line": self.setup_failure.line,
                "exception": _raised_json(self.setup_failure.exception),
            }
            if self.setup_failure
            else None,
            "ended": self.ended,
            "isolation": self.isolation,
            "vault_changes": list(self.vault_changes),
        }

    @classmethod
    def lost(cls, block_count: int, reason: str) -> NoteFacts:
        """Facts for a note whose run never reported back (the sandbox itself failed)."""
        return cls(
            blocks=tuple(BlockFacts(state="not_run", reason=reason) for _ in range(block_count)),
            ended=reason,
        )


def _no_isolation() -> Isolation:
    return {}


def _raised_json(raised: Raised) -> ExceptionFacts:
    return {
        "type": raised.type,
        "names": list(raised.names),
        "message": raised.message,
        "line": raised.line,
        "top_line": raised.top_line,
    }


def _block_json(block: BlockFacts) -> BlockFactsJSON:
    return {
        "state": block.state,
        "reason": block.reason,
        "exception": _raised_json(block.exception) if block.exception else None,
        "warnings": [_raised_json(warning) for warning in block.warnings],
        "stdout": block.stdout,
        "stdout_by_line": list(block.stdout_by_line),
        "stderr": block.stderr,
        "truncated": block.truncated,
        "duration": block.duration,
        "gradients": [
            {
                "name": gradient.name,
                "shape": list(gradient.shape),
                "dtype": gradient.dtype,
                "finite": gradient.finite,
                "preview": gradient.preview,
            }
            for gradient in block.gradients
        ],
        "leaves_without_grad": list(block.leaves_without_grad),
        "backward_calls": block.backward_calls,
        "graphs": [
            {
                "nodes": [{"id": node_id, "label": label} for node_id, label in graph.nodes],
                "edges": list(graph.edges),
                "truncated": graph.truncated,
            }
            for graph in block.graphs
        ],
    }
