"""Print ``_GOLDEN_4_19_2`` of tests/test_blip.py: transformers 4.19.2 beam search on a synthetic model.

Runs in its own virtual environment with transformers 4.19.2 (see README.md next to this file); it
imports nothing from egobench, so the goldens come from the released library alone. The "model" is a
deterministic function of the sequence (``logits_for``, the same as the test's ``_logits_for``): no
weights, so nothing random is drawn. ``generate`` runs beam search with the settings of the LEGO
BLIP captioner (3 beams, ``repetition_penalty`` and ``length_penalty`` 1.0, ``early_stopping`` off,
eos 3, pad 0) on 8 prompts of 4 tokens, for each (max_length, min_length) pair of the test.

Output: the dict literal to paste into tests/test_blip.py. Each sequence is the best hypothesis,
prompt included, with generate's appended eos and padding cut off (what
``egobench.metrics.blip_beam.released_beam_search`` returns).
"""

from __future__ import annotations

import math
import pprint
import sys

import torch
import transformers
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

VOCAB, EOS, PAD = 11, 3, 0
NUM_BEAMS = 3
PROMPT_LEN = 4
LENGTHS = ((20, 5), (12, 8), (9, 5))  # (max_length, min_length); both count the 4 prompt tokens


def logits_for(seq: list[int]) -> list[float]:
    """Next-token logits of one sequence (eos grows likelier with length; pad never wins)."""
    h = sum((i + 1) * t * 0.37 for i, t in enumerate(seq))
    n = len(seq)
    out = [2.5 * math.sin(1.3 * v + h + 0.11 * n) for v in range(VOCAB)]
    out[EOS] += 0.9 * (n - 4) / 4 - 1.5 + 0.4 * math.cos(3.1 * seq[0])
    out[PAD] = -6.0
    return out


class SyntheticLM(PreTrainedModel):
    """A causal LM whose logits at the last position are ``logits_for(sequence)`` (float64 -> float32)."""

    config_class = PretrainedConfig
    main_input_name = "input_ids"

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        self.anchor = nn.Parameter(torch.zeros(1))  # generate() reads the device from a parameter

    def _init_weights(self, module: nn.Module) -> None:
        pass

    def prepare_inputs_for_generation(self, input_ids: torch.Tensor, **kwargs) -> dict:
        return {"input_ids": input_ids}

    def forward(self, input_ids: torch.Tensor, **kwargs) -> CausalLMOutput:
        rows = [logits_for(r) for r in input_ids.tolist()]
        last = torch.tensor(rows, dtype=torch.float64).float()
        return CausalLMOutput(logits=last[:, None, :])


def best_hypothesis(row: list[int]) -> list[int]:
    """generate()'s row without the eos it appends to finished hypotheses and the padding after it."""
    tail = row[PROMPT_LEN:]
    return row[: PROMPT_LEN + tail.index(EOS)] if EOS in tail else row


def main() -> None:
    if transformers.__version__ != "4.19.2":
        sys.exit(f"needs transformers 4.19.2 (the LEGO environment), found {transformers.__version__}")
    config = PretrainedConfig(vocab_size=VOCAB, eos_token_id=EOS, pad_token_id=PAD, bos_token_id=None)
    model = SyntheticLM(config).eval()
    prompt = torch.tensor([[10 - i % 7, 5, 6, 7] for i in range(8)])
    goldens = {}
    for max_length, min_length in LENGTHS:
        with torch.no_grad():
            out = model.generate(
                input_ids=prompt,
                num_beams=NUM_BEAMS,
                max_length=max_length,
                min_length=min_length,
                repetition_penalty=1.0,
                length_penalty=1.0,
                early_stopping=False,
                do_sample=False,
                num_return_sequences=1,
                eos_token_id=EOS,
                pad_token_id=PAD,
            )
        goldens[(max_length, min_length)] = [best_hypothesis(r) for r in out.tolist()]
    print("_GOLDEN_4_19_2 = " + pprint.pformat(goldens, width=110))


if __name__ == "__main__":
    main()
