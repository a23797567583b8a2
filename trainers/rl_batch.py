"""The tensors of an RL step and the forward passes over them.

A step's rollouts become one :class:`RolloutBatch`: prompts left-padded and completions
right-padded, so that every completion sits in the same column range and the LM head
runs on those columns only. Rows come in groups that share a prompt; the prompt is then
run once per group and its KV cache shared by the group's completions (gradients flow
through the shared cache as through the plain pass).

Log-probs come from the logits of the whole micro-batch, or, with ``chunk > 0``, from
the final hidden states with the LM head applied ``chunk`` completion positions at a
time, each chunk checkpointed: the full-vocabulary logits of a micro-batch (rows x
completion length x vocabulary, 20 GB in float32 for 8 x 4096 x 152 k) never exist at
once, in the forward or the backward pass. Both give the same values.

The step's batch comes from its scored groups (:func:`scored_batch`); besides the
training pass, a step may need the log-probs of the reference model and of the rollout
policy (:func:`baseline_logprobs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from tailor_evo.errors import InputError
from tailor_evo.trainers.checkpoint import unwrap
from tailor_evo.trainers.losses import entropy_from_logits, token_logprobs
from tailor_evo.trainers.rl_config import RLConfig
from tailor_evo.trainers.sampling import Truncation


@dataclass
class RolloutBatch:
    """Token tensors of one step's rollouts: prompts left-padded to width P, completions
    right-padded to width C, so completion tokens sit in columns ``P .. P+C-1`` of every row."""

    input_ids: torch.Tensor          # [N, P + C]
    attention_mask: torch.Tensor     # [N, P + C]
    position_ids: torch.Tensor       # [N, P + C]
    completion_ids: torch.Tensor     # [N, C]
    completion_mask: torch.Tensor    # [N, C] float
    engine_logp: torch.Tensor | None  # [N, C] log-probs reported by the engine
    rewards: torch.Tensor            # [N]
    correct: torch.Tensor            # [N]
    format_ok: torch.Tensor          # [N]

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]

    @property
    def width(self) -> int:
        return self.completion_ids.shape[1]

    def rows(self, start: int, stop: int) -> "RolloutBatch":
        def cut(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[start:stop]

        return RolloutBatch(*(cut(getattr(self, f)) for f in self.__dataclass_fields__))

    def trimmed(self) -> "RolloutBatch":
        """The same rows without the columns that are padding in all of them: leading prompt
        padding and trailing completion padding. A micro-batch's longest completion is often
        much shorter than the step's, so this saves the forward and backward work on padding;
        the dropped columns are masked everywhere, so every loss and log-prob is unchanged."""
        P = self.input_ids.shape[1] - self.width
        lead = int(self.attention_mask[:, :P].argmax(dim=1).min()) if P else 0
        c = max(1, int(self.completion_mask.sum(dim=1).max()))
        if lead == 0 and c == self.width:
            return self
        cols = slice(lead, P + c)
        return dataclasses.replace(
            self, input_ids=self.input_ids[:, cols], attention_mask=self.attention_mask[:, cols],
            position_ids=self.position_ids[:, cols], completion_ids=self.completion_ids[:, :c],
            completion_mask=self.completion_mask[:, :c],
            engine_logp=None if self.engine_logp is None else self.engine_logp[:, :c])


def build_batch(samples: list[tuple[list[int], list[int], list[float] | None]], rewards: list[float],
                correct: list[bool], format_ok: list[bool], pad_id: int) -> RolloutBatch:
    """``samples`` are (prompt ids, completion ids, engine log-probs or None)."""
    P = max(len(p) for p, _, _ in samples)
    C = max(1, max(len(c) for _, c, _ in samples))
    N = len(samples)
    ids = torch.full((N, P + C), pad_id, dtype=torch.long)
    attn = torch.zeros((N, P + C), dtype=torch.long)
    comp = torch.full((N, C), pad_id, dtype=torch.long)
    cmask = torch.zeros((N, C))
    have_lp = all(lp is not None and len(lp) == len(c) for _, c, lp in samples)
    elp = torch.zeros((N, C)) if have_lp else None
    for i, (p, c, lp) in enumerate(samples):
        ids[i, P - len(p): P] = torch.tensor(p, dtype=torch.long)
        attn[i, P - len(p): P] = 1
        if c:
            ids[i, P: P + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[i, P: P + len(c)] = 1
            comp[i, : len(c)] = torch.tensor(c, dtype=torch.long)
            cmask[i, : len(c)] = 1.0
            if elp is not None:
                elp[i, : len(c)] = torch.tensor(lp, dtype=torch.float32)
    pos = (attn.cumsum(dim=1) - 1).clamp(min=0)
    return RolloutBatch(ids, attn, pos, comp, cmask, elp, torch.tensor(rewards, dtype=torch.float32),
                        torch.tensor(correct, dtype=torch.float32), torch.tensor(format_ok, dtype=torch.float32))


def _bare(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model behind accelerate/DDP and peft wrappers."""
    base = unwrap(model)
    return base.get_base_model() if hasattr(base, "get_base_model") else base


