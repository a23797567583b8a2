"""Pretraining a ``tiny-base`` backbone: language modelling on the tasks' reading corpus.

The tiny architecture starts from random weights and cannot copy a name from its
prompt after a few hundred SFT steps; copying ("induction") only forms after a
plateau of millions of tokens. This trainer spends those tokens once, on text
that teaches reading and never solving (:mod:`tailor_evo.models.corpus`), so all
warm-start methods can start from a base that reads.

Batches are *packed*: whole documents, each ended by ``</s>``, are laid end to end
into rows of ``seq_len`` tokens, and only the short tail of a row that no document
fits is padding (masked out of the loss). No ``<s>`` is added, because the tiny
tokenizer adds none when SFT, RL and evaluation encode their prompts. Documents
may attend to earlier ones in the same row, as in ordinary LM pretraining. The stream of documents is a function of
(seed, step), so ``--resume`` continues on exactly the text an uninterrupted run
would have seen. Every ``eval_every`` steps the name-copy probe
(:mod:`trainers.probes`) is logged, which is how the phase change is followed.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from tailor_evo.errors import InputError
from tailor_evo.models.corpus import Corpus, CorpusMix, procedural_text
from tailor_evo.rundir import RunDir
from tailor_evo.trainers.checkpoint import TrainState
from tailor_evo.trainers.loop import Trainable, finish_run, optimizer_step, record_start, save_if_due, seed_process

log = logging.getLogger(__name__)


@dataclass
class ArchSettings:
    """The tiny Llama's shape (see :func:`tailor_evo.models.tiny.build_tiny`)."""

    hidden_size: int = 192              # width of the residual stream (a multiple of heads)
    layers: int = 4                     # transformer blocks
    heads: int = 4                      # attention heads
    vocab_size: int = 2048              # size of the tokenizer trained on the tasks' text (fixed by seed and corpus)
    max_positions: int = 4096           # longest sequence the model takes (rotary positions)
    initializer_range: float = 0.05     # std of the normal initialisation (LlamaConfig's default is 0.02)


@dataclass
class PretrainConfig:
    # keys that --resume may change: more (or fewer) steps and bookkeeping, not what ran so far
    RESUME_SAFE: ClassVar[tuple[str, ...]] = ("steps", "save_every", "report_to")
    name: str = "tiny-base"             # what the exported model calls itself (its registry name)
    seed: int = 0                       # seeds the tokenizer, the initial weights, the corpus stream and the probe
    init_from: str = ""                 # start from this model directory (a finished earlier phase) instead of
                                        # random weights; it must use the tiny tokenizer of ``seed``
    arch: ArchSettings = field(default_factory=ArchSettings)
    corpus: CorpusMix = field(default_factory=CorpusMix)
    steps: int = 1600                   # optimizer steps
    batch_size: int = 16                # packed rows per step
    seq_len: int = 384                  # tokens per packed row: short, yet (nearly) every reading document fits
    lr: float = 2e-3                    # AdamW peak learning rate
    warmup_steps: int = 100             # steps of linear warm-up before the cosine decay
    min_lr_ratio: float = 0.1           # cosine floor as a fraction of lr
    weight_decay: float = 0.0           # AdamW weight decay
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])   # AdamW betas
    grad_clip: float = 1.0              # clip the gradient norm to this (0 = no clipping)
    eval_every: int = 100               # name-copy probe every this many steps (0 = only at the end)
    eval_n: int = 48                    # held-out 3-person puzzles for the probe
    save_every: int = 100               # steps between checkpoints (0 = only at the end)
    keep_checkpoints: int = 2           # newest checkpoints kept on disk (older ones are deleted)
    log_every: int = 10                 # steps between metric rows
    threads: int = 2                    # torch intra-op threads (CPU)
    device: str = "auto"                # "auto" (a CUDA GPU when there is one), "cpu", "cuda", "cuda:1", ...
    save_dtype: str = "float16"         # dtype of the exported model (loads upcast to float32)
    report_to: list[str] = field(default_factory=list)   # trackers: tensorboard, wandb (tailor_evo.trackers)

    def check(self) -> None:
        from tailor_evo.trackers import check_report_to

        check_report_to(self.report_to)
        checks = [("steps", self.steps >= 1), ("batch_size", self.batch_size >= 1), ("seq_len", self.seq_len >= 32),
                  ("log_every", self.log_every >= 1), ("eval_n", self.eval_n >= 1), ("eval_every", self.eval_every >= 0),
                  ("save_every", self.save_every >= 0),
                  ("lr", self.lr > 0), ("warmup_steps", self.warmup_steps >= 0), ("threads", self.threads >= 1),
                  ("arch.initializer_range", self.arch.initializer_range > 0),
                  ("save_dtype", self.save_dtype in ("float16", "bfloat16", "float32"))]
        for name, ok in checks:
            if not ok:
                raise InputError("invalid value", field=name)
        self.corpus.check()


