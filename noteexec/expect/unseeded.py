"""Random numbers drawn without a seed: what a block prints after one need not be the author's.

The sandbox seeds every block with 0, so only a seed the block itself sets before its draw
makes the author's printed numbers reproducible.
"""

from __future__ import annotations

import ast
import re

from noteexec.expect.documented import RandomDraw

_RANDOM_FLOATS = frozenset(
    {"randn", "rand", "randn_like", "rand_like", "normal", "normal_", "uniform_", "uniform", "gauss"}
    | {"empty", "empty_like", "empty_strided", "exponential_", "cauchy_", "log_normal_", "random"}
    | {"dropout", "Dropout", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"}
    | {"trunc_normal_", "orthogonal_", "Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "Embedding"}
    | {"ConvTranspose1d", "ConvTranspose2d", "RNN", "LSTM", "GRU", "MultiheadAttention"}
)
"""Calls whose results are random (or uninitialised) floating-point numbers."""
_RANDOM_INTEGERS = frozenset(
    {"randint", "randint_like", "randperm", "multinomial", "random_", "choice", "shuffle", "sample"}
)
_SEEDS = frozenset({"manual_seed", "seed", "manual_seed_all", "set_rng_state"})
_MENTIONED = re.compile("|".join(sorted(_RANDOM_FLOATS | _RANDOM_INTEGERS)))
"""A block whose text names no random call draws nothing: its tree is not walked."""


def merge_draws(before: RandomDraw | None, now: RandomDraw | None) -> RandomDraw | None:
    """The latest draw is named (most likely what a block prints); integers once drawn stay."""
    if before is None or now is None:
        return before or now
    return RandomDraw(now.where, before.integers or now.integers)


def unseeded_draw(code: str, tree: ast.Module | None, fence_line: int) -> RandomDraw | None:
    """The first random draw of a block (``code``, parsed as ``tree``) that no seed earlier in
    the same block fixes (the sandbox seeds every block with 0, so a seed from another block is
    not the author's)."""
    if tree is None or not _MENTIONED.search(code):
        return None
    seeded_at = None
    draws: list[tuple[int, int, str, bool]] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
        position = (node.lineno, node.col_offset)
        if name in _SEEDS:
            seeded_at = min(seeded_at or position, position)
        elif name in _RANDOM_FLOATS or name in _RANDOM_INTEGERS:
            draws.append((*position, ast.unparse(function), name in _RANDOM_INTEGERS))
    unseeded = sorted(draw for draw in draws if seeded_at is None or draw[:2] < seeded_at)
    if not unseeded:
        return None
    line, _, name, _ = unseeded[0]
    return RandomDraw(f"{name} at line {fence_line + line}", any(draw[3] for draw in unseeded))
