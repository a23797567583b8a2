"""The evolutionary primitive search: a quality-diversity engine over a task's move grammar.

The package is task-agnostic: it reaches a domain only through the ``Task``
interface (``tailor_evo.tasks.base``). Entry points for other parts of the product:

- :func:`search.engine.run_search` runs a search into a run directory,
- :func:`search.archive.load_archive` reads the elite primitives back,
- :mod:`search.coverage` holds the shared reasoning-state coverage measure.
"""