# The shipped recipes: overrides of :class:`PretrainConfig` (``models pretrain --preset NAME``),
# chosen by the measured ladder recorded in docs/backbones.md. A recipe with ``after`` is a
# later phase: it starts from the model of that preset's run (``init_from``).
_SECOND_PHASE = {"steps": 400, "lr": 1e-3, "warmup_steps": 20, "corpus.prompt_form": 0.5, "corpus.varied": True}
# the KK component-skill drills (look-ups in a case, three-valued truth tables, claim checks) and the
# large name pool: names never seen are copied at 0.82 instead of 0.01 (docs/backbones.md)
_THIRD_PHASE = {**_SECOND_PHASE, "steps": 600,
                "corpus.drills": {"igsm_mod_facts": 0.05, "igsm_values": 0.05, "kk_checks": 0.2, "kk_cases": 0.3,
                                  "kk_truth": 0.05},
                "corpus.task_options": {"kk": {"names": "pool"}}}
_M = {"arch.hidden_size": 256, "arch.layers": 6}
PRESETS: dict[str, dict[str, Any]] = {
    "tiny-base-reading": {},
    "tiny-base-varied": {"after": "tiny-base-reading", **_SECOND_PHASE},
    "tiny-base": {"after": "tiny-base-varied", **_THIRD_PHASE},
    # role transfer (answers that copy roles stated just before, and dense drills of it); measured as
    # a probe (resumed 600 -> 1000 steps: role transfer 0.50 -> 0.69), not shipped
    "tiny-base-roles": {"after": "tiny-base-reading", **_SECOND_PHASE, "steps": 1000, "corpus.transfer": True,
                        "corpus.role_drills": 0.3},
    "tiny-base-m-reading": dict(_M),
    # the shipped tiny-base-m has the first two phases only (the third was not run for this size)
    "tiny-base-m": {"after": "tiny-base-m-reading", **_M, **_SECOND_PHASE},
    "tiny-base-m-drills": {"after": "tiny-base-m", **_M, **_THIRD_PHASE},
}


def preset_chain(name: str) -> list[str]:
    """The presets to run in order to build ``name`` (its earlier phases first)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})", field="--preset")
    chain = [name]
    while "after" in PRESETS[chain[0]]:
        chain.insert(0, PRESETS[chain[0]]["after"])
    return chain


def preset_config(name: str) -> "PretrainConfig":
    """The recipe of a shipped size: the defaults with the preset's overrides (a config file and
    ``--set`` are applied on top of it)."""
    from tailor_evo.config import load_config

    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})", field="--preset")
    return load_config(PretrainConfig, None, [f"{k}={v}" for k, v in PRESETS[name].items() if k != "after"]
                       + [f"name={name}"])


@dataclass
class Batch:
    input_ids: torch.Tensor
    labels: torch.Tensor
    tokens: dict[str, int]              # supervised tokens per source
    dropped: dict[str, int]             # documents longer than a row, per source (counted, never cut)


class Packer:
    """Lays whole tokenised documents into rows; a row's tail is filled with short procedural text."""

    def __init__(self, corpus: Corpus, tokenizer: Any, seq_len: int) -> None:
        self.corpus, self.tok, self.seq_len = corpus, tokenizer, seq_len
        self.eos, self.pad = tokenizer.eos_token_id, tokenizer.pad_token_id

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids + [self.eos]

    def batch(self, step: int, rows: int) -> Batch:
        ids = torch.full((rows, self.seq_len), self.pad, dtype=torch.long)
        labels = torch.full((rows, self.seq_len), -100, dtype=torch.long)
        tokens: dict[str, int] = {}
        dropped: dict[str, int] = {}
        j = 0
        pending: tuple[str, list[int]] | None = None
        for r in range(rows):
            fill = 0
            while True:
                if pending is None:
                    doc = self.corpus.document(step, j)
                    j += 1
                    pending = (doc.source, self.encode(doc.text))
                    if len(pending[1]) > self.seq_len:
                        dropped[doc.source] = dropped.get(doc.source, 0) + 1
                        pending = None
                        continue
                source, doc = pending
                if fill + len(doc) > self.seq_len:
                    break
                self._place(ids, labels, r, fill, doc)
                fill += len(doc)
                tokens[source] = tokens.get(source, 0) + len(doc)
                pending = None
            # the tail: short copy/recall exercises that fit, then padding
            rng = random.Random(f"fill:{self.corpus.seed}:{step}:{r}")
            for _ in range(8):
                doc = self.encode(procedural_text(rng))
                if fill + len(doc) <= self.seq_len:
                    self._place(ids, labels, r, fill, doc)
                    fill += len(doc)
                    tokens["procedural"] = tokens.get("procedural", 0) + len(doc)
        return Batch(ids, labels, tokens, dropped)

    @staticmethod
    def _place(ids: torch.Tensor, labels: torch.Tensor, r: int, at: int, doc: list[int]) -> None:
        t = torch.tensor(doc)
        ids[r, at: at + len(doc)] = t
        labels[r, at: at + len(doc)] = t


