"""The conditioning ablations of the LEGO paper, as data for ``egobench ablate``.

Table 3 (what conditions the LDM): action labels (``ip2p``), enriched
descriptions (``lego-desc``), descriptions + VLLM image embeddings
(``lego-img``), descriptions + VLLM text embeddings (``lego-txt``),
descriptions + joint embeddings (``lego``). Table 4: joint embeddings from the
VLLM without finetuning vs with finetuning (``lego`` with
``vllm_finetuned=false`` / ``true``).

Registered through the ``egobench.ablations`` entry-point group (the entry
point's name is the table's ``--table`` key). A row names a registered method
and its options; ``features: true`` gives it the ablation's shared VLLM
features (``--features-root`` / ``--compute-features``, LEGO's
``features_root`` / ``compute_features`` options). Plain data: importing this
module imports nothing.
"""

from __future__ import annotations

TABLE3 = {
    "title": "Table 3: conditioning",
    "rows": [
        {"label": "Action labels", "method": "ip2p"},
        {"label": "Descriptions", "method": "lego-desc", "features": True},
        {"label": "Descriptions + image emb.", "method": "lego-img", "features": True},
        {"label": "Descriptions + text emb.", "method": "lego-txt", "features": True},
        {"label": "Descriptions + joint emb.", "method": "lego", "features": True},
    ],
}

TABLE4 = {
    "title": "Table 4: VLLM without / with finetuning",
    "rows": [
        {"label": "w/o finetuning", "method": "lego", "options": {"vllm_finetuned": False}, "features": True},
        {"label": "w/ finetuning", "method": "lego", "features": True},
    ],
}
