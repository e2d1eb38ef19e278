"""Checked notes as a static site: ``noteexec build``, ``render`` and ``serve``.

Nothing here imports torch: results come in from :mod:`noteexec.check` (or a cache) as data.
"""