def probe_problems(n: int, seed: int) -> list:
    """Held-out 3-person puzzles for the name-copy probe (the eval stream, never in the corpus seeds)."""
    from tailor_evo.tasks import get_task, streams

    return streams.flat(get_task("kk"), seed, "pretrain-probe", n, [3])


def _initial_model(cfg: PretrainConfig, run_dir: RunDir, resume: bool):
    """The randomly initialised tiny model with the tiny tokenizer (built into ``run_dir/init``).

    A fresh run first removes what an earlier run left in the directory (its initial
    model, checkpoints and metrics), so that nothing of it is reused or resumed.
    """
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tailor_evo.models.tiny import build_tiny

    init = run_dir.path / "init"
    if not resume:
        for old in (init, run_dir.checkpoints, run_dir.path / "model"):
            shutil.rmtree(old, ignore_errors=True)
        run_dir.metrics_path.unlink(missing_ok=True)
        run_dir.checkpoints.mkdir(exist_ok=True)
    if not (init / "config.json").exists():
        a = cfg.arch
        build_tiny(init, seed=cfg.seed, hidden_size=a.hidden_size, layers=a.layers, heads=a.heads,
                   vocab_size=a.vocab_size, max_positions=a.max_positions, initializer_range=a.initializer_range)
        if cfg.init_from:
            _copy_start(Path(cfg.init_from), init)
    model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)   # fp16 starts are upcast
    tokenizer = AutoTokenizer.from_pretrained(init)
    return model, tokenizer


def _copy_start(source: Path, init: Path) -> None:
    """Replace the random initial weights by a finished model's, after checking it is the same shape."""
    import shutil

    from tailor_evo.io import read_json
    from tailor_evo.models.registry import BACKBONES, resolve

    if not source.exists() and str(source) in BACKBONES:     # a shipped base by its name
        source = resolve(str(source))
    if not (source / "config.json").exists():
        raise InputError("not a model directory (no config.json)", file=str(source), field="init_from")
    mine, theirs = read_json(init / "config.json"), read_json(source / "config.json")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        if mine.get(key) != theirs.get(key):
            raise InputError(f"{key} is {theirs.get(key)}, the recipe's arch says {mine.get(key)}",
                             file=str(source), field="init_from")
    if (source / "tokenizer.json").read_bytes() != (init / "tokenizer.json").read_bytes():
        raise InputError("its tokenizer is not the tiny tokenizer of this seed", file=str(source), field="init_from")
    for f in init.glob("*.safetensors"):
        f.unlink()
    for f in source.glob("*.safetensors"):
        shutil.copy2(f, init / f.name)


