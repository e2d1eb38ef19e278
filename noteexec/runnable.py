"""Why a failed block may say nothing about the note: it cannot run here.

On real vaults most first-run failures are not mistakes: a snippet uses a name from another
note, a ``model = ...`` placeholder, a package or a GPU this machine lacks, or an earlier block
that failed. Telling those apart (pure: a block, its facts and the note's other blocks) lets a
report group them under "not runnable here" with what would make them run, instead of hiding
the real mistakes among them.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from noteexec.facts import Raised
from noteexec.model import CodeBlock

Reason = Literal["missing_module", "needs_cuda", "placeholder", "undefined_name", "depends_on_failed"]

_MISSING_MODULE = re.compile(r"No module named '([^']+)'")
_UNDEFINED_NAME = re.compile(r"name '([^']+)' is not defined")
_CUDA = re.compile(
    r"CUDA|cuda|NVIDIA driver|Torch not compiled with CUDA|no CUDA GPUs|\bMPS\b|mps backend",
)
_TEMPLATE = re.compile(
    r"<(?:your|path|the|my|insert|dataset|model|file)[^<>\n]{0,40}>|path/to/|YOUR_[A-Z_]+", re.I
)


@dataclass(frozen=True)
class NotRunnable:
    """A failed block that cannot run here, and what would make it run."""

    reason: Reason
    detail: str


def classify(
    block: CodeBlock,
    exception: Raised,
    earlier: Sequence[tuple[CodeBlock, bool]] = (),
    elsewhere: Mapping[str, str] | None = None,
) -> NotRunnable | None:
    """Whether ``block``, which raised ``exception``, failed because it cannot run here.

    ``earlier``: the note's blocks before it (hidden setup included), each with whether it
    failed. ``elsewhere``: for names defined in other notes of the vault, one such note's name.
    """
    names = set(exception.names) | {exception.type}
    if names & {"ModuleNotFoundError"} and (found := _MISSING_MODULE.search(exception.message)):
        package = found.group(1).split(".")[0]
        return NotRunnable("missing_module", f"install {package}")
    if _CUDA.search(exception.message) and names & {
        "RuntimeError",
        "AssertionError",
        "AttributeError",
        "TypeError",
    }:
        return NotRunnable("needs_cuda", "needs a GPU (CUDA) this machine does not have")
    placeholder = _placeholder(block.code)
    if placeholder is not None and _caused_by_placeholder(exception, placeholder):
        return NotRunnable("placeholder", f"placeholder code: {placeholder}")
    if "NameError" in names and (found := _UNDEFINED_NAME.search(exception.message)):
        name = found.group(1)
        for earlier_block, failed in reversed(earlier):
            if name in defined_names(earlier_block.code):
                if failed:
                    return NotRunnable(
                        "depends_on_failed", f"depends on the failed block at L{earlier_block.line}"
                    )
                return None  # defined by a block that ran: a real mistake (a typo, a del)
        if name in defined_names(block.code):
            return None  # used before it is defined in the same block: a real mistake
        where = (elsewhere or {}).get(name)
        detail = (
            f"'{name}' is defined in [[{where}]]" if where else f"'{name}' is defined nowhere in the note"
        )
        return NotRunnable("undefined_name", detail)
    return None


_GPU_OUTPUT = re.compile(r"device\s*=\s*'(?:cuda|mps)|device\(type\s*=\s*'(?:cuda|mps)'")


def output_from_a_gpu(diff: str | None) -> NotRunnable | None:
    """Whether an output mismatch only says the note was written on a GPU: the documented side
    shows a CUDA/MPS device (``device='cuda:0'``, ``device(type='cuda', index=0)``) that the run here
    never printed, so the values cannot be compared on this machine. ``diff``: documented → actual."""
    if not diff:
        return None
    lines = diff.splitlines()
    documented = "\n".join(line for line in lines if line.startswith("-") and not line.startswith("---"))
    actual = "\n".join(line for line in lines if line.startswith("+") and not line.startswith("+++"))
    if _GPU_OUTPUT.search(documented) and not _GPU_OUTPUT.search(actual):
        return NotRunnable(
            "needs_cuda", "its documented output was made on a GPU (CUDA) this machine does not have"
        )
    return None


def _caused_by_placeholder(exception: Raised, placeholder: str) -> bool:
    """The error is the placeholder's doing: it names an ``ellipsis`` object, the template's
    text, or a file or syntax the template cannot satisfy."""
    names = set(exception.names) | {exception.type}
    quoted = placeholder.strip("'\"")
    return (
        "ellipsis" in exception.message
        or (len(quoted) > 3 and quoted in exception.message)
        or bool(names & {"FileNotFoundError", "SyntaxError", "NotImplementedError"})
    )


def _placeholder(code: str) -> str | None:
    """A template the reader is meant to fill in: ``model = ...``, ``f(...)`` as an argument,
    ``'<your path>'``, ``path/to/``; a short quote of it, or ``None``."""
    if match := _TEMPLATE.search(code):
        return match.group(0)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.Call | ast.Return) and any(
            isinstance(child, ast.Constant) and child.value is Ellipsis
            for child in ast.iter_child_nodes(node)
        ):
            return ast.get_source_segment(code, node) or "..."
        if isinstance(node, ast.Call) and any(
            isinstance(argument, ast.Constant) and argument.value is Ellipsis for argument in node.args
        ):
            return ast.get_source_segment(code, node) or "..."
    return None


def defined_names(code: str) -> set[str]:
    """Names a block binds at any level (assignments, imports, defs, classes, loop targets):
    enough to know where a name could come from, not a full scope analysis."""
    tree = _parse_leniently(code)
    if tree is None:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _parse_leniently(code: str) -> ast.Module | None:
    """The block's code as the run reads it: a ``>>>`` transcript by its prompts, IPython's
    ``%magic``/``!shell`` lines left out. Without this, a name from an earlier transcript or from a
    block opening with ``%matplotlib inline`` seemed defined nowhere, or in another note."""
    try:
        return ast.parse(code)
    except SyntaxError:
        pass
    lines = code.split("\n")
    if any(line.lstrip().startswith(">>>") for line in lines):
        lines = [_PROMPT.sub("", line) if _PROMPT.match(line) else "" for line in lines]
    lines = ["" if _SHELL.match(line) else line for line in lines]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


_PROMPT = re.compile(r"^\s*(?:>>>|\.\.\.)(?: |$)")
_SHELL = re.compile(r"^\s*[%!]")


def vault_definitions(notes: Iterable[tuple[str, Iterable[CodeBlock]]]) -> dict[str, str]:
    """For each name some note of the vault defines, the first such note (by its name)."""
    found: dict[str, str] = {}
    for name, blocks in notes:
        for block in blocks:
            for defined in defined_names(block.code):
                found.setdefault(defined, name)
    return found
