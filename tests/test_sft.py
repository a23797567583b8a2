"""SFT: completion-only labels, located input errors, a few-step run, and exact resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tailor_evo.errors import InputError
from tailor_evo.rundir import RunDir
from tailor_evo.trainers import loop as loop_module
from tailor_evo.trainers.checkpoint import load_backbone
from tailor_evo.trainers.data import IGNORE_INDEX, collate, encode_example, load_sft_data
from tailor_evo.trainers.sft import SFTConfig, train_sft

CORPUS = ["Question: add two and three. Assistant: <think> two plus three is five </think> <answer> 5 </answer>",
          "Question: add one and one. Assistant: <think> one plus one is two </think> <answer> 2 </answer>"] * 20


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from tailor_evo.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny"), seed=0, hidden_size=32, layers=2, heads=2,
                      vocab_size=400, max_positions=512, corpus=CORPUS)


def write_data(path: Path, n: int = 12) -> Path:
    words = ["one", "two", "three", "four"]
    with open(path, "w") as fh:
        for i in range(n):
            a, b = words[i % 4], words[(i * 3) % 4]
            fh.write(json.dumps({"id": f"r{i}", "prompt": f"Question: add {a} and {b}.\nAssistant:",
                                 "completion": f" <think> {a} plus {b} </think> <answer> {i} </answer>",
                                 "correct": True}) + "\n")
    return path


def test_completion_only_labels(tiny_dir):
    _, tok = load_backbone(str(tiny_dir))
    ex = encode_example("Question: add one and two.\nAssistant:", " <think> three </think>", tok,
                        prompt_has_specials=False)
    n_prompt = len(tok("Question: add one and two.\nAssistant:")["input_ids"])
    completion = tok(" <think> three </think>", add_special_tokens=False)["input_ids"]
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex.labels[n_prompt:] == completion + [tok.eos_token_id]
    assert ex.input_ids == ex.input_ids[:n_prompt] + completion + [tok.eos_token_id]
    # padding in a batch is neither attended nor supervised
    short = encode_example("Question: x\nAssistant:", " y", tok, prompt_has_specials=False)
    batch = collate([ex, short], pad_id=tok.pad_token_id)
    pad_cols = batch["attention_mask"][1] == 0
    assert pad_cols.any()
    assert torch.all(batch["labels"][1][pad_cols] == IGNORE_INDEX)
    assert int((batch["labels"][0] != IGNORE_INDEX).sum()) == len(completion) + 1


def test_chat_messages_rendered_with_template_only_when_chat_is_set(tiny_dir, tmp_path):
    _, tok = load_backbone(str(tiny_dir))
    path = tmp_path / "d.jsonl"
    rec = {"prompt": "the plain prompt", "completion": " <answer> 1 </answer>",
           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "one?"}]}
    path.write_text(json.dumps(rec) + "\n")

    def prompt_text(chat: bool) -> str:
        ex = load_sft_data(path, tok, 256, chat=chat).examples[0]
        return tok.decode([t for t, lab in zip(ex.input_ids, ex.labels) if lab == IGNORE_INDEX])

    assert "User: one?" in prompt_text(True) and "plain" not in prompt_text(True)
    assert "plain prompt" in prompt_text(False) and "one?" not in prompt_text(False)
    path.write_text(json.dumps({k: v for k, v in rec.items() if k != "messages"}) + "\n")
    assert prompt_text(True) == prompt_text(False)          # a string prompt alone is used as written


@pytest.mark.parametrize("chat", [False, True])
def test_sft_trains_on_the_prompt_tokens_evaluation_will_show(tiny_dir, tmp_path, chat):
    """Whatever ``chat`` says, an SFT example's prompt is token for token what the generation
    engine feeds the model for the same problem at evaluation and in RL, also for a
    tokenizer whose chat template is not the plain layout (SmolLM2's)."""
    from tailor_evo.generation.base import encode_prompt
    from tailor_evo.tasks import get_task

    _, tok = load_backbone(str(tiny_dir))
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    task = get_task("kk")
    problems = task.generate(3, 0, levels=[3])
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"prompt": task.prompt(p), "messages": task.prompt(p, chat=True),
                                        "completion": " <answer> x </answer>"}) + "\n" for p in problems))
    examples = load_sft_data(path, tok, 4096, chat=chat).examples
    for p, ex in zip(problems, examples, strict=True):
        prompt_ids = [t for t, lab in zip(ex.input_ids, ex.labels) if lab == IGNORE_INDEX]
        assert prompt_ids == encode_prompt(tok, task.prompt(p, chat=chat))
    assert ("<|system|>" in tok.decode(prompt_ids)) == chat


