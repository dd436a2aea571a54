"""The conditioning ablations of the LEGO paper, as data for ``egobench ablate``.

Table 3 (what conditions the LDM): action labels (``ip2p``), enriched
descriptions (``lego-desc``), descriptions + VLLM image embeddings
(``lego-img``), descriptions + VLLM text embeddings (``lego-txt``),
descriptions + joint embeddings (``lego``). Table 4: joint embeddings from the
VLLM without finetuning vs with finetuning (``lego`` with
``vllm_finetuned=false`` / ``true``), then the "VLLM backend" row group: LEGO with
another transformers VLM as its prompt enhancer (``lego`` with ``vllm=<artifact>``,
:data:`VLLM_BACKENDS`; its features get their own tag and provenance, and its LDM is
trained on them). A backend is added by adding an entry to :data:`VLLM_BACKENDS`.

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

#: the "VLLM backend" row group of Table 4: row label -> the prompt enhancer (``-o vllm=``)
VLLM_BACKENDS = {"Qwen2-VL-2B-Instruct": "lego-vllm-qwen2-vl-2b"}
#: the prefix of the group's row labels
BACKEND_GROUP = "VLLM backend"

TABLE4 = {
    "title": "Table 4: VLLM without / with finetuning; VLLM backend",
    "rows": [
        {"label": "w/o finetuning", "method": "lego", "options": {"vllm_finetuned": False}, "features": True},
        {"label": "w/ finetuning", "method": "lego", "features": True},
        *({"label": f"{BACKEND_GROUP}: {label}", "method": "lego", "options": {"vllm": vllm}, "features": True}
          for label, vllm in VLLM_BACKENDS.items()),
    ],
}
