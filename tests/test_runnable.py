"""Not runnable here: which failures say nothing about the note, and what would make them run."""

from __future__ import annotations

import pytest

from noteexec.facts import Raised
from noteexec.model import CodeBlock
from noteexec.runnable import classify, defined_names, output_from_a_gpu, vault_definitions


def raised(type_: str, message: str, *bases: str) -> Raised:
    return Raised(type_, (type_, *bases), message, 2)


def block(code: str, line: int = 10) -> CodeBlock:
    return CodeBlock(line=line, code=code, lang="python")


@pytest.mark.parametrize(
    ("code", "exception", "reason", "detail"),
    [
        ("import torchvision.models", raised("ModuleNotFoundError", "No module named 'torchvision'", "ImportError"),
         "missing_module", "install torchvision"),
        ("from pandas.io import x", raised("ModuleNotFoundError", "No module named 'pandas.io'", "ImportError"),
         "missing_module", "install pandas"),
        ("x = torch.ones(1).cuda()", raised("AssertionError", "Torch not compiled with CUDA enabled"),
         "needs_cuda", "needs a GPU (CUDA) this machine does not have"),
        ("x = torch.ones(1, device='cuda')", raised("RuntimeError", "Found no NVIDIA driver on your system."),
         "needs_cuda", "needs a GPU (CUDA) this machine does not have"),
        ("model = ...\nmodel.train()", raised("AttributeError", "'ellipsis' object has no attribute 'train'"),
         "placeholder", "placeholder code: model = ..."),
        ("data = open('<your path>/train.csv')",
         raised("FileNotFoundError", "[Errno 2] No such file or directory: '<your path>/train.csv'", "OSError"),
         "placeholder", "placeholder code: <your path>"),
        ("loss = compute_loss(w)", raised("NameError", "name 'compute_loss' is not defined"),
         "undefined_name", "'compute_loss' is defined nowhere in the note"),
    ],
)  # fmt: skip
def test_failures_that_cannot_run_here(code: str, exception: Raised, reason: str, detail: str) -> None:
    found = classify(block(code), exception)
    assert found is not None
    assert (found.reason, found.detail) == (reason, detail)


def test_a_name_from_another_note_says_which() -> None:
    elsewhere = vault_definitions([("Losses", [block("def compute_loss(w):\n    return w.sum()")])])
    found = classify(
        block("compute_loss(w)"), raised("NameError", "name 'compute_loss' is not defined"), (), elsewhere
    )
    assert found is not None and found.detail == "'compute_loss' is defined in [[Losses]]"


def test_a_name_an_earlier_failed_block_should_have_defined_is_a_knock_on_failure() -> None:
    earlier = [(block("import torch", 3), False), (block("w = torch.ones(2)\nmodel = Nope()", 141), True)]
    found = classify(block("print(model)", 150), raised("NameError", "name 'model' is not defined"), earlier)
    assert found is not None and (found.reason, found.detail) == (
        "depends_on_failed",
        "depends on the failed block at L141",
    )


@pytest.mark.parametrize(
    ("code", "exception", "earlier"),
    [
        ("print(2 + 2)", raised("AssertionError", "wrong"), []),  # an honest mistake
        ("y = x[..., 0]\ny.nope()", raised("AttributeError", "'Tensor' object has no attribute 'nope'"), []),
        ("print(modle)", raised("NameError", "name 'modle' is not defined"), [(block("modle = 1\ndel modle"), False)]),
        ("print(z)\nz = 1", raised("NameError", "name 'z' is not defined"), []),  # used before its definition
        ("x = torch.ones(2)\nx.backward()", raised("RuntimeError", "grad can be implicitly created only for scalar outputs"), []),
    ],
)  # fmt: skip
def test_real_mistakes_stay_failures(
    code: str, exception: Raised, earlier: list[tuple[CodeBlock, bool]]
) -> None:
    assert classify(block(code), exception, earlier) is None


GPU_DIFF = """--- documented (line 369)
+++ actual (line 369)
@@ -1 +1 @@
-device(type='cuda', index=0)
+device(type='cpu')
"""


@pytest.mark.parametrize(
    ("diff", "reason"),
    [
        (GPU_DIFF, "needs_cuda"),
        ("-tensor([1., 2.], device='cuda:0')\n+tensor([1., 2.])\n", "needs_cuda"),
        ("-tensor([1.], device='mps:0')\n+tensor([1.])\n", "needs_cuda"),
        # a real mistake in a note written on a GPU: both sides on the GPU, or no device at all
        ("-tensor([1.], device='cuda:0')\n+tensor([2.], device='cuda:0')\n", None),
        ("-tensor([1.])\n+tensor([2.])\n", None),
        ("--- documented (the block) device='cuda'\n+++ actual\n-1\n+2\n", None),
        (None, None),
    ],
)
def test_output_documented_on_a_gpu_cannot_be_compared_here(diff: str | None, reason: str | None) -> None:
    """A transcript pasted from a CUDA machine (``device='cuda:0'``) differs here by its device."""
    found = output_from_a_gpu(diff)
    assert (found.reason if found else None) == reason


def test_defined_names_cover_assignments_imports_defs_and_loops() -> None:
    code = "import torch.nn as nn\nfrom math import pi\nx, (y, z) = 1, (2, 3)\nfor i in range(2): pass\ndef f(): q = 1\nclass C: pass"
    assert defined_names(code) >= {"nn", "pi", "x", "y", "z", "i", "f", "q", "C"}
    assert defined_names("def broken(:") == set()


def test_names_from_a_transcript_or_a_block_with_magics_are_found() -> None:
    """An earlier block that failed is named as the cause, not 'defined nowhere' or another note."""
    assert defined_names(">>> x = torch.ones(2)\n>>> y = x * 2\ntensor([2., 2.])\n>>>") == {"x", "y"}
    assert defined_names(">>> for i in range(2):\n...     z = i\n...\n>>> w = 1") == {"i", "z", "w"}
    assert defined_names("%matplotlib inline\n!pip install d2l\nimport numpy as np") == {"np"}
    assert defined_names("%%tab all\nimport numpy as np") == {"np"}
    assert defined_names("x = (") == set()
    earlier = [(block(">>> flat = torch.ones(3)\n>>> flat.shape\ntorch.Size([3])", line=3), True)]
    found = classify(block("flat.sum()"), raised("NameError", "name 'flat' is not defined"), earlier)
    assert found is not None and (found.reason, found.detail) == (
        "depends_on_failed",
        "depends on the failed block at L3",
    )
