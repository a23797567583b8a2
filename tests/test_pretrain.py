"""The pretraining corpus (reading, never solving), the packer, and the pretraining loop."""

import random
import re
from pathlib import Path

import pytest

from tailor_evo.errors import InputError
from tailor_evo.models.corpus import Corpus, CorpusMix, procedural_text
from tailor_evo.tasks import get_task
from tailor_evo.tasks.base import ANSWER_CLOSE, ANSWER_OPEN, THINK_OPEN


def _answer_block(text: str) -> str | None:
    m = re.search(re.escape(ANSWER_OPEN) + r".*?" + re.escape(ANSWER_CLOSE), text, re.S)
    return m.group(0) if m else None


def test_kk_reading_text_carries_no_information_about_the_solution():
    """Checked by the solver: guessed role lists match the gold assignment at chance rate (1 in 2^people),
    and no reasoning step of the reference chain of thought appears."""
    task = get_task("kk")
    problems = task.generate(1200, 11, levels=[3])
    rng = random.Random(0)
    matches = expected = 0.0
    for p in problems:
        text = task.reading_text(p, rng)
        assert text.startswith(p.question) and THINK_OPEN not in text
        block = _answer_block(text)
        assert block is not None, "the answer-format exercise is always present"
        verdict = task.verify(p, f"<think> x </think> {block}")
        assert verdict.format_ok
        matches += verdict.correct
        expected += 0.5 ** len(p.meta["names"])
        for step in task.reference_steps(p):
            assert step not in text
    # binomial: mean 1200 / 8 = 150, sd ~ 11.5; a guess that looked at the gold would be far off
    assert abs(matches - expected) < 5 * expected ** 0.5, (matches, expected)


def test_role_transfer_copies_the_stated_roles_which_match_the_gold_only_at_chance():
    """The varied layout's transfer exercise: the answer repeats the roles the line before it
    stated (checked person by person), and those roles are as uninformative as a guess."""
    from tailor_evo.tasks.kk.reading import transfer_text

    task = get_task("kk")
    problems = task.generate(1200, 12, levels=[3])
    rng = random.Random(1)
    matches = 0
    for p in problems:
        names = p.meta["names"]
        stated, block = transfer_text(rng, names).split("\n", 1)
        said = dict(re.findall(r"(\w+)(?: is a | = |: | must be a )(knight|knave)\.", stated))
        verdict = task.verify(p, f"<think> x </think> {block}")
        assert verdict.format_ok and set(said) == set(names)
        assert {n: ("knight" if r else "knave") for n, r in verdict.parsed.items()} == said
        matches += verdict.correct
    expected = len(problems) / 8
    assert abs(matches - expected) < 5 * expected ** 0.5, (matches, expected)
    assert not any(stated_then_answer_re().search(task.reading_text(p, rng, varied=True)) for p in problems[:100])
    varied = [task.reading_text(p, rng, varied=True, transfer=True) for p in problems[:200]]
    assert 60 < sum(stated_then_answer_re().search(t) is not None for t in varied) < 140   # about half of them


def stated_then_answer_re() -> re.Pattern:
    return re.compile(r"(?:(?:So )?\w+(?: is a | = |: | must be a )(?:knight|knave)\. ?){3}\n<answer>")


def test_role_drills_bind_each_person_to_the_stated_role():
    from tailor_evo.models.corpus import role_drill_text
    from tailor_evo.tasks.kk.verifier import parse_answer

    rng = random.Random(3)
    for _ in range(50):
        for drill in re.findall(r"You meet .*?</answer>", role_drill_text(rng), re.S):
            intro, rest = drill.split(". ", 1)
            names = re.findall(r"[A-Z][a-z]+", intro.split(":", 1)[1])
            stated, answer = rest.split("\n<answer>", 1)
            said = dict(re.findall(r"(\w+)(?: is a | = |: | must be a )(knight|knave)\.", stated))
            parsed, reason = parse_answer(answer.removesuffix("</answer>"), names)
            assert parsed is not None, reason
            assert said == {n: "knight" if parsed[n] else "knave" for n in names}
    mix = CorpusMix(tasks={"kk": 0.5}, procedural=0.0, role_drills=0.5)
    sources = [Corpus(mix, seed=0).document(0, j).source for j in range(200)]
    assert 60 < sources.count("roles") < 140
    with pytest.raises(InputError, match="role_drills"):
        CorpusMix(role_drills=-1).check()