def _forward(model: torch.nn.Module, keep: int, want_hidden: bool, **inputs) -> torch.Tensor:
    """One forward pass: the logits of the last ``keep`` positions (0: all of them), or with
    ``want_hidden`` the final hidden states there (what the LM head reads), the head skipped.

    The hidden states are read by a hook on the decoder while the call still goes through
    the (possibly wrapped) top-level model, so that distributed wrappers see a normal forward.
    """
    if not want_hidden:
        return model(**inputs, logits_to_keep=keep).logits
    seen: list[torch.Tensor] = []
    hook = _bare(model).get_decoder().register_forward_hook(lambda _m, _a, out: seen.append(out[0]))
    try:
        model(**inputs, logits_to_keep=torch.empty(0, dtype=torch.long, device=inputs["input_ids"].device))
    finally:
        hook.remove()
    return seen[-1][:, -keep:] if keep else seen[-1]


def completion_outputs(model: torch.nn.Module, batch: RolloutBatch, group_size: int = 1,
                       want_hidden: bool = False) -> torch.Tensor:
    """What predicts each completion token, ``[n, C, V]`` logits (the LM head computed only
    there) or with ``want_hidden`` ``[n, C, H]`` final hidden states.

    With ``group_size > 1`` the rows come in groups sharing one prompt (as rollouts do):
    each prompt is run once, its KV cache is repeated for the group and only the
    completions are run on top of it. Gradients flow through the shared cache into the
    prompt positions exactly as in the plain pass, at a fraction of the cost when
    prompts are long.
    """
    C = batch.width
    if group_size <= 1:
        out = _forward(model, C + 1, want_hidden, input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids, use_cache=False)
        return out[:, :C]
    from transformers import DynamicCache

    from tailor_evo.generation.kv_cache import cache_keyword

    P = batch.input_ids.shape[1] - C
    cache = DynamicCache(config=unwrap(model).config)
    kw = cache_keyword(unwrap(model))
    head = _forward(model, 1, want_hidden, input_ids=batch.input_ids[::group_size, :P],
                    attention_mask=batch.attention_mask[::group_size, :P],
                    position_ids=batch.position_ids[::group_size, :P], use_cache=True, **{kw: cache})
    first = head[:, -1:].repeat_interleave(group_size, dim=0)
    if C == 1:
        return first
    cache.batch_repeat_interleave(group_size)
    rest = _forward(model, 0, want_hidden, input_ids=batch.input_ids[:, P: P + C - 1],
                    attention_mask=batch.attention_mask[:, : P + C - 1],
                    position_ids=batch.position_ids[:, P: P + C - 1], use_cache=True, **{kw: cache})
    return torch.cat([first, rest], dim=1)


def completion_logits(model: torch.nn.Module, batch: RolloutBatch, group_size: int = 1) -> torch.Tensor:
    """Logits predicting each completion token, ``[n, C, V]`` (see :func:`completion_outputs`)."""
    return completion_outputs(model, batch, group_size)


def check_chunkable(model: torch.nn.Module) -> None:
    """Chunked log-probs apply the LM head themselves (with Gemma's final soft-capping); refuse
    architectures that scale their logits in some other way, rather than compute wrong values."""
    config = _bare(model).config
    for name in ("logit_scale", "logits_scaling"):        # Cohere, Granite
        if getattr(config, name, None) not in (None, 1, 1.0):
            raise InputError(f"this model scales its logits ({name}={getattr(config, name)}), which chunked "
                             "log-probs do not reproduce; set rl.logprob_chunk: 0", field="logprob_chunk")


