"""The teacher-forced decision-token benchmark: which tokens it scores, and how."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("decision_tokens", ROOT / "benchmarks" / "decision_tokens.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules["decision_tokens"] = bench        # dataclasses look their module up while the file runs
_spec.loader.exec_module(bench)


def test_igsm_numbers_are_sorted_into_operands_results_and_values():
    text = ("<think> Define A's B as x = A's C + A's D; A's C is q = 7, A's D is r = 19; "
            "7 + 19 = 26 mod 23 = 3, so x = 3. </think> <answer> 3 </answer>")
    got = [(text[s:e], c) for s, e, c in bench.igsm_number_spans(text)]
    assert got == [("7", "value"), ("19", "value"), ("7", "operand"), ("19", "operand"), ("26", "raw"),
                   ("3", "result"), ("3", "value"), ("3", "answer")]
    compact = "<think> Define A's B as x; so x = q + r = 7 + 19 = 3. </think> <answer> 3 </answer>"
    assert [c for _, _, c in bench.igsm_number_spans(compact)] == ["operand", "operand", "result", "answer"]


class _Oracle(torch.nn.Module):
    """Predicts the true next token at the positions it is told, token 0 elsewhere."""

    def __init__(self, ids: list[int], right: set[int], vocab: int) -> None:
        super().__init__()
        self.ids, self.right, self.vocab = ids, right, vocab

    def forward(self, input_ids):
        logits = torch.zeros(1, input_ids.shape[1], self.vocab)
        for i in range(input_ids.shape[1] - 1):
            logits[0, i, self.ids[i + 1] if i + 1 in self.right else 0] = 1.0
        return type("Out", (), {"logits": logits})()


def test_decision_accuracy_scores_only_the_marked_tokens():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ROOT / "tailor_evo" / "models" / "weights" / "tiny-base")
    rec = {"prompt": "User: q\nAssistant:",
           "completion": " <think> 7 + 19 = 26 mod 23 = 3, so x = 3. </think> <answer> 3 </answer>"}
    prompt_ids = tok(rec["prompt"], add_special_tokens=False).input_ids
    enc = tok(rec["completion"], add_special_tokens=False, return_offsets_mapping=True)
    ids = prompt_ids + enc.input_ids
    marked = [k for k, (s, e) in enumerate(enc.offset_mapping)
              if bench.igsm_value_tokens(rec, rec["completion"], s, e) is not None]
    assert marked and len(marked) < len(enc.input_ids)
    perfect = bench.decision_accuracy(_Oracle(ids, set(range(len(ids))), len(tok)), tok, [rec],
                                      bench.igsm_value_tokens)
    assert perfect.total.tokens == len(marked) and perfect.total.accuracy == 1.0
    half = {len(prompt_ids) + k for k in marked[::2]}
    some = bench.decision_accuracy(_Oracle(ids, half, len(tok)), tok, [rec], bench.igsm_value_tokens)
    assert some.total.hits == len(half) and set(some.by_category) >= {"operand", "raw", "result", "answer"}


def test_generated_records_verify_in_both_renderings_and_explicit_ones_are_longer():
    compact = bench.igsm_records(10, 3, [3, 5], "compact")
    explicit = bench.igsm_records(10, 3, [3, 5], "explicit")
    assert [r["prompt"] for r in compact] == [r["prompt"] for r in explicit]
    assert sum(len(r["completion"]) for r in explicit) > sum(len(r["completion"]) for r in compact)
    assert any(" mod 23 = " in r["completion"] for r in explicit)


def test_kk_detail_splits_look_ups_by_case_and_marks_restated_claims():
    text = ("<think> Case: Ann knight, Bo knave. Ann said: Bo is not a knight: Bo knave, T; Ann is a knave: "
            "Ann knight, F; T or F, T. Ann knight, claim T, so ok. This case fails. Case: Ann knave, Bo knight. "
            "Ann said: Bo is a knight: Bo knight, T. Ann knave, claim T, so contradiction. </think> "
            "<answer> (1) Ann is a knave </answer>")
    enc = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]      # one "token" per word
    got = [(text[s:e].strip(",.:;"), c) for s, e in enc if (c := bench.kk_detailed({}, text, s, e))]
    assert [w for w, c in got if c == "restate"] == ["Bo", "not", "knight", "Ann", "knave", "or", "Bo", "knight"]
    assert [(w, c) for w, c in got if c.startswith("lookup")] == [
        ("knave", "lookup_first"), ("knight", "lookup_first"), ("knight", "lookup_later")]
    assert ("T", "value") in got and ("ok", "outcome") in got


def test_kk_detail_marks_the_quoted_clause_and_the_atoms_copied_from_it():
    text = ("<think> Case: Ann knight, Bo knave. Ann said: Bo is not a knight or Ann is a knave. Bo is not a "
            "knight: Bo knave, T; Ann is a knave: Ann knight, F; T or F, T. Ann knight, claim T, so ok. </think>")
    enc = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    got = [(text[s:e].strip(",.:;"), c) for s, e in enc if (c := bench.kk_detailed({}, text, s, e))]
    assert [w for w, c in got if c == "quote"] == ["Bo", "is", "not", "a", "knight", "or", "Ann", "is", "a", "knave"]
    assert [w for w, c in got if c == "restate"] == ["Bo", "not", "knight", "Ann", "knave", "or"]
    assert ("knave", "lookup_first") in got and ("ok", "outcome") in got


def test_kk_detail_marks_the_connective_named_before_the_atoms():
    text = ("<think> Case: Ann knight, Bo knave. Ann said (if then): Bo is a knight: Bo knave, F; Ann is a knave: "
            "Ann knight, F; if F then F, T. Ann knight, claim T, so ok. </think>")
    enc = [(m.start(), m.end()) for m in re.finditer(r"\w+|[^\w\s]", text)]   # words and marks
    got = [(text[s:e].strip(",.:;()"), c) for s, e in enc if (c := bench.kk_detailed({}, text, s, e))]
    assert [w for w, c in got if c == "shape"] == ["if", "then"]
    assert [w for w, c in got if c == "restate"][:3] == ["Bo", "knight", "Ann"]
    assert ("F", "value") in got and ("ok", "outcome") in got


def test_igsm_detail_marks_what_a_trace_reads_from_the_problem():
    """--detail on iGSM: the quantity a "Define" names, its definition, a quoted sentence; the
    numbers elsewhere keep their categories."""
    text = ("<think> Read: The number of each A's B equals the sum of each A's C and each D's E. "
            "Define A's B as x = A's C + D's E; Read: The number of each A's C equals 7. Define A's C as q; "
            "so q = 7. </think> <answer> 7 </answer>")
    spans = {(text[s:e], c) for s, e, c in bench.igsm_detail_spans(text)}
    assert spans == {(" A's B", "quote_subject"), (" the sum of each A's C and each D's E.", "quote_rhs"),
                     ("A's B", "define_name"), ("A's C + D's E", "define_expr"),
                     (" A's C", "quote_subject"), (" 7.", "quote_rhs"), ("A's C", "define_name")}
    at = text.index("A's C + D's E")
    assert bench.igsm_detailed({}, text, at, at + 3) == "define_expr"
    assert bench.igsm_detailed({"abstract": ["A's B"]}, text, at, at + 3) == "define_expr_abstract"
    assert bench.igsm_detailed({"abstract": ["A's C"]}, text, at, at + 3) == "define_expr"   # A's B is defined here
    seven = text.index("equals 7") + len("equals")
    assert bench.igsm_detailed({}, text, seven, seven + 2) == "quote_rhs"   # " 7": a quoted number is a copy
    last = text.rindex("= 7")
    assert bench.igsm_detailed({}, text, last + 2, last + 3) == "value"
    assert bench.igsm_detailed({}, text, text.index("so q"), text.index("so q") + 2) is None


def test_igsm_detail_reads_text_without_a_think_block():
    """A drill's document (quotes after the problem, no <think>) is scored the same way."""
    text = "Read: The number of each A's C equals 7. Read: The number of each D's E equals each A's C."
    assert [c for _, _, c in bench.igsm_detail_spans(text)] == ["quote_subject", "quote_rhs"] * 2


