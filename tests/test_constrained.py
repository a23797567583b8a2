"""Constrained decoding: the move grammar compiled to a JSON schema, and the hf engine
generating under it (even an untrained model then writes only valid programs)."""

from __future__ import annotations

import json
import random

import pytest
import torch

from tailor_evo.generation.base import SamplingParams
from tailor_evo.generation.constraints import ConstraintError, TokenMasker, compile_constraint
from tailor_evo.search.reply_schema import program_schema, reply_schema
from tailor_evo.tasks import get_task

pytest.importorskip("llguidance")

TASKS = ["kk", "igsm", "countdown"]
DEPTH = 8


def _instance(schema: dict, defs: dict, rng: random.Random) -> dict:
    """A random instance of a program schema, drawn by walking its definitions."""
    if "$ref" in schema:
        return _instance(defs[schema["$ref"].rsplit("/", 1)[1]], defs, rng)
    node = rng.choice(schema["anyOf"])
    out = {"op": node["properties"]["op"]["const"]}
    if "args" in node["properties"]:
        out["args"] = [_instance(s, defs, rng) for s in node["properties"]["args"]["prefixItems"]]
    return out


@pytest.mark.parametrize("task_name", TASKS)
def test_every_program_the_schema_admits_is_valid(task_name):
    from tailor_evo.search.genome import program_size
    from tailor_evo.search.gp import TreeOperators

    grammar = get_task(task_name).grammar()
    ops = TreeOperators(grammar, max_depth=DEPTH, max_nodes=25)
    root, defs = program_schema(grammar, DEPTH, 25)
    rng = random.Random(0)
    seen, sizes = set(), []
    for _ in range(300):
        program = _instance(root, defs, rng)
        assert ops.check(program) is None, program          # grammar, depth and node limit
        sizes.append(program_size(program))
        seen.add(program["op"])
    assert max(sizes) > 10                                   # not only tiny trees
    assert seen == {m.name for m in grammar.moves if m.ret == grammar.root}   # every root move is reachable


def _random_text(masker: TokenMasker, tokenizer, eos: set[int], rng: torch.Generator, max_tokens: int) -> str:
    """Tokens drawn uniformly among those the grammar allows, until it is complete."""
    ids = []
    for _ in range(max_tokens):
        allowed = masker.mask(torch.zeros(1, len(tokenizer)), [0])[0] > float("-inf")
        choices = allowed.nonzero()[:, 0]
        tok = int(choices[torch.randint(len(choices), (1,), generator=rng)])
        if tok in eos:
            break
        ids.append(tok)
        if masker.advance(0, tok):
            break
    return tokenizer.decode(ids)


@pytest.mark.parametrize("task_name", TASKS)
def test_random_strings_of_the_compiled_grammar_are_valid_replies(task_name, tiny_tokenizer):
    grammar = get_task(task_name).grammar()
    compiled = compile_constraint(SamplingParams(json_schema=reply_schema(grammar, DEPTH, max_description_chars=60)))
    rng = torch.Generator().manual_seed(0)
    eos = {tiny_tokenizer.eos_token_id}
    for _ in range(5):
        masker = TokenMasker(tiny_tokenizer, eos, len(tiny_tokenizer), compiled, 1)
        reply = json.loads(_random_text(masker, tiny_tokenizer, eos, rng, 2000))
        assert set(reply) == {"description", "program"} and 1 <= len(reply["description"]) <= 60
        assert grammar.validate(reply["program"], max_depth=DEPTH) == []


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from tailor_evo.trainers.checkpoint import load_backbone

    return load_backbone("tiny")[1]


@pytest.fixture(scope="module")
def untrained():
    from tailor_evo.generation.hf import HFEngine

    return HFEngine.from_pretrained("tiny", batch_size=16, show_progress=False)


