"""Runs one note's code inside the sandboxed note process and streams facts about each block.

This module runs only in a note's process (see :mod:`noteexec.sandbox.tree`). It reports what
happened (exceptions, warnings, output; the gradients and the autograd graphs that backward
walked come from :mod:`noteexec.sandbox.observe`), as the events of
:mod:`noteexec.sandbox.protocol`; it never decides whether that is right.
"""

from __future__ import annotations

import ast
import os
import resource
import sys
import time
import traceback
import types
import warnings
from collections.abc import Callable

import torch

from noteexec.sandbox.observe import Autograd, gradient_facts, gradient_state, reachable_tensors
from noteexec.sandbox.protocol import (
    BlockJob,
    Channel,
    ExceptionFacts,
    Job,
    RaisedFacts,
    RanBlock,
    WarningFacts,
    json_line,
    line_values,
)

OUTPUT_CAP = 1 << 20
"""Characters of each stream kept per block. With the caps below, a block's facts are bounded;
:func:`run_note` keeps the whole note inside what the worker accepts (``protocol.RESULT_BUDGET``
and ``protocol.VALUE_BUDGET``) by cutting late blocks short."""
PIECES_CAP = 2000
"""Output pieces told apart by the line that printed them, per block; the rest is one piece."""
WARNINGS_CAP = 100
"""Warnings kept per block (a loop may warn at every step)."""
MESSAGE_CAP = 64 << 10
"""Characters kept of an exception's or a warning's message."""


class Capture:
    """A text stream that remembers which note line printed each piece, up to a cap."""

    def __init__(self, note_file: str) -> None:
        self.note_file = note_file
        self.pieces: list[tuple[int | None, str]] = []
        self.size = 0
        self.truncated = False

    encoding = "utf-8"
    errors = "replace"

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.size >= OUTPUT_CAP:
            self.truncated = True
            return len(text)
        kept = text[: OUTPUT_CAP - self.size]
        self.truncated = self.truncated or len(kept) < len(text)
        self.size += len(kept)
        self.pieces.append((_note_line(sys._getframe(1), self.note_file), kept))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError("the sandbox captures this stream; it has no file descriptor")

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.pieces)

    def by_line(self) -> list[tuple[int | None, str]]:
        """Consecutive pieces from the same line, joined; past ``PIECES_CAP``, the rest is one
        piece of no line."""
        merged: list[tuple[int | None, str]] = []
        for position, (line, text) in enumerate(self.pieces):
            if merged and merged[-1][0] == line:
                merged[-1] = (line, merged[-1][1] + text)
            elif len(merged) == PIECES_CAP - 1:
                merged.append((None, "".join(rest for _, rest in self.pieces[position:])))
                break
            else:
                merged.append((line, text))
        return merged


def _note_line(frame: types.FrameType | None, note_file: str) -> int | None:
    """The innermost note line on the stack: where a print or a warning came from."""
    while frame is not None:
        if frame.f_code.co_filename == note_file:
            return frame.f_lineno
        frame = frame.f_back
    return None


def _traceback_line(error: BaseException, note_file: str, block: range | None) -> int | None:
    """The line of the running block that raised: its deepest frame inside that block.

    An exception raised inside a function defined in an earlier block is reported at the line
    of this block that called it, which is where a note documents it; failing that, at the
    innermost line of the note.
    """
    if isinstance(error, SyntaxError) and error.filename == note_file:
        return error.lineno
    in_block = in_note = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == note_file:
            in_note = lineno
            if block is not None and lineno in block:
                in_block = lineno
    return in_block if in_block is not None else in_note


def _class_names(cls: type) -> list[str]:
    names = []
    for base in cls.__mro__:
        if base is object:
            break
        names.append(base.__name__[:200])
        if base.__module__ != "builtins":
            names.append(f"{base.__module__}.{base.__qualname__}"[:200])
    return names[:32]


def _top_line(error: BaseException, note_file: str, block: range | None) -> int | None:
    """The line of the running block's top-level code that was running when ``error`` was
    raised (the outermost frame in the block), e.g. the call into a helper the block defines."""
    if block is None:
        return None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == note_file and lineno in block:
            return lineno
    return None


def exception_facts(error: BaseException, note_file: str, block: range | None = None) -> ExceptionFacts:
    return {
        "type": type(error).__name__[:200],
        "names": _class_names(type(error)),
        "message": _message(error),
        "line": _traceback_line(error, note_file, block),
        "top_line": _top_line(error, note_file, block),
    }


