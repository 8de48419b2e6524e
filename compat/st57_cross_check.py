"""Load a reranker artifact's ``graph: transformer`` variants through sentence-transformers 5.7's ``CrossEncoder``
(ONNX through optimum-onnx, which sentence-transformers 6 cannot install) and compare with the torch CrossEncoder.

Runs inside the environment compat/check_st57.sh builds (``compat/check_st57.sh --env-only``); never imports
``exporter``: the groups come from the artifact's ``parity/rerank_groups.jsonl``.

    .compat/st57-venv/bin/python compat/st57_cross_check.py ARTIFACT SOURCE_MODEL [--json FILE]

Exit 0 when every fp32 variant is within 1e-4 of torch with torch's top passage in every group, and every other
variant keeps torch's top passage in at least 95 % of the groups; 1 otherwise; 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("source", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import numpy as np
    import sentence_transformers
    from sentence_transformers import CrossEncoder

    manifest = json.loads((args.artifact / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("source", {}).get("kind") != "cross":
        print(f"{args.artifact}: not a reranker artifact (source.kind)", file=sys.stderr)
        return 2
    groups = [json.loads(line) for line in (args.artifact / "parity" / "rerank_groups.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    pairs = [(g["query"], p) for g in groups for p in g["passages"]]
    bounds = np.cumsum([0] + [len(g["passages"]) for g in groups])
    torch_scores = np.asarray(CrossEncoder(str(args.source), device="cpu").predict(pairs), dtype=np.float64)
    results, ok = [], True
    for variant in manifest["variants"]:
        if variant.get("graph") != "transformer":
            continue
        kwargs = {"file_name": variant["file_name"]}
        if variant["backend"] == "openvino":
            kwargs["ov_config"] = variant.get("runtime_options") or {"INFERENCE_PRECISION_HINT": "f32"}
        try:
            model = CrossEncoder(str(args.artifact), backend=variant["backend"], model_kwargs=kwargs, device="cpu")
            scores = np.asarray(model.predict(pairs), dtype=np.float64)
        except Exception as error:  # noqa: BLE001 - reported per variant
            results.append({"name": variant["name"], "error": f"{type(error).__name__}: {error}"[:300]})
            ok = False
            continue
        top1 = np.mean([np.argmax(scores[a:b]) == np.argmax(torch_scores[a:b])
                        for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        diff = float(np.abs(scores - torch_scores).max())
        passed = (diff <= 1e-4 and top1 == 1.0) if variant["precision"] == "fp32" else top1 >= 0.95
        ok = ok and bool(passed)
        results.append({"name": variant["name"], "max_abs_diff": diff, "top1_agreement": float(top1),
                        "passed": bool(passed)})
    report = {"sentence_transformers": sentence_transformers.__version__, "variants": results, "passed": ok}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