def test_a_chat_prompt_without_chat_is_named(tiny_dir, tmp_path):
    _, tok = load_backbone(str(tiny_dir))
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": [{"role": "user", "content": "one?"}], "completion": " 1"}) + "\n")
    with pytest.raises(InputError) as err:
        load_sft_data(path, tok, 256)
    assert (err.value.line, err.value.field) == (1, "prompt") and "chat=true" in err.value.detail
    assert len(load_sft_data(path, tok, 256, chat=True).examples) == 1


def test_bad_records_are_located(tiny_dir, tmp_path):
    _, tok = load_backbone(str(tiny_dir))
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "a", "completion": "b"}) + "\n" + json.dumps({"prompt": "a"}) + "\n")
    with pytest.raises(InputError) as err:
        load_sft_data(path, tok, 64)
    assert err.value.line == 2 and err.value.field == "completion"
    path.write_text(json.dumps({"prompt": 3, "completion": "b"}) + "\n")
    with pytest.raises(InputError) as err:
        load_sft_data(path, tok, 64)
    assert err.value.field == "prompt"


def test_too_long_and_incorrect_records_are_counted(tiny_dir, tmp_path):
    _, tok = load_backbone(str(tiny_dir))
    path = tmp_path / "d.jsonl"
    recs = [{"prompt": "Question:", "completion": " two"}, {"prompt": "Question:", "completion": " two " * 50},
            {"prompt": "Question:", "completion": " one", "correct": False}]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    data = load_sft_data(path, tok, 32)
    assert len(data.examples) == 1 and data.total == 3 and sum(data.skipped.values()) == 2


def _cfg(tiny_dir: Path, data: Path, **kw) -> SFTConfig:
    base = dict(model=str(tiny_dir), data=str(data), seed=3, max_steps=4, batch_size=2, grad_accum=2, lr=5e-3,
                warmup_ratio=0.25, save_every=2, threads=1)
    base.update(kw)
    return SFTConfig(**base)


def _params(model_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = load_backbone(str(model_dir))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_sft_run_writes_model_metrics_and_report(tiny_dir, tmp_path):
    data = write_data(tmp_path / "d.jsonl")
    run = RunDir.create(tmp_path / "run")
    out = train_sft(_cfg(tiny_dir, data, max_steps=0, epochs=2), run)
    assert (out / "config.json").exists() and list(out.glob("*.safetensors"))
    assert (out / "tokenizer.json").exists() or (out / "tokenizer_config.json").exists()
    rows = run.read_metrics()
    # 12 records, 2 x 2 per step -> 3 steps per epoch, 2 epochs
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] > 0 and r["tokens"] > 0 for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert (run.path / "report.md").exists() and (run.plots / "sft_loss.png").exists()
    assert (run.path / "config.yaml").exists()
    before, after = _params(tiny_dir), _params(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_sft_resume_matches_uninterrupted_run(tiny_dir, tmp_path, monkeypatch):
    data = write_data(tmp_path / "d.jsonl")
    full = train_sft(_cfg(tiny_dir, data), RunDir.create(tmp_path / "full"))

    original = loop_module.save_checkpoint

    def crash_after_first(root, state, *args, **kwargs):
        path = original(root, state, *args, **kwargs)
        if state.step == 2:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after_first)
    run = RunDir.create(tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        train_sft(_cfg(tiny_dir, data), run)
    monkeypatch.setattr(loop_module, "save_checkpoint", original)
    torch.manual_seed(12345)   # a resumed process starts from a different global RNG state
    resumed = train_sft(_cfg(tiny_dir, data), RunDir.create(tmp_path / "resumed", resume=True), resume=True)

    a, b = _params(full), _params(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4]
    # and the run really trained past the checkpoint (the comparison is not vacuous)
    assert any(not torch.equal(_params(tiny_dir)[k], b[k]) for k in b)


def test_lora_sft_exports_a_merged_plain_model(tiny_dir, tmp_path):
    pytest.importorskip("peft")
    from tailor_evo.trainers.base import LoraSettings

    data = write_data(tmp_path / "d.jsonl")
    cfg = _cfg(tiny_dir, data, max_steps=2, lr=5e-2, lora=LoraSettings(enabled=True, r=4, alpha=8))
    out = train_sft(cfg, RunDir.create(tmp_path / "lora"))
    assert not (out / "adapter_config.json").exists()
    before, after = _params(tiny_dir), _params(out)       # loads as a plain model
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed)   # only the adapted projections moved


