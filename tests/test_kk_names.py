"""KK's name lists: hundreds of names for training, a held-out list nothing trains on."""

import re

import pytest

from tailor_evo.errors import InputError
from tailor_evo.models.corpus import _WORDS, Corpus, CorpusMix
from tailor_evo.tasks import get_task
from tailor_evo.tasks.kk import text as T
from tailor_evo.tasks.streams import flat


def test_the_pool_is_large_and_mostly_multi_token_and_the_held_out_names_are_apart():
    assert len(T.POOL_NAMES) >= 250 and len(T.HELDOUT_NAMES) >= 30
    held = set(T.HELDOUT_NAMES)
    assert not held & (set(T.POOL_NAMES) | set(T.RARE_NAMES) | set(_WORDS))
    assert set(T.COMMON_NAMES) <= set(T.POOL_NAMES)


def test_the_pool_and_the_held_out_names_are_generator_options_and_evaluation_keeps_the_common_names():
    kk = get_task("kk")
    train = kk.generate(60, 1, levels=[3], names="pool")
    names = {n for p in train for n in p.meta["names"]}
    assert names <= set(T.POOL_NAMES) and names - set(T.COMMON_NAMES)
    assert {n for p in flat(kk, 1, "warmstart", 30, levels=[3]) for n in p.meta["names"]} <= set(T.COMMON_NAMES)
    evaluation = kk.generate(30, 1, levels=[3])
    assert {n for p in evaluation for n in p.meta["names"]} <= set(T.COMMON_NAMES)
    held = kk.generate(10, 1, levels=[3], names="heldout")
    assert all(set(p.meta["names"]) <= set(T.HELDOUT_NAMES) for p in held)


def test_a_corpus_on_the_pool_never_shows_a_held_out_name():
    mix = CorpusMix(drills={"kk_checks": 0.3, "kk_truth": 0.05}, role_drills=0.1,
                    task_options={"kk": {"names": "pool"}})
    corpus = Corpus(mix, seed=0)
    held = re.compile(r"\b(?:" + "|".join(T.HELDOUT_NAMES) + r")\b")
    seen = set()
    for j in range(300):
        text = corpus.document(1, j).text
        assert not held.search(text)
        seen |= set(re.findall(r"\b[A-Z][a-z]+\b", text)) & set(T.EXTRA_NAMES)
    assert len(seen) > 50           # the pool's names do appear


def test_a_pool_share_mixes_pool_names_into_a_share_of_the_puzzles_and_nothing_else():
    kk = get_task("kk")
    plain = kk.generate(40, 2, levels=[3])
    # a share of 0 draws nothing more, so a stream without one is exactly what it was
    assert [p.question for p in kk.generate(40, 2, levels=[3], pool_share=0.0)] == [p.question for p in plain]
    mixed = kk.generate(400, 2, levels=[3], pool_share=0.25)
    from_pool = [p for p in mixed if set(p.meta["names"]) - set(T.COMMON_NAMES)]
    assert all(set(p.meta["names"]) <= set(T.POOL_NAMES) for p in mixed)
    # a pool puzzle has a name outside the 55 unless all three came from the 55 (about 1 in 170)
    assert 0.17 < len(from_pool) / len(mixed) < 0.33
    every = kk.generate(30, 2, levels=[3], pool_share=1.0)
    assert sum(bool(set(p.meta["names"]) - set(T.COMMON_NAMES)) for p in every) >= 28
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(InputError, match="pool_share"):
            kk.generate(3, 2, levels=[3], pool_share=bad)
