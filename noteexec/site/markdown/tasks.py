"""Obsidian's other task statuses (``[/]``, ``[-]``, ``[?]``, …; the tasklists plugin knows only
``[ ]`` and ``[x]``): a ticked checkbox with ``data-task``, as themes expect."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererProtocol
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

TASK_CHECKBOXES = frozenset(
    {  # what the tasklists plugin writes; a note's own <input> is dropped like any other
        '<input class="task-list-item-checkbox" disabled="disabled" type="checkbox">',
        '<input class="task-list-item-checkbox" checked="checked" disabled="disabled" type="checkbox">',
    }
)
_TASK_STATUS = re.compile(r"\[([^\s\]xX])\] ")


def _task_statuses(state: StateCore) -> None:
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type != "inline" or index < 2 or tokens[index - 2].type != "list_item_open":
            continue
        first = token.children[0] if token.children else None
        match = _TASK_STATUS.match(first.content) if first is not None and first.type == "text" else None
        if token.children is None or first is None or match is None:
            continue
        first.content = first.content[match.end() :]
        checkbox = Token("task_checkbox", "input", 0)
        checkbox.meta = {"task": match[1]}
        token.children.insert(0, checkbox)
        item = tokens[index - 2]
        item.attrSet("class", "task-list-item is-checked")
        item.attrSet("data-task", match[1])
        opening = next(
            (t for t in reversed(tokens[: index - 2]) if t.nesting == 1 and t.level == item.level - 1), None
        )
        if opening is not None:
            opening.attrSet("class", "contains-task-list")


def _render_task_checkbox(
    self: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    task = escape(tokens[idx].meta["task"])
    return f'<input class="task-list-item-checkbox" type="checkbox" disabled checked data-task="{task}"> '


def tasks_plugin(md: MarkdownIt) -> None:
    """Other statuses; the last core rule, after the tasklists plugin has had ``[ ]`` and ``[x]``."""
    md.core.ruler.push("task_statuses", _task_statuses)
    md.add_render_rule("task_checkbox", _render_task_checkbox)