def test_packed_and_bucketed_batches_give_the_loss_and_gradients_of_the_padded_one(tmp_path):
    """Block-diagonal packing and length buckets are exact: same loss, same gradients as right-padded rows."""
    import torch

    from tailor_evo.models.tiny import build_tiny
    from tailor_evo.trainers.data import SFTExample, collate, collate_buckets, collate_packed
    from tailor_evo.trainers.losses import sft_loss
    from tailor_evo.trainers.sft import forward_logits

    path = build_tiny(tmp_path / "m", hidden_size=32, layers=2, heads=2, vocab_size=320,
                      corpus=["Rosa is a knight. Mei is a knave."] * 5)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    examples = []
    for n_prompt, n_completion in [(5, 7), (9, 3), (4, 12), (6, 6), (3, 2)]:
        ids = torch.randint(3, 300, (n_prompt + n_completion,), generator=g).tolist()
        examples.append(SFTExample(ids, [-100] * n_prompt + ids[n_prompt:], "x"))

    def loss_and_grads(batch):
        model.zero_grad()
        labels = batch["labels"]
        loss = sft_loss(forward_logits(model, batch), labels, normaliser=int((labels[:, 1:] != -100).sum()))
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    padded = collate(examples, pad_id=0)
    packed = collate_packed(examples, pad_id=0, row_len=24)
    assert packed["input_ids"].shape[0] < len(examples)            # it did pack
    assert int((packed["labels"] != -100).sum()) == int((padded["labels"][:, 1:] != -100).sum())
    loss_a, grads_a = loss_and_grads(padded)
    loss_b, grads_b = loss_and_grads(packed)
    assert torch.allclose(loss_a, loss_b, atol=1e-6)
    for a, b in zip(grads_a, grads_b):
        assert torch.allclose(a, b, atol=1e-6)
    # bucketed: sorted, right-padded micro-batches without an attention mask, one normaliser for all
    buckets = collate_buckets(examples, pad_id=0, max_tokens=30)
    assert len(buckets) > 1 and all(b["input_ids"].numel() <= 30 for b in buckets)
    assert all("attention_mask" not in b for b in buckets)
    assert sum(b["input_ids"].shape[0] for b in buckets) == len(examples)
    supervised = int((padded["labels"][:, 1:] != -100).sum())
    model.zero_grad()
    loss_c = sum(sft_loss(forward_logits(model, b), b["labels"], normaliser=supervised) for b in buckets)
    loss_c.backward()
    assert torch.allclose(loss_a, loss_c.detach(), atol=1e-6)
    for a, p in zip(grads_a, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6)


def test_sft_batching_settings_are_checked(tmp_path):
    from tailor_evo.trainers.sft import SFTConfig, _validate

    with pytest.raises(InputError, match="valid: bucketed, packed, padded"):
        _validate(SFTConfig(data="x.jsonl", batching="sorted"))
    with pytest.raises(InputError, match="bucket_tokens 512 is below max_length 1024"):
        _validate(SFTConfig(data="x.jsonl", bucket_tokens=512))
