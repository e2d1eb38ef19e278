"""Checked notes as a static site: ``noteexec build``, ``render`` and ``serve``.

Nothing here imports torch: results come in as :mod:`noteexec.results` data, from a
:class:`noteexec.session.CheckSession` run (or its cache).
"""
