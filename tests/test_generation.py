"""The hf engine: reproducible sampling, exact log-probs, stop strings, eos, batching, chat prompts."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from tailor_evo.errors import InputError
from tailor_evo.generation import make_engine
from tailor_evo.generation.base import SamplingParams
from tailor_evo.generation.hf import HFEngine, teacher_forced_logprobs

PROMPTS = ["Rosa", "The number of each Lion equals 3 plus 4 and Tariq is a knave.", "Tariq is", "7 plus"]


@pytest.fixture(scope="module")
def tiny_dir(small_tiny_dir):
    return small_tiny_dir


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return HFEngine.from_pretrained(str(tiny_dir), batch_size=8, show_progress=False)


def ids(results):
    return [[c.token_ids for c in comps] for comps in results]


def test_sampling_is_reproducible_with_a_seed(engine):
    params = SamplingParams(n=3, max_new_tokens=12, seed=7)
    a, b = engine.generate(PROMPTS, params), engine.generate(PROMPTS, params)
    assert ids(a) == ids(b)
    assert [[c.text for c in x] for x in a] == [[c.text for c in x] for x in b]
    c = engine.generate(PROMPTS, SamplingParams(n=3, max_new_tokens=12, seed=8))
    assert ids(a) != ids(c)
    assert len(a) == len(PROMPTS) and all(len(x) == 3 for x in a)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9), (0.0, 1.0)])
def test_logprobs_equal_a_teacher_forced_forward_pass(engine, temperature, top_p):
    results = engine.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=16, temperature=temperature,
                                                      top_p=top_p, seed=3))
    checked = 0
    for prompt, comps in zip(PROMPTS, results):
        for c in comps:
            assert c.prompt_token_ids == engine.encode(prompt)
            assert len(c.logprobs) == len(c.token_ids) > 0
            ref = teacher_forced_logprobs(engine.model, c.prompt_token_ids, c.token_ids)
            assert max(abs(a - b) for a, b in zip(ref, c.logprobs)) < 1e-4
            checked += 1
    assert checked == 2 * len(PROMPTS)


def test_greedy_matches_plain_generate_and_does_not_depend_on_batching(engine, tiny_dir):
    params = SamplingParams(n=1, max_new_tokens=10, temperature=0.0)
    batched = engine.generate(PROMPTS, params)
    single = HFEngine(engine.model, engine.tokenizer, batch_size=1, show_progress=False).generate(PROMPTS, params)
    assert ids(batched) == ids(single)
    for prompt, comps in zip(PROMPTS, batched):
        inp = torch.tensor([engine.encode(prompt)])
        out = engine.model.generate(inp, attention_mask=torch.ones_like(inp), do_sample=False, max_new_tokens=10,
                                    pad_token_id=engine.pad_id)
        ref = out[0, inp.shape[1]:].tolist()
        got = comps[0].token_ids
        assert got == ref[:len(got)]


def test_stop_strings_truncate_text_and_token_ids(engine):
    params = SamplingParams(n=1, max_new_tokens=24, seed=11)
    free = engine.generate(PROMPTS[:1], params)[0][0]
    assert len(free.text) > 8
    stop = free.text[4:6]
    stopped = engine.generate(PROMPTS[:1], SamplingParams(n=1, max_new_tokens=24, seed=11, stop=[stop]))[0][0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == free.text[:free.text.index(stop)]
    assert stop not in stopped.text
    k = len(stopped.token_ids)
    assert stopped.token_ids == free.token_ids[:k] and len(stopped.logprobs) == k
    # the last kept token completes the stop string; one token fewer does not contain it yet
    assert stop in engine.tokenizer.decode(stopped.token_ids)
    assert stop not in engine.tokenizer.decode(stopped.token_ids[:-1])


def test_eos_ends_a_sequence_and_is_kept_in_token_ids(tiny_dir):
    eng = HFEngine.from_pretrained(str(tiny_dir), show_progress=False)
    params = SamplingParams(n=1, max_new_tokens=20, seed=5)
    free = eng.generate(PROMPTS[:1], params)[0][0]
    assert free.finish_reason == "length" and len(free.token_ids) == 20
    eos = free.token_ids[6]
    first = free.token_ids.index(eos)
    eng.eos_ids = {eos}
    ended = eng.generate(PROMPTS[:1], params)[0][0]
    assert ended.finish_reason == "stop"
    assert ended.token_ids == free.token_ids[:first + 1]
    assert ended.text == eng.tokenizer.decode(free.token_ids[:first])


def test_finished_rows_leave_the_batch_without_disturbing_the_others(tiny_dir):
    # with an eos that some rows hit early, the other rows' samples must be unchanged
    eng = HFEngine.from_pretrained(str(tiny_dir), show_progress=False)
    params = SamplingParams(n=4, max_new_tokens=15, temperature=0.0)
    before = eng.generate(PROMPTS, params)
    eos = before[1][0].token_ids[3]
    eng.eos_ids = {eos}
    after = eng.generate(PROMPTS, params)
    for b, a in zip(before, after):
        for cb, ca in zip(b, a):
            cut = cb.token_ids.index(eos) + 1 if eos in cb.token_ids else len(cb.token_ids)
            assert ca.token_ids == cb.token_ids[:cut]


def test_chat_messages_use_the_chat_template(engine):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Rosa"}]
    text, templated = engine.render(msgs)
    assert templated and text.endswith("Assistant:") and "User: Rosa" in text
    assert engine.render("plain")[0] == "plain"
    out = engine.generate([msgs], SamplingParams(max_new_tokens=5, seed=0))
    assert out[0][0].prompt_token_ids == engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError):
        engine.generate([[{"content": "no role"}]], SamplingParams(max_new_tokens=2))


def test_bad_params_are_rejected(engine):
    for bad in (SamplingParams(n=0), SamplingParams(top_p=0.0), SamplingParams(temperature=-1),
                SamplingParams(max_new_tokens=0)):
        with pytest.raises(ValueError):
            engine.generate(["x"], bad)
    assert engine.generate([], SamplingParams()) == []


def test_work_beyond_the_model_positions_is_a_clear_error(engine):
    limit = engine.model.config.max_position_embeddings
    with pytest.raises(ValueError, match=f"beyond the model's {limit} positions"):
        engine.generate(["x", "Rosa is a knight"], SamplingParams(max_new_tokens=limit))


def test_make_engine_specs(tiny_dir):
    assert isinstance(make_engine(f"hf:{tiny_dir}", show_progress=False), HFEngine)
    assert isinstance(make_engine(str(tiny_dir)), HFEngine)
    from tailor_evo.generation.openai_backend import OpenAIEngine

    e = make_engine("openai:http://127.0.0.1:9/v1#tiny")
    assert isinstance(e, OpenAIEngine) and e.base_url == "http://127.0.0.1:9/v1" and e.model == "tiny"
    with pytest.raises(InputError, match="URL#MODEL"):
        make_engine("openai:http://127.0.0.1:9/v1")


def test_vllm_missing_names_the_extra(monkeypatch):
    import builtins

    from tailor_evo.generation import vllm_backend

    real_import = builtins.__import__

    def no_vllm(name, *a, **kw):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("no vllm")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(vllm_backend.MissingExtraError, match=r"pip install 'tailor-evo\[vllm\]'"):
        vllm_backend.VLLMEngine("tiny")


def test_generate_cli_writes_jsonl(tmp_path, tiny_dir):
    from tailor_evo.cli import cli

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": 1, "prompt": "Rosa"}) + "\n\n" +
                   json.dumps({"id": 2, "messages": [{"role": "user", "content": "Tariq"}]}) + "\n")
    out = tmp_path / "out.jsonl"
    def args(path):
        return ["generate", "--model", str(tiny_dir), "--input", str(inp), "-o", str(path), "--n", "2",
                "--max-new-tokens", "5", "--seed", "3"]

    result = CliRunner().invoke(cli, args(out))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert all(len(r["completions"]) == 2 and len(r["completions"][0]["token_ids"]) <= 5 for r in rows)
    again = tmp_path / "again.jsonl"
    assert CliRunner().invoke(cli, args(again)).exit_code == 0
    assert again.read_text() == out.read_text()


def test_generate_cli_names_the_bad_line(tmp_path, tiny_dir):
    from tailor_evo.cli import cli

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"text": "no prompt"}) + "\n")
    result = CliRunner().invoke(cli, ["generate", "--model", str(tiny_dir), "--input", str(inp),
                                      "-o", str(tmp_path / "o.jsonl")])
    assert isinstance(result.exception, InputError)
    assert f"{inp}:2" in str(result.exception) and "prompt" in str(result.exception)
    assert not (tmp_path / "o.jsonl").exists()


def test_growing_cache_layer_matches_concatenation():
    from tailor_evo.generation.kv_cache import GrowingLayer

    torch.manual_seed(0)
    chunks = [torch.randn(3, 2, t, 4) for t in (5, 1, 1, 3, 1, 1, 1, 1)]
    layer = GrowingLayer.from_tensors(chunks[0], chunks[0] * 2, reserve=2)
    for c in chunks[1:]:
        keys, values = layer.update(c, c * 2)
    full = torch.cat(chunks, dim=2)
    assert layer.get_seq_length() == full.shape[2]
    assert torch.equal(keys, full) and torch.equal(values, full * 2)
    layer.batch_select_indices(torch.tensor([2, 0]))
    assert torch.equal(layer.keys, full[[2, 0]])
    layer.batch_repeat_interleave(2)
    assert torch.equal(layer.values, (full * 2)[[2, 2, 0, 0]])
    keys, _ = layer.update(torch.ones(4, 2, 1, 4), torch.ones(4, 2, 1, 4))
    assert torch.equal(keys[:, :, :-1], full[[2, 2, 0, 0]]) and bool((keys[:, :, -1] == 1).all())


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.5, 1.0), (1.0, 0.7)])
def test_sampler_draws_from_the_tempered_nucleus(temperature, top_p):
    from tailor_evo.generation.hf import _sample

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().repeat(40000, 1)
    gen = torch.Generator().manual_seed(0)
    draws = _sample(logits, torch.log_softmax(logits, -1), SamplingParams(temperature=temperature, top_p=top_p), gen)
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    want = probs ** (1 / temperature)
    if top_p < 1:
        want = torch.tensor([0.5, 0.3, 0.0, 0.0])  # 0.5 < 0.7 so 0.3 is needed; then the mass reaches 0.8
    want = want / want.sum()
    assert torch.allclose(freq, want, atol=0.01), (freq, want)


def test_generation_leaves_the_training_mode_as_it_found_it(engine):
    engine.model.train()
    try:
        engine.generate(["Rosa"], SamplingParams(max_new_tokens=2, seed=0))
        assert engine.model.training
    finally:
        engine.model.eval()


@pytest.fixture(scope="module")
def gqa_tiny_dir(tmp_path_factory):
    """A tiny backbone with grouped-query attention (4 query heads share 2 key/value heads), like SmolLM2."""
    from conftest import SMALL_CORPUS

    from tailor_evo.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("gqa-tiny") / "m", seed=2, hidden_size=32, layers=2, heads=4,
                      kv_heads=2, vocab_size=320, corpus=SMALL_CORPUS)


@pytest.mark.parametrize("which", ["mha", "gqa"])
def test_lean_decode_samples_what_the_transformers_path_samples(which, tiny_dir, gqa_tiny_dir):
    from tailor_evo.generation.lean_decode import supports

    path = tiny_dir if which == "mha" else gqa_tiny_dir
    lean = HFEngine.from_pretrained(str(path), batch_size=16, show_progress=False, lean_decode=True)
    plain = HFEngine(lean.model, lean.tokenizer, batch_size=16, show_progress=False, lean_decode=False)
    assert supports(lean.model) and lean._use_lean() and not plain._use_lean()
    # an eos that some rows hit early: rows leave the batch, and the lean buffers compact
    probe = plain.generate(PROMPTS, SamplingParams(n=4, max_new_tokens=20, seed=9))
    eos = probe[1][0].token_ids[2]
    for eng in (lean, plain):
        eng.eos_ids = {eos}
    params = SamplingParams(n=4, max_new_tokens=20, temperature=0.8, top_p=0.95, seed=9)
    a, b = lean.generate(PROMPTS, params), plain.generate(PROMPTS, params)
    assert ids(a) == ids(b)
    lengths = {len(c.token_ids) for comps in a for c in comps}
    assert len(lengths) > 1, "no row finished early: the test would not exercise leaving rows"
    for ca, cb in ((x, y) for xs, ys in zip(a, b) for x, y in zip(xs, ys)):
        assert ca.text == cb.text and ca.finish_reason == cb.finish_reason
        assert max(abs(p - q) for p, q in zip(ca.logprobs, cb.logprobs)) < 1e-5
        ref = teacher_forced_logprobs(lean.model, ca.prompt_token_ids, ca.token_ids)
        assert max(abs(p - q) for p, q in zip(ref, ca.logprobs)) < 1e-4


def test_lean_decode_setting_is_checked(engine):
    with pytest.raises(ValueError, match="lean_decode must be"):
        HFEngine(engine.model, engine.tokenizer, lean_decode="yes")
    wrapped = torch.nn.Module()
    wrapped.config = engine.model.config
    from tailor_evo.generation.lean_decode import supports

    assert not supports(wrapped)   # not a LlamaForCausalLM (as a peft wrapper is not)
    strict = HFEngine(engine.model, engine.tokenizer, lean_decode=True)
    strict.model = wrapped
    with pytest.raises(ValueError, match="not a plain Llama model"):
        strict._use_lean()


@pytest.mark.parametrize("which", ["mha", "gqa"])
def test_lean_decoder_shared_prompt_layout_matches_per_row_copies(which, tiny_dir, gqa_tiny_dir):
    """The shared-prompt layout, its compaction and its switch to per-row copies give the logits
    of a decoder that holds one copy of the prompt per row."""
    from tailor_evo.generation.lean_decode import LeanDecoder

    eng = HFEngine.from_pretrained(str(tiny_dir if which == "mha" else gqa_tiny_dir), show_progress=False)
    prompts = sorted((eng.encode(p) for p in PROMPTS[:3]), key=len, reverse=True)
    with torch.inference_mode():
        cache, _, mask = eng._prefill(prompts, 16)
        keys, values = [la.keys for la in cache.layers], [la.values for la in cache.layers]
        shared = LeanDecoder(eng.model, keys, values, mask, capacity=16, group=4)
        rows = LeanDecoder(eng.model, [k.repeat_interleave(4, 0) for k in keys],
                           [v.repeat_interleave(4, 0) for v in values], mask.repeat_interleave(4, 0), capacity=16)
        pos = mask.sum(1).repeat_interleave(4)          # next position of every row
        live = list(range(12))
        g = torch.Generator().manual_seed(0)
        # step 3: prompt 0 keeps one sample (9 live: compacts, still shared); step 6: prompt 1 too
        # (6 live in 12 slots: each row gets its own copy)
        drops = {3: [1, 2, 3], 6: [5, 6, 7]}
        for step in range(10):
            if step in drops:
                keep = [j for j, r in enumerate(live) if r not in drops[step]]
                live = [live[j] for j in keep]
                idx = torch.tensor(keep)
                pos = pos[idx]
                shared.select(idx)
                rows.select(idx)
            tokens = torch.randint(3, 300, (len(live),), generator=g)
            a, b = shared.step(tokens, pos), rows.step(tokens, pos)
            assert a.shape == (len(live), b.shape[1])
            assert torch.allclose(a, b, atol=1e-5), step
            pos = pos + 1
        assert not shared.shared    # it left the shared layout at step 6