@dataclass
class _Throughput:
    """Tokens seen by the run (kept in the checkpoint) and since the last logged row (for tokens/s)."""

    seen: int
    since: int = 0
    t0: float = field(default_factory=time.perf_counter)

    def count(self, state: TrainState, batch: Batch) -> None:
        """Add a step's supervised tokens and its dropped documents to the totals the checkpoint keeps."""
        n_tok = sum(batch.tokens.values())
        self.seen += n_tok
        self.since += n_tok
        state.extra["tokens"] = self.seen
        totals = state.extra.setdefault("dropped", {})
        for source, n in batch.dropped.items():
            totals[source] = totals.get(source, 0) + n


def _device(cfg: PretrainConfig) -> torch.device:
    return torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                        "cpu" if cfg.device == "auto" else cfg.device)


def _train_record(cfg: PretrainConfig, state: TrainState, loss: float, lr: float, grad_norm: float | None,
                  batch: Batch, throughput: _Throughput) -> dict[str, Any]:
    """The training figures of the step, every ``log_every`` steps and at the last one (else empty)."""
    if not (state.step % cfg.log_every == 0 or state.step == cfg.steps):
        return {}
    elapsed = time.perf_counter() - throughput.t0
    record = {"step": state.step, "loss": loss, "lr": lr, "tokens": throughput.seen,
              "tokens_per_s": throughput.since / max(elapsed, 1e-9), "grad_norm": grad_norm,
              "dropped_documents": dict(state.extra["dropped"]),
              **{f"tokens_{k}": v for k, v in batch.tokens.items()}}
    throughput.t0, throughput.since = time.perf_counter(), 0
    return record


def _probe_record(cfg: PretrainConfig, state: TrainState, model: torch.nn.Module, tokenizer: Any, probe: list,
                  kk: Any, loss: float, seen: int) -> dict[str, Any]:
    """The name-copy probe, every ``eval_every`` steps and at the last one (else empty); it is also
    logged as a line, since in a log file it is how the phase change is followed."""
    from tailor_evo.trainers.probes import name_copy

    if not ((cfg.eval_every > 0 and state.step % cfg.eval_every == 0) or state.step == cfg.steps):
        return {}
    nc = name_copy(model, tokenizer, probe, kk)
    log.info("step %d: loss %.3f, answer-position copy %.3f, question-position copy %.3f, role transfer "
             "%.3f, %.1fM tokens", state.step, loss, nc.answer_accuracy, nc.question_accuracy,
             nc.role_accuracy, seen / 1e6)
    return nc.to_dict()


