"""The warm-start stage: SFT data of verified reasoning trajectories chosen for coverage of reasoning states.

All methods are built on the *same* training problems with the *same* size
budget, so that a downstream difference is due to the method and nothing else:

* ``rule-based``     the task's rule-based seed primitive (its canonical solution procedure);
* ``four-behaviour`` the seed library of verification, backtracking, subgoal setting and
                     backward chaining primitives;
* ``redistill``      a teacher engine answers the plain prompt (no primitive) and only
                     verified answers are kept;
* ``tailor``         the elite primitives of a search archive;
* ``tailor-gp``      the same from an archive searched with the offline operators (GP
                     variation, executor rendering) whatever the search config says: the
                     ablation of the LLM operator and renderer when the config uses them.

More methods join with :func:`register_method` (see ``methods``).

Pipeline: training problems (``warmstart`` stream, checked disjoint from the
evaluation problems of the same seed) -> render candidates -> verify (every drop is
counted with its reason) -> greedy selection of ``size`` candidates that maximises
the number of reasoning-state cells covered, round-robin over (primitive, level)
strata so that no primitive or difficulty dominates -> records + data card.

Reasoning-state cells: every distinct step is embedded (the search's embedders) and
assigned to a cell of a codebook. The steps are, by default (``select_on="abstract"``),
the sentences of each completion's reasoning with the problem's names replaced by
roles, so that the selection counts reasoning moves rather than people; with
``select_on="states"`` they are the executor's step states as they are. By default the codebook is the search's own
fixed SimHash coverage codebook, so the selection maximises exactly the coverage the
data card, the search report and the experiment report; ``codebook="kmeans"`` uses a
FAISS k-means codebook fitted on the states instead (coarser cells). Coverage of a
set is a set union, so the greedy gain is exact and submodular, which makes lazy
evaluation valid.

Modules, in the order the data flows: ``methods`` (the registry: one record per
method, saying what it needs and where it runs in the experiment grid), ``config``
(``WarmstartConfig``, shared by ``tailor-evo data warmstart`` and the pipeline),
``sources`` (problems and candidates), ``builders`` (the built-in methods' candidate
builders), ``selection`` (the greedy cover), ``card`` (statistics and the data card),
``build`` (``build_warmstart``, the whole stage), and ``cli`` (the ``data warmstart``
command). ``records`` holds the typed records they pass.
"""

from tailor_evo.warmstart.build import build_warmstart
from tailor_evo.warmstart.card import render_card
from tailor_evo.warmstart.methods import WarmstartMethod, get_method, method_names, register_method, unregister_method
from tailor_evo.warmstart.records import Candidate, CandidateSet, MethodInputs, WarmstartResult, WarmstartStats
from tailor_evo.warmstart.selection import greedy_select

__all__ = ["Candidate", "CandidateSet", "MethodInputs", "WarmstartMethod", "WarmstartResult", "WarmstartStats",
           "build_warmstart", "get_method", "greedy_select", "method_names", "register_method", "render_card",
           "unregister_method"]
