"""Model cards: written at export, readable by huggingface_hub, updated by evaluations."""

from __future__ import annotations

from types import SimpleNamespace

from huggingface_hub import ModelCard

from tailor_evo.trainers.model_card import (
    CardEval,
    CardInfo,
    add_eval_results,
    card_results,
    model_dir_of,
    results_from_metrics,
    write_model_card,
)


def _info(**kw) -> CardInfo:
    base = dict(stage="sft", base_model="tiny-base", task="kk", seed=3, recipe={"lr": 0.002, "epochs": 4},
                data={"source": "data.jsonl", "records_used": 12,
                      "warm_start": [{"method": "tailor", "n_selected": 12, "coverage_selected": 40.0}]},
                results=[CardEval("kk", 3, 0.25, 16, "held-out, during training", 3)],
                command="tailor-evo train sft --data data.jsonl")
    base.update(kw)
    return CardInfo(**base)


def test_card_loads_with_huggingface_hub_and_says_what_made_the_model(tmp_path):
    path = write_model_card(tmp_path, _info())
    card = ModelCard.load(path)
    meta = card.data.to_dict()
    assert meta["base_model"] == "tiny-base" and "tailor-evo" in meta["tags"]
    assert meta["tailor_evo"]["seed"] == 3 and meta["tailor_evo"]["recipe"]["lr"] == 0.002
    assert meta["tailor_evo"]["command"] == "tailor-evo train sft --data data.jsonl"
    [result] = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_type) == ("accuracy", 0.25, "tailor-evo/kk")
    assert "method `tailor`" in card.text and "tailor-evo train sft --data data.jsonl" in card.text
    assert "0.250" in card.text


def test_evaluations_are_added_and_a_repeat_replaces_the_old_figure(tmp_path):
    write_model_card(tmp_path, _info(results=[]))
    assert "Not evaluated yet" in ModelCard.load(tmp_path / "README.md").text
    per_level = [SimpleNamespace(level=3, accuracy=0.5, n_problems=10), SimpleNamespace(level=4, accuracy=0.1,
                                                                                         n_problems=10)]
    overall = SimpleNamespace(accuracy=0.3, n_problems=20)
    assert add_eval_results(tmp_path, card_results(per_level, overall, "kk", seed=0))
    assert add_eval_results(tmp_path, card_results(per_level[:1], overall, "kk", split="test.jsonl"))
    per_level[0].accuracy = 0.6
    assert add_eval_results(tmp_path, card_results(per_level, overall, "kk", seed=0))
    results = {(r.dataset_config, r.dataset_split): r.metric_value
               for r in ModelCard.load(tmp_path / "README.md").data.eval_results}
    assert results == {("level-3", "held-out"): 0.6, ("level-4", "held-out"): 0.1, ("level-all", "held-out"): 0.3,
                       ("level-3", "test.jsonl"): 0.5}


def test_a_directory_without_a_tailor_evo_card_is_left_alone(tmp_path):
    assert not add_eval_results(tmp_path, [CardEval("kk", 3, 0.5, 4)])
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\nsomeone else's model\n")
    assert not add_eval_results(tmp_path, [CardEval("kk", 3, 0.5, 4)])
    assert (tmp_path / "README.md").read_text() == "---\nlicense: mit\n---\nsomeone else's model\n"


def test_lineage_follows_earlier_cards(tmp_path):
    sft_dir = tmp_path / "sft"
    sft_dir.mkdir()
    write_model_card(sft_dir, _info())
    rl_dir = tmp_path / "rl"
    rl_dir.mkdir()
    write_model_card(rl_dir, _info(stage="rl", base_model=str(sft_dir)))
    meta = ModelCard.load(rl_dir / "README.md").data.to_dict()
    assert meta["tailor_evo"]["lineage"] == [str(sft_dir), "tiny-base"]
    assert meta["base_model"] == "tiny-base"


def test_helpers():
    rows = [{"step": 1, "loss": 1.0}, {"step": 2, "eval_accuracy": 0.5, "eval_accuracy_3": 0.5, "eval_n": 8.0}]
    [r] = results_from_metrics(rows, "kk", 1)
    assert (r.level, r.accuracy, r.n_problems) == ("3", 0.5, 8)
    assert results_from_metrics([{"step": 1}], "kk", 1) == []
    assert model_dir_of("tiny-base") is None and model_dir_of(None) is None
