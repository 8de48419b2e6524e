"""What a reranker's card (``source.kind: cross``) says differently: the ranking metrics in the variants table and
load snippets that score pairs (``exporter.load`` -> ``Reranker``, ``CrossEncoder(..., backend=...)`` for
``graph: transformer``, plain ONNX Runtime / OpenVINO for ``graph: scores``)."""

from __future__ import annotations

import json

from exporter.artifact.manifest import Manifest

# (Parity attribute, column label, digits): exporter.validators.ranking's headline metrics.
RANKING_FIELDS = (("max_abs_diff", "max abs diff", 6), ("top1_agreement", "top1 agreement", 4),
                  ("spearman_mean", "spearman mean", 4), ("ndcg_at_5", "ndcg@5", 4))
SAMPLE_QUERY = '"How many people live in Berlin?"'
SAMPLE_PASSAGES = '["Berlin has about 3.7 million inhabitants.", "Berlin is known for its museums."]'


def cross_snippets(manifest: Manifest, repo_id: str | None, folder_name: str) -> list[dict[str, str]]:
    """A load snippet per variant of a reranker."""
    where = json.dumps(repo_id or folder_name)
    result = []
    for variant in manifest.variants:
        deploy = ["import exporter", "",
                  f"reranker = exporter.load({where}, variant={json.dumps(variant.name)})  # torch-free",
                  f"ranked = reranker.rank({SAMPLE_QUERY}, {SAMPLE_PASSAGES}, return_documents=True)",
                  f"scores = reranker.predict([({SAMPLE_QUERY}, \"Berlin has about 3.7 million inhabitants.\")])"]
        if variant.graph == "transformer":
            kwargs = {"file_name": variant.file_name}
            if variant.backend == "openvino":
                kwargs["ov_config"] = dict(variant.runtime_options)
            lines = ["", "# sentence-transformers (its activation applied to the graph's logits):",
                     "from sentence_transformers import CrossEncoder", "",
                     f"model = CrossEncoder({where}, backend={json.dumps(variant.backend)}, "
                     f"model_kwargs={json.dumps(kwargs)})",
                     f"ranked = model.rank({SAMPLE_QUERY}, {SAMPLE_PASSAGES})"]
            text = (f"The sequence-classification graph (`{variant.file_name}`, output `logits`), which "
                    f"`CrossEncoder(..., backend={variant.backend!r})` loads.")
            runtime = f"exporter / sentence-transformers {variant.backend}"
        else:
            text = (f"The scores graph (`{variant.file_name}`, output `scores`: the model's activation inside), for "
                    "plain runtimes: feed the tokenised pair (`input_ids`, `attention_mask`"
                    + (", `token_type_ids`" if "token_type_ids" in variant.inputs else "") + ").")
            lines = []
            runtime = f"exporter / plain {variant.backend}"
        result.append({"name": variant.name, "runtime": runtime, "text": text, "code": "\n".join(deploy + lines)})
    return result