def head_logprobs(model: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor, chunk: int,
                  with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``targets`` ``[n, C]`` (and the entropies) from final hidden states
    ``[n, C, H]``, with the LM head applied to ``chunk`` positions at a time.

    Under autograd each chunk is checkpointed: only its hidden states are kept, and its
    logits are recomputed in the backward pass, so no more than one chunk of logits exists
    at any moment. Entropies are diagnostics and carry no gradient.
    """
    head = _bare(model).get_output_embeddings()
    cap = getattr(_bare(model).config, "final_logit_softcapping", None)

    def piece(h: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits = head(h)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        with torch.no_grad():
            ent = entropy_from_logits(logits.detach()) if with_entropy else None
        return token_logprobs(logits, t), ent

    logps, ents = [], []
    for s in range(0, targets.shape[1], chunk):
        h, t = hidden[:, s: s + chunk], targets[:, s: s + chunk]
        if torch.is_grad_enabled() and h.requires_grad:
            lp, ent = torch.utils.checkpoint.checkpoint(piece, h, t, use_reentrant=False)
        else:
            lp, ent = piece(h, t)
        logps.append(lp)
        ents.append(ent)
    return torch.cat(logps, dim=1), torch.cat(ents, dim=1) if with_entropy else None


def token_outputs(model: torch.nn.Module, batch: RolloutBatch, group_size: int, chunk: int,
                  with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sampled-token log-probs ``[n, C]`` of a micro-batch (and the per-position entropies):
    from the whole micro-batch's logits (``chunk = 0``) or chunk by chunk (:func:`head_logprobs`)."""
    if chunk > 0:
        hidden = completion_outputs(model, batch, group_size, want_hidden=True)
        return head_logprobs(model, hidden, batch.completion_ids, chunk, with_entropy)
    logits = completion_logits(model, batch, group_size)
    ent = None
    if with_entropy:
        with torch.no_grad():
            ent = entropy_from_logits(logits.detach())
    return token_logprobs(logits, batch.completion_ids), ent


def shares_prompts(batch: RolloutBatch, group_size: int) -> bool:
    """Whether every group of ``group_size`` consecutive rows has one prompt (then it can be run once)."""
    if group_size <= 1 or batch.size % group_size:
        return False
    P = batch.input_ids.shape[1] - batch.width
    prompts = batch.input_ids[:, :P].view(-1, group_size, P)
    masks = batch.attention_mask[:, :P].view(-1, group_size, P)
    return bool(torch.all(prompts == prompts[:, :1]) and torch.all(masks == masks[:, :1]))


def micro_batches(batch: RolloutBatch, micro_batch: int, group_size: int) -> tuple[int, int]:
    """(rows per micro-batch, group size to share prompts over; 1 = no sharing)."""
    if group_size > 1 and micro_batch >= group_size and shares_prompts(batch, group_size):
        return (micro_batch // group_size) * group_size, group_size
    return micro_batch, 1


def sequence_logprobs(model: torch.nn.Module, batch: RolloutBatch, micro_batch: int,
                      group_size: int = 1, chunk: int = 0) -> torch.Tensor:
    """Sampled-token log-probs under ``model`` without gradients, ``[N, C]``."""
    rows, share = micro_batches(batch, micro_batch, group_size)
    parts = []
    with torch.inference_mode():
        for s in range(0, batch.size, rows):
            mb = batch.rows(s, s + rows).trimmed()
            logp, _ = token_outputs(model, mb, share, chunk)
            parts.append(torch.nn.functional.pad(logp, (0, batch.width - mb.width)))
    return torch.cat(parts).clone()


def scored_batch(groups: list, truncation: Truncation, pad_id: int,
                 device: torch.device) -> tuple[RolloutBatch, torch.Tensor | None]:
    """The trained groups (:class:`trainers.sampling.ScoredGroup`) as one padded batch on ``device``,
    and which rows count in their group's statistics (None: all). A row the reward skipped (every
    term None), and a truncated row that ``truncation`` leaves out of the group, get reward 0 and no
    loss tokens, as if never sampled; a truncated row it leaves only out of the loss keeps its
    reward for the statistics and has no loss tokens."""
    flat = [r for g in groups for r in g.rollouts]
    verdicts = [v for g in groups for v in g.verdicts]
    samples = []
    for r in flat:
        if r.completion.prompt_token_ids is None:
            raise InputError("the generation engine returned no prompt token ids", field="engine")
        samples.append((list(r.completion.prompt_token_ids), list(r.completion.token_ids), r.completion.logprobs))
    counted = [keep for g in groups for keep in g.counted_rows(truncation)]
    in_loss = [keep for g in groups for keep in g.loss_rows(truncation)]
    batch = build_batch(samples, [v.reward if keep else 0.0 for v, keep in zip(verdicts, counted)],
                        [v.correct for v in verdicts], [v.format_ok for v in verdicts], pad_id)
    valid = None
    if not all(counted) or not truncation.in_group:
        valid = torch.tensor(counted, dtype=torch.bool)
    if not all(in_loss):
        batch.completion_mask[~torch.tensor(in_loss, dtype=torch.bool)] = 0.0
    batch = RolloutBatch(*(t.to(device) if isinstance(t, torch.Tensor) else t
                           for t in (getattr(batch, f) for f in batch.__dataclass_fields__)))
    return batch, None if valid is None else valid.to(device)


def baseline_logprobs(policy: torch.nn.Module, ref_model: torch.nn.Module | None, batch: RolloutBatch,
                      cfg: RLConfig, use_engine_lp: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(reference, rollout-policy) log-probs of the completions; None where the objective needs none:
    no reference with ``beta = 0``, no rollout pass with ``mu = 1`` (the current log-probs are it)
    unless asked for, and the engine's where they can stand in for it."""
    share = cfg.group_size if cfg.share_prompts else 1
    ref_logp = None
    if cfg.beta > 0:
        if ref_model is not None:
            ref_logp = sequence_logprobs(ref_model, batch, cfg.micro_batch, share, cfg.logprob_chunk)
        else:
            with policy.disable_adapter():
                ref_logp = sequence_logprobs(policy, batch, cfg.micro_batch, share, cfg.logprob_chunk)
    old_logp = None
    if use_engine_lp and batch.engine_logp is not None:
        old_logp = batch.engine_logp
    elif cfg.mu > 1 or cfg.old_logprobs == "recompute":
        old_logp = sequence_logprobs(policy, batch, cfg.micro_batch, share, cfg.logprob_chunk)
    return ref_logp, old_logp
