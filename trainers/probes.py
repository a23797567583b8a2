"""Can a model read a KK puzzle? Teacher-forced name-copying measures.

A Knights-and-Knaves answer must name the puzzle's own people in introduction
order, so a model that cannot copy names from its prompt scores zero however
well it reasons. Two measures, both greedy next-token accuracy on name tokens:

* **answer position**: the prompt followed by the gold answer list
  ``(1) NAME is a ... (2) NAME ...``. The introduction fixes which name comes
  next, so a reader reaches 1.0. This is the skill an answer needs.
* **question position**: every name in the question after the introduction.
  Which person a statement mentions cannot be predicted, so the ceiling is well
  below 1: 1/people (0.333 at 3 people) for a model that knows the set of names.
* **role transfer**: the prompt, then a ``<think>`` part that states a role for
  every person (random roles, in a random order and wording), then the answer that
  repeats them; accuracy on the answer's role words. The roles are given, so a
  reader reaches 1.0, while a model that ignores them stays at the majority rate
  (about 0.5). An answer must copy the conclusions of its own reasoning this way.

Used by ``models pretrain`` (periodic probe) and ``benchmarks/name_copy.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class NameCopy:
    answer_accuracy: float       # answer-position measure
    answer_tokens: int
    question_accuracy: float     # question-position measure
    question_tokens: int
    role_accuracy: float = 0.0   # role-transfer measure
    role_tokens: int = 0

    def to_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}answer_copy": self.answer_accuracy, f"{prefix}question_copy": self.question_accuracy,
                f"{prefix}role_copy": self.role_accuracy}


def _name_ids(tokenizer, names: list[str]) -> dict[int, str]:
    """First token of each name after a space (or newline-free start) to the name."""
    out = {}
    for n in names:
        for text in (" " + n, n):
            ids = tokenizer(text, add_special_tokens=False).input_ids
            if ids:
                out[ids[0]] = n
    return out


@torch.no_grad()
def name_copy(model, tokenizer, problems: list, task) -> NameCopy:
    """Both measures on KK ``problems`` (greedy, teacher-forced, one forward pass per problem)."""
    from tailor_evo.tasks.kk import text as T

    was_training = model.training
    model.eval()
    a_hit = a_tot = q_hit = q_tot = role_hit = role_tot = 0
    try:
        for p in problems:
            names = list(p.meta["names"])
            prompt = task.prompt(p)
            intro = p.question.split("inhabitants:")[0] + "inhabitants: " + T.list_names(names) + "."
            prefix = prompt[: prompt.index(p.question)] + intro
            answer_prefix = prompt + " " + "<answer> "
            text = answer_prefix + p.answer_text + " </answer>"
            ids = tokenizer(text, return_tensors="pt").input_ids.to(next(model.parameters()).device)
            start_q = len(tokenizer(prefix).input_ids)
            start_a = len(tokenizer(answer_prefix).input_ids)
            end_q = len(tokenizer(prompt).input_ids)
            pred = model(ids).logits[0].argmax(-1)
            targets = _name_ids(tokenizer, names)
            for i in range(start_q - 1, ids.shape[1] - 1):
                t = ids[0, i + 1].item()
                if t not in targets:
                    continue
                hit = int(pred[i].item() == t)
                if i + 1 >= start_a:
                    a_hit, a_tot = a_hit + hit, a_tot + 1
                elif i + 1 < end_q:
                    q_hit, q_tot = q_hit + hit, q_tot + 1
            r_hit, r_tot = _role_transfer(model, tokenizer, task, p, names)
            role_hit, role_tot = role_hit + r_hit, role_tot + r_tot
    finally:
        model.train(was_training)
    return NameCopy(a_hit / max(a_tot, 1), a_tot, q_hit / max(q_tot, 1), q_tot,
                    role_hit / max(role_tot, 1), role_tot)


def _role_transfer(model, tokenizer, task, problem, names: list[str]) -> tuple[int, int]:
    """(hits, role tokens) of the role-transfer measure on one problem (its own seeded roles)."""
    import random

    from tailor_evo.tasks.kk import text as T
    from tailor_evo.tasks.kk.reading import role_statements

    rng = random.Random(problem.id)          # a local stream: the probe never touches the global RNGs
    roles = [rng.random() < 0.5 for _ in names]
    prefix = f"{task.prompt(problem)} <think> {role_statements(rng, names, roles)} </think> <answer> "
    text = prefix + T.solution_text_format(names, roles) + " </answer>"
    ids = tokenizer(text, return_tensors="pt").input_ids.to(next(model.parameters()).device)
    start = len(tokenizer(prefix).input_ids)
    pred = model(ids).logits[0].argmax(-1)
    role_ids = {tokenizer(" " + w, add_special_tokens=False).input_ids[0] for w in ("knight", "knave")}
    hit = tot = 0
    for i in range(start - 1, ids.shape[1] - 1):
        if ids[0, i + 1].item() in role_ids:
            hit, tot = hit + int(pred[i].item() == ids[0, i + 1].item()), tot + 1
    return hit, tot