def test_untrained_tiny_writes_only_valid_programs_when_constrained(untrained):
    grammar = get_task("kk").grammar()
    params = SamplingParams(n=6, temperature=1.0, max_new_tokens=400, seed=3,
                            json_schema=reply_schema(grammar, DEPTH, max_description_chars=80))
    groups = untrained.generate(["Write a new reasoning primitive as JSON:", "Mutate it:"], params)
    for comp in (c for g in groups for c in g):
        assert comp.finish_reason == "stop", comp.text
        assert grammar.validate(json.loads(comp.text)["program"], max_depth=DEPTH) == []
        assert len(comp.logprobs) == len(comp.token_ids)
    free = untrained.generate(["Write a new reasoning primitive as JSON:"],
                              SamplingParams(n=6, max_new_tokens=60, seed=3))[0]
    assert not any(c.text.lstrip().startswith('{"description"') for c in free)   # the same model, free


def test_a_lark_grammar_and_greedy_decoding(untrained):
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=20, seed=0, grammar='start: "yes" | "no"')
    texts = {c.text for c in untrained.generate(["Is Ann a knight?"], params)[0]}
    assert texts <= {"yes", "no"} and texts
    greedy = SamplingParams(temperature=0.0, max_new_tokens=20, grammar='start: "knight" | "knave"')
    assert untrained.generate(["Ann is a"], greedy)[0][0].text in ("knight", "knave")


def test_bad_constraints_are_clear_errors():
    with pytest.raises(ConstraintError, match="invalid grammar"):
        compile_constraint(SamplingParams(grammar='start: ( "a"'))
    with pytest.raises(ConstraintError, match="invalid json_schema"):
        compile_constraint(SamplingParams(json_schema={"type": 7}))
    with pytest.raises(ConstraintError, match="not both"):
        compile_constraint(SamplingParams(json_schema={"type": "string"}, grammar='start: "a"'))
    with pytest.raises(ValueError, match="no program"):
        program_schema(get_task("kk").grammar(), 0)


def test_the_operator_constrains_when_asked_and_counts_a_cut_reply():
    from tailor_evo.generation.base import Completion
    from tailor_evo.search.gp import TreeOperators
    from tailor_evo.search.llm_operator import LLMOperator

    grammar = get_task("kk").grammar()
    ops = TreeOperators(grammar)
    seen_params = []

    class Cut:
        supports_constraints = True

        def generate(self, prompts, params):
            seen_params.append(params)
            inner = '{"description": "x", "program": {"op": "primitive", "args": [{"op": "style_terse"}'
            return [[Completion(text=inner, token_ids=[1], finish_reason="length")] for _ in prompts]

    schema = reply_schema(grammar, ops.max_depth, ops.max_nodes)
    op = LLMOperator(Cut(), grammar, ops.check, schema=schema)
    pool = [("a", "seed", grammar.random_program(random.Random(0)))]
    assert op.propose(pool, 3, random.Random(0)) == []
    assert op.mode == "constrained" and seen_params[0].json_schema == schema
    assert op.invalid == {"unfinished within max_new_tokens": 3}


def test_generate_command_takes_a_schema_or_a_grammar(tmp_path):
    from click.testing import CliRunner

    from tailor_evo.cli import cli
    from tailor_evo.errors import InputError

    schema = tmp_path / "role.json"
    schema.write_text(json.dumps({"enum": ["knight", "knave"]}))
    result = CliRunner().invoke(cli, ["generate", "--model", "tiny", "--prompt", "Ann is a", "--n", "3",
                                      "--max-new-tokens", "12", "--json-schema", str(schema)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    texts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(texts) == 3 and set(texts) <= {"knight", "knave"}
    bad = tmp_path / "bad.lark"
    bad.write_text('start: ( "a"')
    result = CliRunner().invoke(cli, ["generate", "--model", "tiny", "--prompt", "x", "--grammar", str(bad)])
    assert isinstance(result.exception, InputError) and "invalid grammar" in str(result.exception)