def test_igsm_reading_text_computes_nothing():
    """iGSM exercises only copy the question's text: no number the question does not state, no answer tag."""
    task = get_task("igsm")
    rng = random.Random(0)
    for p in task.generate(200, 5):
        text = task.reading_text(p, rng)
        exercises = text[len(p.question):]
        assert ANSWER_OPEN not in text and "Define" not in text
        stated = set(re.findall(r"\d+", p.question))
        assert set(re.findall(r"\d+", exercises)) <= stated, exercises
        for line in exercises.strip().splitlines():
            if line.startswith(("Which sentence defines", "In other words")):
                assert line.split("? ")[-1].removeprefix("In other words, ") and (
                    line.split("? ")[-1] in p.question or "In other words" in line)


def test_igsm_question_given_as_a_number_is_not_restated():
    from tailor_evo.tasks.base import Problem
    from tailor_evo.tasks.igsm.reading import reading_text

    q = ("The number of each Zoo's Lion equals 4. The number of each Park's Lion equals 2 more than each Zoo's "
         "Lion. How many Lion does Zoo have?")
    p = Problem(id="x", task="igsm", difficulty=1, question=q, answer=4, answer_text="4")
    for seed in range(30):
        text = reading_text(p, random.Random(seed))
        assert "Zoo's Lion equals 4." not in text[len(q):] and "Zoo's Lion is 4" not in text


def test_corpus_is_deterministic_and_mixes_every_source():
    mix = CorpusMix()
    a, b = Corpus(mix, seed=3), Corpus(mix, seed=3)
    docs = [a.document(7, j) for j in range(200)]
    assert [d.text for d in docs] == [b.document(7, j).text for j in range(200)]
    assert Corpus(mix, seed=4).document(7, 0).text != docs[0].text or Corpus(mix, seed=4).document(7, 1).text != docs[1].text
    assert {d.source for d in docs} == {"kk", "igsm", "procedural", "igsm_mod_facts", "igsm_values"}
    for d in docs:   # the corpus holds no solution text of either task
        assert THINK_OPEN not in d.text and "Define" not in d.text
        if d.source.startswith("igsm"):
            assert ANSWER_OPEN not in d.text
    only_reading = Corpus(CorpusMix(drills={"igsm_mod_facts": 0.0, "igsm_values": 0.0}), seed=3)
    assert {only_reading.document(7, j).source for j in range(200)} == {"kk", "igsm", "procedural"}


# --- the iGSM drills -------------------------------------------------------------------------------

_FACT = re.compile(r"^(\d+) ([-+*]) (\d+) = (-?\d+)(?: mod 23 = (\d+))?$")


def test_mod_fact_drills_are_right_cover_every_fact_and_hold_no_problem():
    from tailor_evo.tasks.igsm.drills import mod_facts_text

    rng = random.Random(0)
    seen = set()
    for _ in range(3000):
        text = mod_facts_text(rng)
        assert text.startswith("Modulo 23: ") and "number of" not in text and "How many" not in text
        for fact in text.removeprefix("Modulo 23: ").removesuffix(".").split(". "):
            a, op, b, r, v = _FACT.match(fact).groups()
            raw = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
            assert int(r) == raw and (int(v) if v else raw) == raw % 23
            assert (v is None) == (raw == raw % 23)        # the unreduced value only where it differs
            seen.add((int(a), op, int(b)))
    assert len(seen) == 3 * 23 * 23


def _solution_lines(problem) -> set[str]:
    """Every step the task's explicit traces write for the problem (all seed strategies): what a
    document must not contain beyond the problem's own text."""
    from tailor_evo.populations.library import load_library

    task = get_task("igsm")
    out = set()
    for lib in ("rule-based", "four-behaviour"):
        for prim in load_library(f"igsm/{lib}"):
            traj = task.execute(prim["program"], problem, random.Random(0))
            out |= {s.text for s in traj.steps if s.kind in ("compute", "conclude", "verify") and s.text}
    return out


