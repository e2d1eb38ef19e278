"""noteexec: executable study notes, checked against what they document.

Data flows one way; each stage is a module (or a package of one module per job)::

    discover   which files are notes (dot-folders, excludes)
    source     a file's text, read safely and normalised
    parse      markdown-it tokens → the Note model (model, markdown: Obsidian syntax)
    expect/    what a note documents: errors, outputs, transcripts (pure)
    sandbox/   runs a note in its own namespaces, reports facts, never verdicts
      protocol   the JSON lines between checker, worker and a note's processes
      worker     the warm worker's loop; tree: a note's processes; running: one note, as seen
      execute    inside the note: runs its blocks; observe: the autograd graph and gradients
      isolation, lockdown, cgroups   namespaces, seccomp and Landlock, per-note limits
    facts      the sandbox's report as frozen data
    judge      facts × expectations → verdicts (pure); runnable: "cannot run here" reasons
    results    NoteResult and BlockResult: all a front end reads

Around the stages: ``check`` schedules them (parse ahead, run, judge), ``cache/`` keeps facts
and parses (authenticated; ``serialize`` is their JSON), ``config/`` reads trusted and untrusted
configuration (``environment``: the variables a note always gets), and ``session.CheckSession``
owns configuration, cache and sandbox for every front end. Helpers: ``textmatch`` (doctest-style
comparison, for ``judge``), ``display`` (vault text made safe to print), ``memory`` (the garbage
collector paused while many objects are made).

Front ends: ``cli`` (with ``exitcodes``, ``options``), reporters ``report`` and ``formats``
(text, JSON, JUnit, GitHub), ``update`` and ``baseline`` (rewriting notes, adopting a vault),
``doctor``, ``pytest_plugin``, and ``site/`` (the static site: ``site/markdown/`` one plugin per
module, ``sanitize``, ``build``, ``render``, ``serve``).
"""

__version__ = "0.1.0"
