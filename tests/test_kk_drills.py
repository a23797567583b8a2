"""The KK component-skill drills of the pretraining corpus: every written look-up, truth-table
row and comparison is right, and no drill holds a puzzle."""

import random
import re

import pytest

from tailor_evo.config import load_config
from tailor_evo.errors import InputError
from tailor_evo.models.corpus import Corpus, CorpusMix
from tailor_evo.tasks.kk import kleene
from tailor_evo.tasks.kk.drills import cases_text, checks_text, truth_row, truth_text

_WORD = {"T": True, "F": False, "U": None}
_ATOM = re.compile(r"^(\w+) is( not)? a (knight|knave): (\w+) (knight|knave|U), ([TFU])$")
_VERDICT = re.compile(r"^(\w+) (knight|knave), claim ([TFU]), so (ok|contradiction|open)$")


def _row_value(row: str):
    """Recompute one written combination ("T or U, T") in Kleene logic: (computed, written)."""
    expr, out = row.rsplit(", ", 1)
    words = expr.split()
    if words[0] == "not":
        return kleene.k_not(_WORD[words[1]]), _WORD[out]
    if words[0] == "if":
        return kleene.k_implies(_WORD[words[1]], _WORD[words[3]]), _WORD[out]
    if len(words) == 3 and words[1] == "iff":
        return kleene.k_iff(_WORD[words[0]], _WORD[words[2]]), _WORD[out]
    values = [_WORD[w] for w in words[::2]]
    return (kleene.k_and(values) if words[1] == "and" else kleene.k_or(values)), _WORD[out]


def test_truth_rows_are_kleene_truth_tables():
    rng = random.Random(0)
    for _ in range(500):
        computed, written = _row_value(truth_row(rng))
        assert computed == written
    assert truth_text(rng).startswith("Truth table: ")


def test_every_check_looks_roles_up_in_its_case_and_compares_with_the_speaker():
    rng = random.Random(1)
    atoms = verdicts = 0
    for _ in range(200):
        for line in checks_text(rng).split("\n"):
            head, rest = line.split(". ", 1)
            case = dict(part.rsplit(" ", 1) for part in head.removeprefix("Case: ").split(", "))
            for check in re.findall(r"(\w+) said: (.*?)\. (\w+ (?:knight|knave), claim [TFU], so \w+)\.", rest):
                speaker, clauses, tail = check
                last = None
                for clause in clauses.split("; "):
                    m = _ATOM.match(clause)
                    if m:
                        person, neg, role, looked, found, value = m.groups()
                        assert person == looked and case[person] == found
                        v = None if found == "U" else (found == role)
                        assert _WORD[value] == (kleene.k_not(v) if neg else v)
                        atoms += 1
                    else:
                        computed, written = _row_value(clause)
                        assert computed == written
                    last = _WORD[clause.rsplit(", ", 1)[1]]
                who, role, claim, outcome = _VERDICT.match(tail).groups()
                assert who == speaker and case[speaker] == role and _WORD[claim] == last
                assert outcome == kleene.verdict(role == "knight", last)
                verdicts += 1
    assert atoms > 500 and verdicts > 300


def test_kk_drills_in_the_corpus_hold_no_puzzle():
    mix = CorpusMix(tasks={"kk": 0.1}, procedural=0.0, drills={"kk_checks": 1.0, "kk_cases": 1.0, "kk_truth": 0.5})
    docs = [Corpus(mix, seed=0).document(3, j) for j in range(120)]
    assert {d.source for d in docs} >= {"kk_checks", "kk_cases", "kk_truth"}
    for d in docs:
        if d.source.startswith("kk_"):
            assert "You meet" not in d.text and "<think>" not in d.text and "<answer>" not in d.text


def test_a_drill_share_can_be_set_by_name_and_unknown_drills_are_refused():
    from tailor_evo.trainers.pretrain import PretrainConfig

    cfg = load_config(PretrainConfig, None, ["corpus.drills.kk_checks=0.4"])
    assert cfg.corpus.drills["kk_checks"] == 0.4 and cfg.corpus.drills["igsm_mod_facts"] == 0.05
    with pytest.raises(InputError, match="unknown drill 'nope'"):
        load_config(PretrainConfig, None, ["corpus.drills.nope=0.4"]).check()
    with pytest.raises(InputError, match="unknown key"):
        load_config(PretrainConfig, None, ["corpus.nope=0.4"])


def test_successive_cases_keep_their_people_and_every_look_up_reads_the_latest_case():
    rng = random.Random(2)
    later_lookups = 0
    for _ in range(200):
        text = cases_text(rng)
        cases = text.split("Case: ")[1:]
        assert len(cases) >= 2 and len(text) <= 720
        people, previous, claims = None, None, {}
        for k, case_and_checks in enumerate(cases):
            head, rest = case_and_checks.split(". ", 1)
            case = dict(part.rsplit(" ", 1) for part in head.split(", "))
            assert people is None or list(case) == people       # the same people, in the same order
            assert case != previous                              # a copy from the case before is wrong
            people, previous = list(case), case
            assert 1 <= rest.count(" said: ") < len(case)        # never every speaker of a puzzle
            for speaker, clauses in re.findall(r"(\w+) said: (.*?)\. \1 (?:knight|knave), claim", rest):
                claim = (re.findall(r"(\w+ is(?: not)? a (?:knight|knave)):", clauses),
                         re.findall(r"\b(and|or|iff|then)\b", clauses))
                assert claims.setdefault(speaker, claim) == claim    # one claim per person, as in a trace
            for m in re.finditer(r"(\w+) is(?: not)? a (?:knight|knave): (\w+) (knight|knave|U),", rest):
                assert m.group(1) == m.group(2) and case[m.group(2)] == m.group(3)
                later_lookups += k > 0
    assert later_lookups > 300