def test_value_drills_state_only_stated_numbers_never_the_asked_quantity_nor_a_solution_step():
    from tailor_evo.tasks.igsm import graph_of

    corpus = Corpus(CorpusMix(tasks={"igsm": 0.0, "kk": 0.0}, procedural=0.0,
                              drills={"igsm_values": 1.0}), seed=1)
    task = get_task("igsm")
    n = 0
    for j in range(150):
        doc = corpus.document(0, j)
        question, drill = doc.text.split("\nValues the problem states: ")
        stated = dict(re.findall(r"The number of each ([^.]+?) equals (\d+)\.", question))
        asked = re.search(r"How many (.+?) does (.+?) have\?", question).groups()
        listed = re.findall(r"([^.]+?) = (\d+) \(given\)\.", drill)
        assert 1 <= len(listed) <= 4 and ANSWER_OPEN not in doc.text and " mod " not in doc.text
        for name, value in listed:
            name = name.strip()
            assert stated[name] == value                          # read from the text, never computed
            assert name != f"{asked[1]}'s {asked[0]}"              # never the queried quantity
        n += len(listed)
    assert n >= 200
    # and no document carries a step of a solution: run the solver's traces on the drill's own problems
    from tailor_evo.tasks.igsm.drills import value_reading_text

    for seed in range(30):
        p = task.generate(1, seed, levels=[[2, 3, 4, 5][seed % 4]])[0]
        text = value_reading_text(p, random.Random(seed))
        if text is None:
            continue
        g = graph_of(p)
        assert f"{g.params[g.question].name} = " not in text
        steps = [line for line in _solution_lines(p) if re.search(r"\d+ [-+*] \d+|answer", line)]
        assert steps and not any(line in text for line in steps)   # no computation, no conclusion


def test_quote_drills_copy_sentences_of_the_problem_never_the_asked_one_nor_a_solution_step():
    corpus = Corpus(CorpusMix(tasks={"igsm": 0.0, "kk": 0.0}, procedural=0.0,
                              drills={"igsm_quotes": 1.0}), seed=2)
    n = orders = 0
    for j in range(120):
        doc = corpus.document(0, j)
        assert doc.source == "igsm_quotes"
        question, drill = doc.text.split("\n")
        sentences = re.findall(r"The number of each [^.]+?\.", question)
        asked = re.search(r"How many (.+?) does (.+?) have\?", question).groups()
        quotes = drill.removeprefix("Read: ").split(" Read: ")
        assert 1 <= len(quotes) <= 4 and len(set(quotes)) == len(quotes)
        assert ANSWER_OPEN not in doc.text and " mod " not in doc.text
        for quote in quotes:
            assert quote in sentences                                          # a verbatim copy
            assert not quote.startswith(f"The number of each {asked[1]}'s {asked[0]} equals")
        positions = [sentences.index(q) for q in quotes]
        orders += positions != sorted(positions)
        n += len(quotes)
    assert n >= 200 and orders >= 20              # random order: found by name, not by position
    from tailor_evo.tasks.igsm.drills import quote_text

    for seed in range(30):                        # no step of a solution on the drill's own problems
        p = get_task("igsm").generate(1, seed, levels=[[2, 3, 4, 5][seed % 4]])[0]
        text = quote_text(p, random.Random(seed))
        if text is None:
            continue
        steps = [line for line in _solution_lines(p) if re.search(r"\d+ [-+*] \d+|answer", line)]
        assert steps and not any(line in text for line in steps)


def test_procedural_text_copies_and_recalls():
    rng = random.Random(1)
    kinds = set()
    for _ in range(60):
        t = procedural_text(rng)
        if t.startswith("Copy the list: "):
            first, second = t.removeprefix("Copy the list: ").split(". The list again: ")
            assert second == first + "."
            kinds.add("copy")
        elif t.startswith("Remember: "):
            pairs = dict(kv.split(" = ") for kv in t.removeprefix("Remember: ").split(". ")[0].split("; "))
            for k, v in re.findall(r"(\S+) = (\S+)\.", t.split(". ", 1)[1]):
                assert pairs[k] == v
            kinds.add("recall")
        else:
            kinds.add("number")
    assert kinds == {"copy", "recall", "number"}