def _message(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        return _capped(error.msg or "")
    try:
        return _capped(str(error))
    except Exception:  # a note's exception whose __str__ itself fails
        return f"<unprintable {type(error).__name__}>"


def _capped(message: str) -> str:
    if len(message) <= MESSAGE_CAP:
        return message
    return f"{message[:MESSAGE_CAP]} … ({len(message) - MESSAGE_CAP:,} more characters)"


def _reset_torch_state() -> None:
    torch.set_grad_enabled(True)
    torch.autograd.set_detect_anomaly(False)
    torch.set_default_dtype(torch.float32)
    # torch.manual_seed(0) without its slow lazy-CUDA bookkeeping when no accelerator is in use
    torch.default_generator.manual_seed(0)
    if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        torch.cuda.manual_seed_all(0)


def _first_backward() -> None:
    """Run this process's first operation and backward pass before the note's turn: their
    one-time set-up (some 400 page faults, 2-3 ms) then overlaps the note before this one
    instead of delaying this one. Nothing a note sees changes: no random numbers are drawn, no
    hook or mode is left set, the gradient is dropped with its tensor."""
    leaf = torch.ones(2, requires_grad=True)
    (leaf * 2).sum().backward()  # type: ignore[no-untyped-call]


def _compile_block(block: BlockJob, filename: str) -> types.CodeType | Exception:
    """Compile a block, or the error compiling it raised (the block's fact when its turn comes).

    Documented bare expressions print their value like a REPL would; a block without any is
    compiled from its text, which is quicker than going through a syntax tree.
    """
    code, echo_lines = _padded(block["code"], block["line"]), set(block["echo_lines"])
    try:
        if not echo_lines:
            return compile(code, filename, "exec")
        tree = ast.parse(code, filename=filename)
        for node in ast.walk(tree):
            for _, value in ast.iter_fields(node):
                if isinstance(value, list):
                    for index, statement in enumerate(value):
                        if isinstance(statement, ast.Expr) and statement.lineno in echo_lines:
                            call = ast.Call(
                                func=ast.Name("__noteexec_echo__", ast.Load()),
                                args=[statement.value],
                                keywords=[],
                            )
                            value[index] = ast.copy_location(ast.Expr(call), statement)
        ast.fix_missing_locations(tree)
        return compile(tree, filename, "exec")
    except Exception as error:  # SyntaxError, or ValueError for a NUL byte
        return error


def _echo(value: object) -> None:
    if value is not None:
        print(repr(value))


def _padded(code: str, fence_line: int) -> str:
    """Blank lines before the code so that compiled line numbers are the note's own lines."""
    return "\n" * fence_line + code


class FdCapture:
    """Output written straight to fd 1/2 (subprocesses, C code), read back after each block.

    The files are unlinked once open: the note does not see them in its folders.
    """

    def __init__(self, directory: str) -> None:
        self.readers: dict[str, int] = {}
        for fd, stream in ((1, "stdout"), (2, "stderr")):
            path = os.path.join(directory, f".noteexec-fd{fd}")
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
            self.readers[stream] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            os.unlink(path)

    def read_new(self, stream: str) -> str:
        """What was written since the last call (up to the cap), from a descriptor kept open."""
        try:
            data = os.read(self.readers[stream], OUTPUT_CAP)
        except OSError:  # the note closed or replaced the descriptor
            return ""
        return data.decode("utf-8", "replace")


def run_note(job: Job, channel: Channel, cwd: str, wait_for_turn: Callable[[], bool]) -> bool:
    """Execute the note described by ``job`` in this process; report each block on ``channel``.

    Everything that is the same for every note (captures, limits, the prelude) is done first,
    while another note may still be running; ``wait_for_turn`` then blocks until the worker
    starts this note (False: it never will). ``cwd`` is the note's fresh, empty working folder.
    Returns whether the note ran to its end (not a failed setup, ``sys.exit``).
    """
    note_file = job["path"]
    os.chdir(cwd)
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    os.close(stdin)
    fd_capture = FdCapture(os.path.dirname(cwd))
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - lives as long as the process
    _limit_resources(job)
    torch.set_num_threads(job["threads"])
    _first_backward()
    autograd = Autograd()
    autograd.install()
    namespace: dict[str, object] = {"__name__": "__main__", "__noteexec_echo__": _echo}
    prelude_error = _run_prelude(job["prelude"], namespace)
    setup = [(block, _compile_block(block, note_file)) for block in job["setup"]]
    blocks = [(block, _compile_block(block, note_file)) for block in job["blocks"]]

    if not wait_for_turn():
        return False
    if prelude_error is not None:
        channel.send({"event": "setup_failed", "line": None, "exception": prelude_error})
        return False
    for block, code in setup:
        facts = _run_block(block, code, namespace, note_file, autograd, fd_capture)
        if facts["exception"] is not None:
            channel.send({"event": "setup_failed", "line": block["line"], "exception": facts["exception"]})
            return False
    for index, (block, code) in enumerate(blocks):
        channel.send({"event": "start", "index": index})
        facts = _run_block(block, code, namespace, note_file, autograd, fd_capture)
        line = json_line({"event": "block", "index": index, "facts": facts})
        if not channel.fits(line, line_values(line), len(blocks) - index):
            line = json_line({"event": "block", "index": index, "facts": _cut_short(facts)})
        channel.send_line(line, line_values(line))
        if facts["exit"] is not None:
            return False
    return True


def _cut_short(facts: RanBlock) -> RanBlock:
    """A block's facts for a note that has reported nearly all it may: no output, warnings or
    graphs, a short message; its exception and first gradients still make its verdict. Well
    inside ``BLOCK_RESERVE`` and ``VALUES_RESERVE``."""
    exception = facts["exception"]
    if exception is not None:
        exception = {**exception, "names": exception["names"][:16], "message": exception["message"][:200]}
    return {
        **facts,
        "exception": exception,
        "warnings": [],
        "stdout": "",
        "stdout_by_line": [],
        "stderr": "",
        "truncated": True,
        "exit": None if facts["exit"] is None else facts["exit"][:200],
        "gradients": [{**gradient, "name": gradient["name"][:100]} for gradient in facts["gradients"][:8]],
        "leaves_without_grad": [name[:100] for name in facts["leaves_without_grad"][:8]],
        "graphs": [],
    }


def _run_prelude(prelude: str, namespace: dict[str, object]) -> ExceptionFacts | None:
    try:
        exec(compile(prelude, "<prelude>", "exec"), namespace)
    except BaseException as error:
        return exception_facts(error, "<prelude>")
    return None


def _limit_resources(job: Job) -> None:
    """Address-space cap on top of what the warm process already maps, and a file-size cap."""
    limit = job["memory_limit"]
    if limit:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + limit, mapped + limit))
    file_cap = job["file_size_limit"]
    if file_cap:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_cap, file_cap))


