"""Unit tests of the search's parts: operators, embedders, novelty, coverage, selection, LLM reply parsing."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_search_toytask import LEFT, RIGHT, ToySum

from tailor_evo.search.archive import Archive, ArchiveConfig
from tailor_evo.search.coverage import Coverage, coverage
from tailor_evo.search.embed import HashEmbedder
from tailor_evo.search.genome import Primitive, program_id
from tailor_evo.search.gp import MUTATIONS, TreeOperators
from tailor_evo.search.llm_operator import extract_json_object, parse_reply
from tailor_evo.search.novelty import StateIndex
from tailor_evo.search.selection import MapElitesGrid, nsga2, pareto_front


@pytest.fixture(scope="module")
def grammar():
    return ToySum().grammar()


def test_program_id_is_a_content_hash():
    same = {"args": [{"op": "take_left", "args": []}, {"op": "end", "args": []}], "op": "seq"}
    assert program_id(LEFT) == program_id(same)
    assert program_id(LEFT) != program_id(RIGHT)
    p = Primitive.create("toy-sum", LEFT, "d")
    assert Primitive.from_dict(p.to_dict()) == p


def test_pset_round_trip(grammar):
    ops = TreeOperators(grammar)
    rng = random.Random(0)
    for _ in range(50):
        prog = grammar.random_program(rng, max_depth=6)
        assert ops.gps.to_program(ops.gps.to_tree(prog)) == prog


@pytest.mark.parametrize("kind", MUTATIONS)
def test_every_mutation_child_is_valid_and_new(grammar, kind):
    ops = TreeOperators(grammar, max_depth=8, max_nodes=30)
    rng = random.Random(1)
    made = 0
    for _ in range(60):
        parent = grammar.random_program(rng, max_depth=5)
        if ops.check(parent):
            continue
        child, _ = ops.mutate(parent, rng, kind)
        if child is None:
            continue
        made += 1
        assert grammar.validate(child, max_depth=8) == []
        assert child != parent
    assert made > 0


def test_crossover_children_valid(grammar):
    ops = TreeOperators(grammar, max_depth=8, max_nodes=30)
    rng = random.Random(2)
    made = 0
    for _ in range(60):
        a, b = grammar.random_program(rng, max_depth=5), grammar.random_program(rng, max_depth=5)
        child, _ = ops.crossover(a, b, rng)
        if child is not None:
            made += 1
            assert ops.check(child) is None and child not in (a, b)
    assert made > 0


def test_operators_are_reproducible(grammar):
    def run(seed):
        ops, rng = TreeOperators(grammar), random.Random(seed)
        prog = LEFT
        out = []
        for _ in range(20):
            child, _ = ops.mutate(prog, rng)
            prog = child or prog
            out.append(program_id(prog))
        return out

    random.seed(123)
    a = run(5)
    random.seed(999)           # global random state must not matter
    assert run(5) == a


def test_size_limit_rejects_bloat(grammar):
    ops = TreeOperators(grammar, max_nodes=3)
    assert ops.check(LEFT) is None
    big = {"op": "seq", "args": [{"op": "take_left", "args": []}, LEFT]}
    assert ops.check(big) == "too large"
    assert ops.check({"op": "nope", "args": []}).startswith("invalid")


def test_hash_embedder_unit_norm_and_deterministic():
    e = HashEmbedder(dim=64)
    v = e.encode(["taken [1] total 1", "taken [1] total 1", "something else"])
    assert v.shape == (3, 64)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(v[0], v[1]) and not np.array_equal(v[0], v[2])
    assert np.array_equal(HashEmbedder(dim=64).encode(["something else"])[0], v[2])
    assert e.encode([]).shape == (0, 64)


def test_novelty_duplicate_is_zero_and_far_point_high():
    e = HashEmbedder()
    idx = StateIndex(e)
    known = [f"taken [{i}] total {i}" for i in range(20)]
    idx.add(known)
    assert idx.novelty(known[:5], k=1) == pytest.approx(0.0, abs=1e-6)
    far = idx.novelty(["completely unrelated words about giraffes and volcanoes"], k=1)
    near = idx.novelty(["taken [3] total 4"], k=1)
    assert far > 1.0 > near


def test_novelty_of_empty_archive_is_maximal_and_no_states_is_zero():
    idx = StateIndex(HashEmbedder())
    assert idx.novelty(["x"]) == 2.0
    idx.add(["y"])
    assert idx.novelty([]) == 0.0


def test_archive_admission_rules():
    arch = Archive(HashEmbedder(), ArchiveConfig(quality_floor=0.9, novelty_min=0.05, min_problems=4))
    states = [["taken [1] total 1", "taken [1, 2] total 3"]]

    def prim(program, q=1.0, n=8):
        p = Primitive.create("toy-sum", program, "d")
        p.quality, p.n_problems = q, n
        return p

    assert arch.consider(prim(LEFT, q=0.5), states) == "below quality floor"
    assert arch.consider(prim(LEFT, n=2), states) == "too few problems"
    assert arch.consider(prim(LEFT), states) == "admitted"
    assert arch.consider(prim(LEFT), states) == "already archived"
    dup = prim(RIGHT)
    assert arch.consider(dup, states) == "not novel" and dup.novelty == pytest.approx(0.0, abs=1e-6)
    other = prim({"op": "seq", "args": [{"op": "check", "args": []}, RIGHT]})
    assert arch.consider(other, [["taken [9] total 9 left []", "check the total 9"]]) == "admitted"
    assert len(arch) == 2


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=30), min_size=0, max_size=30),
       st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=10))
def test_coverage_is_monotone(base, extra):
    e = HashEmbedder(dim=64)
    assert coverage(base + extra, e) >= coverage(base, e)
    assert coverage(base, e) <= len(set(base))


def test_coverage_counts_distinct_regions_and_ignores_duplicates():
    e = HashEmbedder()
    cov = Coverage(e, bits=16)
    a = [f"person {i} is a knight" for i in range(10)]
    assert cov(a) == cov(a + a)
    assert cov(a + [f"value {i} equals {i * 3}" for i in range(10)]) > cov(a)
    assert Coverage(e, bits=16, seed=0).cells(a) == cov.cells(a)   # codebook is fixed by (dim, bits, seed)


def test_nsga2_keeps_pareto_front():
    objs = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.4, 0.4), (0.1, 0.1), (0.9, 0.2)]
    front = pareto_front(objs)
    assert front == [0, 1, 2, 5]
    keep = nsga2(objs, 4)
    assert sorted(keep) == front
    assert sorted(nsga2(objs, 10)) == list(range(6))


def test_map_elites_one_elite_per_cell():
    grid = MapElitesGrid(length_edges=[5], count_edges=[1])
    desc = [{"length": 2, "verify": 0}, {"length": 3, "verify": 0}, {"length": 9, "verify": 2}, {"length": 9, "verify": 0}]
    objs = [(0.5, 0.1), (0.9, 0.0), (1.0, 0.3), (0.2, 0.9)]
    chosen = grid.select(desc, objs, ("length", "verify"))
    assert sorted(chosen) == [1, 2, 3]
    assert grid.select(desc, objs, ("length", "verify"), k=1) == [2]


def test_llm_reply_parsing(grammar):
    ops = TreeOperators(grammar)
    good = ('Sure! ```json\n{"description": "go right", "program": {"op": "seq", "args": '
            '[{"op": "take_right", "args": []}, {"op": "end", "args": []}]}}\n```')
    parsed, reason = parse_reply(good, ops.check)
    assert reason == "ok" and parsed["program"] == RIGHT and parsed["description"] == "go right"
    assert parse_reply("no json here", ops.check) == (None, "no JSON object")
    assert parse_reply('{"description": "x"}', ops.check) == (None, "missing program")
    bad, reason = parse_reply('{"description": "x", "program": {"op": "fly", "args": []}}', ops.check)
    assert bad is None and reason.startswith("invalid")
    assert extract_json_object('a {broken {"op": "end", "args": []} b') == {"op": "end", "args": []}


@pytest.mark.slow
def test_minilm_embedder_loads_offline_and_separates_meanings():
    from tailor_evo.search.embed import make_embedder

    e = make_embedder("minilm")
    v = e.encode(["Rosa is a knight.", "Rosa is a knave.", "x = 3 + 4 mod 23"])
    assert v.shape == (3, e.dim) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])


def test_checkpoints_from_before_the_package_move_still_load(tmp_path):
    """Checkpoints pickled when the search package was the top-level ``search`` name their
    classes ``search.engine.SearchState`` and ``search.genome.Primitive``; they still load."""
    import pickle

    from tailor_evo.rundir import RunDir
    from tailor_evo.search.engine import CHECKPOINT, SearchState, load_checkpoint

    prim = Primitive(id="p1", task="kk", description="case split", program={"op": "split"})
    old = pickle.dumps(SearchState(generation=3, population=[prim], archive=[prim]), protocol=0)
    assert b"ctailor_evo.search.engine\nSearchState" in old
    old = old.replace(b"ctailor_evo.search.", b"csearch.")
    assert b"tailor_evo.search" not in old
    run = RunDir.create(tmp_path / "run")
    (run.checkpoints / CHECKPOINT).write_bytes(old)
    state = load_checkpoint(run)
    assert isinstance(state, SearchState) and state.generation == 3
    assert isinstance(state.archive[0], Primitive) and state.archive[0].description == "case split"