def test_corpus_mix_rejects_bad_shares():
    from tailor_evo.errors import InputError

    with pytest.raises(InputError, match="corpus.tasks.kk"):
        Corpus(CorpusMix(tasks={"kk": -1.0}), seed=0)
    with pytest.raises(InputError, match="unknown task"):
        Corpus(CorpusMix(tasks={"chess": 1.0}), seed=0)
    with pytest.raises(InputError, match="corpus.drills.igsm_chess"):
        Corpus(CorpusMix(drills={"igsm_chess": 0.1}), seed=0)
    with pytest.raises(InputError, match="corpus.drills.igsm_values"):
        Corpus(CorpusMix(drills={"igsm_values": -0.1}), seed=0)


# --- the packer and the loop ------------------------------------------------------------------------

SMALL = {"arch.hidden_size": 32, "arch.layers": 1, "arch.heads": 2, "arch.vocab_size": 600, "batch_size": 2,
         "seq_len": 256, "eval_n": 4, "eval_every": 2, "save_every": 2, "log_every": 1, "threads": 1,
         "warmup_steps": 1}


def _cfg(**extra):
    from tailor_evo.config import load_config
    from tailor_evo.trainers.pretrain import PretrainConfig

    return load_config(PretrainConfig, None, [f"{k}={v}" for k, v in {**SMALL, **extra}.items()])


def test_packed_rows_hold_whole_documents(tmp_path):
    from transformers import AutoTokenizer

    from tailor_evo.models.tiny import build_tiny
    from tailor_evo.trainers.pretrain import Packer

    path = build_tiny(tmp_path / "m", hidden_size=32, layers=1, heads=2, vocab_size=600)
    tok = AutoTokenizer.from_pretrained(path)
    packer = Packer(Corpus(CorpusMix(), seed=0), tok, seq_len=256)
    batch = packer.batch(0, 4)
    assert batch.input_ids.shape == (4, 256)
    for row, labels in zip(batch.input_ids.tolist(), batch.labels.tolist()):
        used = [t for t, lab in zip(row, labels) if lab != -100]
        assert tok.bos_token_id not in used                   # no <s>: SFT and generation never see one
        assert used[-1] == tok.eos_token_id                   # the last document is complete
        assert all(t == tok.pad_token_id for t, lab in zip(row, labels) if lab == -100)
    assert sum(batch.tokens.values()) == int((batch.labels != -100).sum())
    assert packer.batch(0, 4).input_ids.equal(batch.input_ids)


def test_pretrain_resumes_to_the_same_weights_and_exports_a_loadable_base(tmp_path, monkeypatch):
    import torch

    from tailor_evo.models.registry import load
    from tailor_evo.rundir import RunDir
    from tailor_evo.trainers import pretrain

    full = pretrain.train_pretrain(_cfg(steps=4), RunDir.create(tmp_path / "full"))
    # the same run interrupted while building batch 3 (after the step-2 checkpoint), then resumed
    real_batch = pretrain.Packer.batch

    def crash_at_step_3(self, step, rows):
        if step == 2:
            raise KeyboardInterrupt
        return real_batch(self, step, rows)

    monkeypatch.setattr(pretrain.Packer, "batch", crash_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        pretrain.train_pretrain(_cfg(steps=4), RunDir.create(tmp_path / "half"))
    monkeypatch.setattr(pretrain.Packer, "batch", real_batch)
    resumed = pretrain.train_pretrain(_cfg(steps=4), RunDir.create(tmp_path / "half", resume=True), resume=True)
    a, _ = load(str(full))
    b, _ = load(str(resumed))
    assert a.dtype == torch.float32                       # stored as fp16, loaded upcast
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    rows = RunDir(tmp_path / "half").read_metrics()
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]
    assert any("answer_copy" in r for r in rows)
    assert "name copying" in (tmp_path / "full" / "report.md").read_text()
    assert (tmp_path / "full" / "model" / "tailor_evo.json").exists()