def _run_block(
    block: BlockJob,
    code: types.CodeType | Exception,
    namespace: dict[str, object],
    note_file: str,
    autograd: Autograd,
    fd_capture: FdCapture,
) -> RanBlock:
    _reset_torch_state()
    autograd.reset()
    before = reachable_tensors(namespace)
    grads_before = gradient_state(before)
    stdout, stderr = Capture(note_file), Capture(note_file)
    caught: list[RaisedFacts] = []
    error: BaseException | None = None
    exit_code: object = None
    started = time.perf_counter()
    saved_streams = sys.stdout, sys.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _warning_recorder(caught, note_file)
        sys.stdout, sys.stderr = stdout, stderr
        try:
            if isinstance(code, Exception):
                raise code
            exec(code, namespace)
        except SystemExit as exit_request:
            exit_code = exit_request.code
        except BaseException as raised:  # the note's exception is the fact we report
            error = raised
        finally:
            sys.stdout, sys.stderr = saved_streams
    duration = time.perf_counter() - started
    after = reachable_tensors(namespace)
    exception = exception_facts(error, note_file, _block_lines(block)) if error is not None else None
    stdout_text = stdout.text + fd_capture.read_new("stdout")
    stderr_text = stderr.text + fd_capture.read_new("stderr")
    used = _names_used(code) if isinstance(code, types.CodeType) else set()
    observed = gradient_facts(before, after, grads_before, autograd, used)
    return {
        "exception": exception,
        "warnings": caught,
        "stdout": stdout_text,
        "stdout_by_line": stdout.by_line(),
        "stderr": stderr_text,
        "truncated": stdout.truncated or stderr.truncated,
        "duration": round(duration, 6),
        "exit": None if exit_code is None else _capped(f"sys.exit({exit_code!r})"),
        "gradients": observed["gradients"],
        "leaves_without_grad": observed["leaves_without_grad"],
        "backward_calls": observed["backward_calls"],
        "graphs": observed["graphs"],
    }


def _names_used(code: types.CodeType) -> set[str]:
    """Every name a block's code (its functions and classes too) refers to."""
    names = set(code.co_names) | set(code.co_varnames)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names_used(constant)
    return names


def _block_lines(block: BlockJob) -> range:
    return range(block["line"] + 1, block["line"] + 1 + block["code"].count("\n") + 1)


def _warning_recorder(caught: list[RaisedFacts], note_file: str) -> Callable[..., None]:
    def record(message: object, category: type[Warning], filename: str, lineno: int, *_: object) -> None:
        if len(caught) >= WARNINGS_CAP:
            return
        line = lineno if filename == note_file else _note_line(sys._getframe(1), note_file)
        warning: WarningFacts = {
            "category": category.__name__,
            "names": _class_names(category),
            "message": _capped(str(message)),
            "line": line,
        }
        caught.append(warning)

    return record
