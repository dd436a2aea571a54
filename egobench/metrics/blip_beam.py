"""transformers 4.19.2 beam search (the LEGO environment), on top of any next-token function.

**Beam search semantics.** transformers changed beam search after 4.19.2
(finished beams are now normalised by the generated length, not the total
length, and the search was rewritten). In 4.19.2 a finished hypothesis scores
``sum_logprobs / len(hyp)``, with
``len(hyp)`` the whole sequence *including the 4 prompt tokens and excluding
eos*; today it is ``sum_logprobs / n_generated`` *including eos*; the
early-stopping test and the last step at ``max_length`` differ too. So the
same model and pixels can give different captions (on the tiny zoo, 25 of 45
base and 14 of 45 large captions differ). ``beam_search: released``
(default) runs :func:`released_beam_search`, a re-implementation of the 4.19.2
algorithm on top of the transformers model's forward pass;
``beam_search: transformers`` calls ``BlipForConditionalGeneration.generate``.

The goldens that pin it (``tests/test_blip.py``) are made by ``scripts/blip_goldens/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .blip_protocol import LENGTH_PENALTY, MAX_LENGTH, MIN_LENGTH, NUM_BEAMS


@dataclass
class _Hypotheses:
    """transformers 4.19.2 ``BeamHypotheses``: the n best finished sequences of one item."""

    num_beams: int
    length_penalty: float

    def __post_init__(self) -> None:
        self.beams: list[tuple[float, list[int]]] = []
        self.worst_score = 1e9

    def add(self, hyp: list[int], sum_logprobs: float) -> None:
        score = sum_logprobs / (len(hyp) ** self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, hyp))
            if len(self.beams) > self.num_beams:
                order = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[order[0][1]]
                self.worst_score = order[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        if len(self.beams) < self.num_beams:
            return False
        return self.worst_score >= best_sum_logprobs / cur_len**self.length_penalty

    def best(self) -> list[int]:
        return sorted(self.beams, key=lambda x: x[0])[-1][1]


def released_beam_search(
    step: Callable[[torch.Tensor], torch.Tensor],
    reorder: Callable[[torch.Tensor], None],
    prompt_ids: torch.Tensor,
    *,
    num_beams: int = NUM_BEAMS,
    max_length: int = MAX_LENGTH,
    min_length: int = MIN_LENGTH,
    eos_token_id: int,
    pad_token_id: int,
    length_penalty: float = LENGTH_PENALTY,
) -> list[list[int]]:
    """Beam search with the semantics of transformers 4.19.2 (the LEGO environment).

    ``step(ids)`` returns next-token logits (rows = ``batch * num_beams``) for
    the current sequences ``ids``; ``reorder(beam_idx)`` is told which rows
    survive (for a key/value cache). Returns the best hypothesis per item,
    prompt included, eos excluded. Algorithm (``BeamSearchScorer``):

    * log-softmax of the logits; eos set to -inf while the length (prompt
      included) is below ``min_length``; add the running beam score (beam 0
      starts at 0, the others at -1e9);
    * top ``2 * num_beams`` over ``num_beams * vocab``; walking them in order,
      eos candidates ranked within the first ``num_beams`` become finished
      hypotheses (score = sum of log-probs / len(sequence without eos) **
      length_penalty), the first ``num_beams`` other candidates continue;
    * an item is done when it has ``num_beams`` hypotheses and the worst is at
      least the best candidate score / current length ** length_penalty; done
      items are padded;
    * at ``max_length`` the running beams of unfinished items are added as
      hypotheses; the best hypothesis wins (ties: the later one).
    """
    batch, prompt_len = prompt_ids.shape
    k = num_beams
    ids = prompt_ids.repeat_interleave(k, dim=0)
    beam_scores = torch.zeros((batch, k), dtype=torch.float32, device=ids.device)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view(-1)
    hyps = [_Hypotheses(k, length_penalty) for _ in range(batch)]
    done = [False] * batch
    cur_len = prompt_len
    while True:
        logits = step(ids).float()
        scores = torch.nn.functional.log_softmax(logits, dim=-1)
        if cur_len < min_length:
            scores[:, eos_token_id] = -float("inf")
        vocab = scores.shape[-1]
        scores = (scores + beam_scores[:, None]).view(batch, k * vocab)
        top_scores, top_ids = torch.topk(scores, 2 * k, dim=1, largest=True, sorted=True)
        top_beams = torch.div(top_ids, vocab, rounding_mode="floor")
        top_tokens = top_ids % vocab
        ts = top_scores.cpu()
        tt, tb, seqs = top_tokens.cpu().tolist(), top_beams.cpu().tolist(), ids.cpu().tolist()
        next_scores = torch.zeros((batch, k), dtype=ts.dtype)
        next_tokens = torch.zeros((batch, k), dtype=torch.long)
        next_rows = torch.zeros((batch, k), dtype=torch.long)
        for b in range(batch):
            if done[b]:
                next_tokens[b, :] = pad_token_id  # scores 0, rows 0: as 4.19.2 pads finished items
                continue
            j = 0
            for rank in range(2 * k):
                row = b * k + tb[b][rank]
                if tt[b][rank] == eos_token_id:
                    if rank >= k:
                        continue
                    hyps[b].add(seqs[row], ts[b, rank].item())
                else:
                    next_scores[b, j] = ts[b, rank]
                    next_tokens[b, j] = tt[b][rank]
                    next_rows[b, j] = row
                    j += 1
                if j == k:
                    break
            done[b] = done[b] or hyps[b].is_done(ts[b].max().item(), cur_len)
        beam_scores = next_scores.view(-1).to(ids.device)
        rows = next_rows.view(-1).to(ids.device)
        ids = torch.cat([ids[rows], next_tokens.view(-1, 1).to(ids.device)], dim=-1)
        reorder(rows)
        cur_len += 1
        if all(done) or cur_len >= max_length:
            break
    seqs, final = ids.cpu().tolist(), beam_scores.cpu()
    for b in range(batch):
        if done[b]:
            continue
        for j in range(k):
            hyps[b].add(seqs[b * k + j], final[b * k + j].item())
    return [hyps[b].best() for b in range(batch)]