def test_prompts_are_tokenised_as_sft_tokenises_them_through_the_chat_template():
    """With ``chat=True`` a record's ``messages`` go through the tokenizer's chat template, as SFT
    with ``chat: true`` renders them; by default the plain ``prompt``, as SFT's default."""
    from transformers import AutoTokenizer

    from tailor_evo.trainers.data import render_prompt

    tok = AutoTokenizer.from_pretrained(ROOT / "tailor_evo" / "models" / "weights" / "tiny-base")
    rec = {"prompt": "User: a plain prompt\nAssistant:", "messages": [{"role": "user", "content": "other words"}],
           "completion": " <think> so x = 3. </think> <answer> 3 </answer>"}
    seen: list[list[int]] = []

    class Recorder(torch.nn.Module):
        def forward(self, input_ids):
            seen.append(input_ids[0].tolist())
            return type("Out", (), {"logits": torch.zeros(1, input_ids.shape[1], len(tok))})()

    bench.decision_accuracy(Recorder(), tok, [rec], bench.igsm_value_tokens, chat=True)
    text, templated = render_prompt(rec, tok, chat=True, source="test", line=1)
    assert templated and "other words" in text and "plain prompt" not in text
    expected = tok(text, add_special_tokens=False).input_ids
    assert seen[0][: len(expected)] == expected
    bench.decision_accuracy(Recorder(), tok, [rec], bench.igsm_value_tokens)    # the default: the plain prompt
    plain = tok("User: a plain prompt\nAssistant:").input_ids
    assert seen[1][: len(plain)] == plain


def test_generated_igsm_records_name_their_abstract_quantities():
    """The abstract names a record carries are the graph's abstract parameters, so the split of
    definitions by kind follows the problem's structure, not a guess from the words."""
    from tailor_evo.tasks.igsm import IGSMTask, graph_of

    records = bench.igsm_records(6, 3, [3], "explicit")
    problems = IGSMTask().generate(6, 3, levels=[3])
    for record, problem in zip(records, problems):
        g = graph_of(problem)
        assert record["abstract"] == sorted(p.name for p in g.params if p.kind == "abstract")
    assert any(name in r["abstract"] for r in records   # the split is not empty on these problems
               for name in re.findall(r"Define (.+?) as \w+ = ", r["completion"]))
