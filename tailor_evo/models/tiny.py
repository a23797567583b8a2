"""The ``tiny`` backbone: a small Llama model and a tokenizer trained on the tasks' own text.

Why it exists: the whole pipeline (search -> SFT -> RL -> eval) must run on a
2-core CPU with nothing downloaded. A 1-5 M parameter Llama with a byte-level BPE
vocabulary fitted to the task text learns the response format within minutes of
SFT, so every code path can be exercised for real.

Everything is deterministic in ``seed``: the corpus (problems generated from the
seed), the tokenizer (BPE training is deterministic for a fixed corpus) and the
weights (initialised under a forked, seeded torch RNG).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
MARKERS = ("<think>", "</think>", "<answer>", "</answer>")
# A minimal chat template so that chat-message prompts work with the tiny model too:
# message contents separated by blank lines, the generation prompt mirrors the tasks'
# plain prompt ("...\nAssistant:").
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ 'User: ' + m['content'] + '\n' }}"
    "{% elif m['role'] == 'assistant' %}{{ 'Assistant: ' + m['content'] + '</s>\n' }}"
    "{% else %}{{ m['content'] + '\n\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
TINY_CHAT_TEMPLATE_SAMPLE = "System.\n\nUser: hello\nAssistant: hi</s>\n"
# Bumped whenever the recipe changes, so that a cached build is not reused by mistake.
RECIPE_VERSION = 1

# Used when the task packages cannot be imported: it covers the vocabulary of both
# tasks (names, roles, logical connectives, arithmetic words and digits) so that the
# tokenizer still fits the domain.
_BUILTIN_CORPUS = [
    "A very special island is inhabited only by knights and knaves. Knights always tell the truth, "
    "and knaves always lie. You meet 3 inhabitants: Rosa, Tariq, and Mei. Rosa noted, \"Tariq is a knave "
    "or Mei is a knight\". \"If Rosa is a knight then Mei is a knave,\" Tariq claimed. Mei said that Rosa "
    "is a knight if and only if Tariq is a knave. So who is a knight and who is a knave?",
    "<think> Assume Rosa is a knight. No contradiction is found in their claim that Tariq is a knave or "
    "Mei is a knight. Tariq cannot be a knight, because this would contradict the false claim of their own "
    "that Rosa is a knight. We have exhausted all possibilities for Mei, so let us go back and reconsider "
    "Tariq. </think> <answer> (1) Rosa is a knight\n(2) Tariq is a knave\n(3) Mei is a knight </answer>",
    "Jack said, \"Sophia is not a knave and Oliver is a knight\". In Emma's words: \"Jack is a knave\". "
    "According to Oliver, \"If Emma is a knight then Jack is a knight\". Zoe told you that Lucas is a knave.",
    "The number of each Riverview Zoo's Penguin equals 7 more than the number of each Maple Park's Lion. "
    "The number of each Maple Park's Lion equals 3. The number of each Riverview Zoo's Penguin equals "
    "the sum of 4 and 5 times 2 minus 1. How many Penguin does Riverview Zoo have? Compute modulo 23.",
    "<think> Define Maple Park's Lion as a; so a = 3. Define Riverview Zoo's Penguin as b; so b = a + 7 "
    "= 3 + 7 = 10. Define total as c; c = 10 * 2 = 20. 20 - 1 = 19. 19 mod 23 = 19. </think> "
    "<answer> 19 </answer>",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 + - * / = ( ) , . ; : ? ! \" '",
]


DEFAULT_TASKS = ("kk", "igsm")


def available_tasks(tasks: Sequence[str]) -> list[str]:
    """Those of ``tasks`` that are registered (the task packages import), in the given order."""
    try:
        from tailor_evo.tasks import task_names
    except Exception as exc:  # the task packages are optional for building a tokenizer
        log.info("tasks unavailable (%s); using the built-in tokenizer corpus", exc)
        return []
    known = set(task_names())
    return [t for t in tasks if t in known]


def tiny_corpus(tasks: Sequence[str] = DEFAULT_TASKS, *, seed: int = 0, n_per_task: int = 200) -> tuple[list[str], str]:
    """Training text for the tokenizer and a label saying which tasks it came from.

    Uses the registered tasks' prompts and reference completions; a task that is
    not installed is skipped and the label says so (``"builtin"`` when none is).
    A small built-in corpus covering both domains is always added.
    """
    texts: list[str] = []
    used: list[str] = []
    names = available_tasks(tasks)
    if names:
        from tailor_evo.tasks import get_task

        for name in names:
            try:
                task = get_task(name)
                problems = task.generate(n_per_task, seed)
                pairs = [(task.prompt(p), task.reference_completion(p)) for p in problems]
            except Exception as exc:  # a broken task must not block every model build
                log.warning("task %s could not produce tokenizer text (%s: %s); skipped", name,
                            type(exc).__name__, exc)
                continue
            for prompt, completion in pairs:
                texts.append(prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt))
                texts.append(completion)
            used.append(name)
    source = "+".join(used) if used else "builtin"
    texts.extend(_BUILTIN_CORPUS)
    texts.append(TINY_CHAT_TEMPLATE_SAMPLE)
    return texts, source


def train_tokenizer(texts: Sequence[str], vocab_size: int = 2048):
    """Byte-level BPE (any text encodes) with pad/bos/eos and the response markers as single tokens."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    # Markers are ordinary (non-special) added tokens: always one token each, and kept
    # when decoding with skip_special_tokens=True, because verifiers need to see them.
    tok.add_tokens([AddedToken(m, normalized=False, special=False) for m in MARKERS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS,
        model_max_length=4096, padding_side="left", clean_up_tokenization_spaces=False,
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def build_tiny(
    out_dir: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 192,
    layers: int = 4,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate_size: int | None = None,
    vocab_size: int = 2048,
    max_positions: int = 4096,
    tasks: Sequence[str] = DEFAULT_TASKS,
    corpus: Sequence[str] | None = None,
    initializer_range: float = 0.02,
) -> Path:
    """Build the tiny backbone into ``out_dir`` (created) and return it.

    The defaults give about 2 M parameters. ``corpus`` replaces the task text
    (tests use it to stay fast and independent of the tasks). The tokenizer depends
    on ``seed`` and the corpus only, never on the size, so every size built with
    the same seed shares one vocabulary.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} is not divisible by heads {heads}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if corpus is None:
        texts, source = tiny_corpus(tasks, seed=seed)
    else:
        texts, source = list(corpus) + _BUILTIN_CORPUS, "given"
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or (hidden_size * 8 // 3 + 63) // 64 * 64,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=initializer_range,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    (out / "tailor_evo.json").write_text(json.dumps({
        "backbone": "tiny", "recipe": RECIPE_VERSION, "seed": seed, "corpus": source,
        "initializer_range": initializer_range,
        "tasks": list(tasks), "parameters": n_params,
    }, indent=2) + "\n", encoding="utf-8")
    return out
