"""The warm-start methods: the one home of their names and of where each gets its primitives."""

from __future__ import annotations

# the warm-start methods, in the order reports list them
METHODS = ("tailor", "tailor-gp", "four-behaviour", "rule-based", "redistill")
BASELINES = ("rule-based", "four-behaviour", "redistill")   # what the tailor method is compared against
ARCHIVE_METHODS = ("tailor", "tailor-gp")                   # methods whose primitives come from a search
OFFLINE_SEARCH = {"operator": "gp", "renderer": "executor"}  # what tailor-gp's search runs
SEED_LIBRARIES = {"rule-based": "rule-based", "four-behaviour": "four-behaviour"}