def train_pretrain(cfg: PretrainConfig, run_dir: RunDir, resume: bool = False) -> Path:
    """Pretrain a tiny backbone per ``cfg`` into ``run_dir``; return the exported ``run_dir/model``."""
    from tqdm.auto import tqdm

    from tailor_evo.tasks import get_task
    from tailor_evo.trainers.base import cosine_schedule, make_optimizer

    cfg.check()
    seed_process(cfg.threads, cfg.seed)
    model, tokenizer = _initial_model(cfg, run_dir, resume)
    record_start(run_dir, cfg, "pretrain")
    device = _device(cfg)
    model.to(device)
    model.train()
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas)
    t = Trainable(model, tokenizer, optimizer,
                  cosine_schedule(optimizer, min(cfg.warmup_steps, cfg.steps), cfg.steps, cfg.min_lr_ratio))
    state = t.resume(run_dir, resume)
    packer = Packer(Corpus(cfg.corpus, cfg.seed), tokenizer, cfg.seq_len)
    kk = get_task("kk")
    probe = probe_problems(cfg.eval_n, cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("pretraining %.2fM parameters for %d steps of %d x %d tokens (from step %d)",
             n_params / 1e6, cfg.steps, cfg.batch_size, cfg.seq_len, state.step)
    throughput = _Throughput(state.extra.get("tokens", 0))
    # in a log file (nohup) the bar redraws rarely; the per-probe log lines carry the progress
    bar = tqdm(total=cfg.steps, initial=state.step, desc="pretrain", mininterval=1 if sys.stderr.isatty() else 60)
    while state.step < cfg.steps:
        batch = packer.batch(state.step, cfg.batch_size)
        out = model(input_ids=batch.input_ids.to(device), labels=batch.labels.to(device))
        out.loss.backward()  # the loss is a mean over the batch's supervised tokens
        grad_norm = optimizer_step(model, optimizer, t.scheduler, cfg.grad_clip)
        state.step += 1
        throughput.count(state, batch)
        bar.update(1)
        loss = float(out.loss.detach())
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        record = _train_record(cfg, state, loss, t.scheduler.get_last_lr()[0], grad_norm, batch, throughput)
        probed = _probe_record(cfg, state, model, tokenizer, probe, kk, loss, throughput.seen)
        if probed:
            record = {"step": state.step, **record, **probed}
        if record:
            run_dir.log(record)
        save_if_due(run_dir, t, state, every=cfg.save_every, keep=cfg.keep_checkpoints, last=cfg.steps)
    bar.close()

    def export(out: Path, _weights: Any) -> None:
        export_base(model, tokenizer, out, cfg, n_params, throughput.seen)
        write_pretrain_report(run_dir, cfg, n_params)
    return finish_run(run_dir, None, export)


def export_base(model: torch.nn.Module, tokenizer: Any, out: Path, cfg: PretrainConfig, n_params: int,
                tokens: int) -> Path:
    """The model directory in ``cfg.save_dtype`` plus ``tailor_evo.json`` saying how it was made."""
    import copy

    from tailor_evo.io import write_json_atomic
    from tailor_evo.trainers.base import export_model

    dtype = getattr(torch, cfg.save_dtype)
    from tailor_evo.trainers.model_card import CardInfo

    card = CardInfo(stage="pretrain", base_model="", task="reading",
                    seed=cfg.seed, recipe=asdict(cfg),
                    data={"corpus": "tailor-evo reading corpus (task reading exercises, no solutions)",
                          "tokens": tokens, "steps": cfg.steps})
    export_model(copy.deepcopy(model).to(device="cpu", dtype=dtype), tokenizer, out, card=card)
    info = {"backbone": cfg.name, "made_by": "tailor-evo models pretrain", "seed": cfg.seed,
            "parameters": n_params, "steps": cfg.steps, "tokens": tokens, "config": asdict(cfg)}
    write_json_atomic(out / "tailor_evo.json", info)
    return out


def write_pretrain_report(run_dir: RunDir, cfg: PretrainConfig, n_params: int) -> None:
    """``report.md`` and the loss / name-copy curves from the metrics log."""
    from tailor_evo.io import write_text_atomic
    from tailor_evo.trainers.base import plot_lines

    rows = run_dir.read_metrics()
    loss = [r for r in rows if "loss" in r]
    probes = [r for r in rows if "answer_copy" in r]
    if loss:
        plot_lines(run_dir.plots / "loss.png", [("loss", [r["step"] for r in loss], [r["loss"] for r in loss])],
              "pretraining loss", "step")
    if probes:
        xs = [r["step"] for r in probes]
        plot_lines(run_dir.plots / "name_copy.png",
              [("answer position", xs, [r["answer_copy"] for r in probes]),
               ("question position", xs, [r["question_copy"] for r in probes])]
              + ([("role transfer", xs, [r.get("role_copy", float("nan")) for r in probes])]
                 if any("role_copy" in r for r in probes) else []),
              "name copying on held-out 3-person puzzles", "step")
    last = probes[-1] if probes else {}
    tokens = loss[-1]["tokens"] if loss else 0
    lines = ["# Pretraining run", "",
             f"- parameters: {n_params / 1e6:.2f}M ({cfg.arch.layers} layers, hidden {cfg.arch.hidden_size}, "
             f"init std {cfg.arch.initializer_range})",
             f"- steps: {cfg.steps} of {cfg.batch_size} x {cfg.seq_len} tokens; {tokens / 1e6:.1f}M tokens seen",
             f"- lr {cfg.lr}, warm-up {cfg.warmup_steps}, cosine to {cfg.min_lr_ratio} of peak",
             f"- corpus: {cfg.corpus.tasks} + procedural {cfg.corpus.procedural} + drills {cfg.corpus.drills}",
             f"- documents longer than a row (skipped, per source): "
             f"{(loss[-1].get('dropped_documents') or 'none') if loss else 'none'}"]
    if last:
        lines.append(f"- name copying at step {last['step']}: answer position {last['answer_copy']:.3f}, "
                     f"question position {last['question_copy']:.3f}"
                     + (f", role transfer {last['role_copy']:.3f}" if "role_copy" in last else ""))
    lines += ["", "![loss](plots/loss.png)", "", "![name copying](plots/name_copy.png)"]
    write_text_atomic(run_dir.report_path, "\n".join(lines) + "\n")
