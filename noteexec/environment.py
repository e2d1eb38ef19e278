"""Which of the checker's environment variables notes see: the sandbox passes these and the
ones the configuration names; a configuration inside the checked folder may name no other.

Below both :mod:`noteexec.sandbox` (which applies it) and :mod:`noteexec.config` (which checks a
configuration against it), so that neither imports the other.
"""

from __future__ import annotations

ENV_ALLOWLIST = (
    "PATH", "LANG", "LC_*", "TZ", "PYTHON*", "OMP_*", "MKL_*", "OPENBLAS_*", "TORCH_*", "CUDA_*",
)  # fmt: skip