def test_varied_layouts_and_prompt_form_keep_the_same_exercises():
    task = get_task("kk")
    mix = CorpusMix(tasks={"kk": 1.0}, procedural=0.0, prompt_form=1.0, varied=True, drills={})
    docs = [Corpus(mix, seed=0).document(0, j) for j in range(60)]
    last = bare = 0
    for d in docs:
        assert d.text.startswith(task.prompt(d.problem)), "the problem sits inside the task's prompt"
        lines = d.text.splitlines()
        last += lines[-1].startswith(("A guessed answer: <answer>", "<answer>")) or "</answer>" in lines[-1]
        bare += "A guessed answer:" not in d.text
        assert THINK_OPEN not in d.text[len(task.prompt(d.problem)):]   # (the instruction names the tags)
    assert 10 < last < 60 and 10 < bare < 50
    # without the options, the text is what the first phase was trained on (seeded, unchanged)
    plain = Corpus(CorpusMix(), seed=0).document(3, 1)
    assert plain.text == Corpus(CorpusMix(), seed=0).document(3, 1).text and "Assistant:" not in plain.text


def test_presets_chain_their_phases_and_init_from_checks_the_shape(tmp_path):
    from tailor_evo.errors import InputError
    from tailor_evo.models.tiny import build_tiny
    from tailor_evo.rundir import RunDir
    from tailor_evo.trainers.pretrain import preset_chain, preset_config, train_pretrain

    assert preset_chain("tiny-base") == ["tiny-base-reading", "tiny-base-varied", "tiny-base"]
    assert preset_chain("tiny-base-m-drills") == ["tiny-base-m-reading", "tiny-base-m", "tiny-base-m-drills"]
    assert preset_config("tiny-base").corpus.varied and not preset_config("tiny-base-reading").corpus.varied
    assert preset_config("tiny-base-m-drills").arch.layers == 6 and preset_config("tiny-base-m-drills").steps == 600
    with pytest.raises(InputError, match="--preset"):
        preset_chain("huge")
    drills = preset_config("tiny-base")
    assert not preset_config("tiny-base-varied").corpus.drills.get("kk_checks")
    assert drills.corpus.drills["kk_checks"] > 0 and drills.corpus.task_options == {"kk": {"names": "pool"}}
    other = build_tiny(tmp_path / "other", hidden_size=48, layers=1, heads=2, vocab_size=600)
    with pytest.raises(InputError, match="hidden_size"):
        train_pretrain(_cfg(steps=1, init_from=str(other)), RunDir.create(tmp_path / "r"))
    first = train_pretrain(_cfg(steps=2), RunDir.create(tmp_path / "p1"))
    second = train_pretrain(_cfg(steps=1, init_from=str(first), lr=1e-9, warmup_steps=0),
                            RunDir.create(tmp_path / "p2"))
    import torch
    from safetensors.torch import load_file

    a = load_file(str(next(first.glob("*.safetensors"))))
    b = load_file(str(next(second.glob("*.safetensors"))))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-2) for k in a)   # started from the first


def test_init_from_takes_a_shipped_base_by_name_and_runs_only_the_last_phase(tmp_path, monkeypatch):
    """``--set init_from=tiny-base`` continues the shipped base: no earlier phase is rebuilt."""
    from click.testing import CliRunner

    from tailor_evo.cli import cli

    seen = []
    monkeypatch.setattr("tailor_evo.commands.models._pretrain_phase",
                        lambda ctx, out, name, *a, **k: seen.append((name, a[3])))
    r = CliRunner().invoke(cli, ["models", "pretrain", "--preset", "tiny-base", "--out", str(tmp_path / "o"),
                                  "--set", "init_from=tiny-base"])
    assert r.exit_code == 0, r.output
    assert [name for name, _ in seen] == ["tiny-base"] and "init_from=tiny-base" in seen[0][1]
    from tailor_evo.models.registry import resolve
    from tailor_evo.trainers.pretrain import _copy_start

    init = tmp_path / "init"
    import shutil
    shutil.copytree(resolve("tiny-base"), init)
    _copy_start(Path("tiny-base"), init)          # a registry name resolves to the shipped weights
    assert (init / "model.safetensors").exists()
