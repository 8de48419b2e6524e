"""Load a reranker artifact's ``graph: transformer`` variants through sentence-transformers 5.7's ``CrossEncoder``
and compare their scores with the torch CrossEncoder in the same environment.

sentence-transformers 6 cannot install its ONNX backend at all (optimum-onnx caps transformers < 4.58), so users
who load our rerankers with ``CrossEncoder(folder, backend="onnx")`` do it on 5.7. Runs inside the environment
compat/check_st57.sh builds; never imports ``exporter`` (our package requires the newer stack): the groups are the
artifact's stored ``parity/rerank_groups.jsonl``, the thresholds its ``manifest.json``.

For every ``graph: transformer`` variant it loads ``CrossEncoder(folder, backend=..., model_kwargs={"file_name":
..., "ov_config": <the variant's runtime_options>}, local_files_only=True)``, scores every (query, passage) pair of
the stored groups with ``predict`` (activated, as the manifest's reference is) and measures, against the torch
``CrossEncoder(source)``: the largest score difference, the share of groups ranked identically (passages whose torch
scores differ by less than the tie tolerance may swap), top-1 agreement, mean per-group Spearman and NDCG@5 (torch's
scores as the graded relevance) -- the validator's metrics, recomputed here. fp32 must be within 1e-4 with identical
rankings (ties under 1e-4 excepted) whatever the manifest says; every variant must meet the thresholds its manifest
records. Before that, the folder's config files must be readable here (as st57_check.py checks them) and the pairs
must tokenise as the source model's tokenizer does.

    .compat/st57-venv/bin/python compat/st57_cross_check.py ARTIFACT --model SOURCE_MODEL [--json FILE]

Exit codes: 0 every variant passed, 1 a variant failed (load, config or parity), 2 bad input or wrong environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from st57_check import SetupError, check_config_files, environment_and_manifest, print_rows

# The fp32 bar of the issue: scores within 1e-4 of torch, the same rankings but for torch near ties under 1e-4.
FP32_REQUIRED = {"max_abs_diff": 1e-4, "ranking": 1.0}
FP32_TIE_TOLERANCE = 1e-4
METRICS = ("max_abs_diff", "ranking", "top1_agreement", "spearman_mean", "ndcg_at_5")
UPPER_BOUNDS = frozenset({"max_abs_diff"})
NDCG_AT = 5
BATCH_SIZE = 32


def read_groups(folder: Path) -> list[dict]:
    path = folder / "parity" / "rerank_groups.jsonl"
    if not path.is_file():
        raise SetupError(f"{path}: missing (the artifact's stored query groups)")
    groups = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record.get("query"), str) or not isinstance(record.get("passages"), list):
            raise SetupError(f"{path}:{number}: expected {{\"query\": str, \"passages\": [str, ...]}}")
        groups.append(record)
    if not groups:
        raise SetupError(f"{path}: no query groups")
    return groups


# --- metrics (validators/ranking.py's, with scipy here) ---------------------------------------------------------

def _same_ranking(variant, reference, tolerance: float) -> bool:
    import numpy as np

    ref = reference[np.argsort(-variant, kind="stable")]
    # an inversion: a passage ranked above one that torch scores higher by at least the tolerance
    return not bool((ref[None, :] - ref[:, None] >= tolerance)[np.triu_indices(len(ref), k=1)].any())


def _ndcg(variant, reference, k: int = NDCG_AT) -> float:
    import numpy as np

    gains = reference - reference.min()
    discounts = 1.0 / np.log2(np.arange(2, min(k, len(gains)) + 2))
    ideal = (np.sort(gains)[::-1][: len(discounts)] * discounts).sum()
    if ideal <= 0:
        return 1.0
    return float((gains[np.argsort(-variant, kind="stable")][: len(discounts)] * discounts).sum() / ideal)


def _spearman(variant, reference) -> float:
    import numpy as np
    from scipy.stats import spearmanr

    if np.ptp(variant) == 0 or np.ptp(reference) == 0:
        return 1.0 if np.ptp(variant) == 0 and np.ptp(reference) == 0 else 0.0
    return float(spearmanr(variant, reference).statistic)


def ranking_metrics(variant: list, reference: list, tolerance: float) -> dict[str, float]:
    import numpy as np

    groups = list(zip(variant, reference, strict=True))
    return {
        "max_abs_diff": float(max(np.abs(v - r).max() for v, r in groups)),
        "ranking": float(np.mean([_same_ranking(v, r, tolerance) for v, r in groups])),
        "top1_agreement": float(np.mean([r.max() - r[int(np.argmax(v))] < tolerance for v, r in groups])),
        "spearman_mean": float(np.mean([_spearman(v, r) for v, r in groups])),
        "ndcg_at_5": float(np.mean([_ndcg(v, r) for v, r in groups])),
    }


def required_thresholds(variant: dict) -> tuple[dict[str, float], float]:
    """The manifest's recorded thresholds (None: reported, not gated) and tie tolerance; fp32 at least the fp32 bar."""
    recorded = variant.get("validation_thresholds") or {}
    required = {key: float(recorded[key]) for key in METRICS if recorded.get(key) is not None}
    tolerance = float(recorded.get("tie_tolerance") or FP32_TIE_TOLERANCE)
    if variant.get("precision") == "fp32":
        required["max_abs_diff"] = min(required.get("max_abs_diff", 1.0), FP32_REQUIRED["max_abs_diff"])
        required["ranking"] = FP32_REQUIRED["ranking"]
        tolerance = min(tolerance, FP32_TIE_TOLERANCE)
    return required, tolerance


def misses(metrics: dict[str, float], required: dict[str, float]) -> list[str]:
    problems = []
    for key, value in required.items():
        if key in UPPER_BOUNDS and metrics[key] > value:
            problems.append(f"{key} {metrics[key]:.3g} > {value:g}")
        elif key not in UPPER_BOUNDS and metrics[key] < value:
            problems.append(f"{key} {metrics[key]:.4f} < {value:g}")
    return problems


# --- checks -----------------------------------------------------------------------------------------------------

def check_pair_tokenisation(folder: Path, source: Path, pairs: list[tuple[str, str]], max_length: int) -> list[str]:
    """The folder's tokenizer must give the source model's token ids for every pair (longest-first truncation)."""
    from transformers import AutoTokenizer

    queries, passages = [q for q, _ in pairs], [p for _, p in pairs]
    try:
        ours = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - st57_check's config check reports it with more detail
        return [f"tokenizer_config.json / tokenizer.json: AutoTokenizer cannot load them: {type(error).__name__}"]
    theirs = AutoTokenizer.from_pretrained(source, local_files_only=True)
    a = ours(queries, passages, truncation="longest_first", max_length=max_length)
    b = theirs(queries, passages, truncation="longest_first", max_length=max_length)
    differ = [i for i, (x, y) in enumerate(zip(a["input_ids"], b["input_ids"], strict=True)) if x != y]
    if differ:
        return [f"tokenizer.json / tokenizer_config.json: {len(differ)} of {len(pairs)} pairs tokenise differently "
                f"from the source model (first: pair #{differ[0]})"]
    return []


def check_variant(folder: Path, variant: dict, pairs, bounds, reference, torch_activation: str) -> dict:
    import numpy as np
    from sentence_transformers import CrossEncoder

    required, tolerance = required_thresholds(variant)
    result = {"variant": variant["name"], "backend": variant["backend"], "precision": variant["precision"],
              "file_name": variant["file_name"], "required": required, "tie_tolerance": tolerance,
              "passed": False, "error": None}
    model_kwargs: dict = {"file_name": variant["file_name"]}
    if variant["backend"] == "openvino" and variant.get("runtime_options"):
        # OpenVINO ignores a precision hint stored in the IR; it must be passed at compile time.
        model_kwargs["ov_config"] = dict(variant["runtime_options"])
    result["model_kwargs"] = model_kwargs
    try:
        model = CrossEncoder(str(folder), backend=variant["backend"], device="cpu", model_kwargs=model_kwargs,
                             local_files_only=True)
        scores = np.asarray(model.predict(pairs, batch_size=BATCH_SIZE), dtype=np.float64)
    except Exception as error:  # noqa: BLE001 - a load or predict failure is the finding
        result["error"] = f"load/predict failed: {type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()
        return result
    result["activation_fn"] = type(model.activation_fn).__name__
    if scores.shape != reference.shape:
        result["error"] = f"scores of shape {list(scores.shape)}, torch {list(reference.shape)}"
        return result
    cut = list(zip(bounds[:-1], bounds[1:], strict=True))
    result.update(ranking_metrics([scores[a:b] for a, b in cut], [reference[a:b] for a, b in cut], tolerance))
    failed = misses(result, required)
    if result["activation_fn"] != torch_activation:
        failed.append(f"activation_fn {result['activation_fn']} here, torch's {torch_activation}")
    result["passed"] = not failed
    result["error"] = "; ".join(failed) or None
    return result


def _cell(result: dict, key: str) -> str:
    value = result.get(key)
    return "-" if value is None else f"{value:.3g}" if key in UPPER_BOUNDS else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", type=Path, help="reranker artifact folder (with manifest.json)")
    parser.add_argument("--model", type=Path, required=True, help="the source CrossEncoder folder (torch reference)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--variant", action="append", help="check only this variant (repeatable)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SetupError as error:
        print(f"st57_cross_check: {error}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from sentence_transformers import CrossEncoder

    found, manifest_path, manifest = environment_and_manifest(args.artifact)
    if manifest.get("source", {}).get("kind") != "cross":
        raise SetupError(f"{manifest_path}: source.kind is {manifest.get('source', {}).get('kind')!r}, not 'cross'")
    if not (args.model / "config.json").is_file():
        raise SetupError(f"{args.model}: not a model folder (no config.json)")
    groups = read_groups(args.artifact)
    pairs = [(g["query"], p) for g in groups for p in g["passages"]]
    bounds = np.cumsum([0] + [len(g["passages"]) for g in groups])
    print(f"artifact: {args.artifact} (built by {manifest.get('tool', {}).get('name', '?')} "
          f"{manifest.get('tool', {}).get('version', '?')}); {len(groups)} query groups, {len(pairs)} pairs")

    variants = [v for v in manifest["variants"] if not args.variant or v["name"] in args.variant]
    if args.variant and len(variants) != len(set(args.variant)):
        raise SetupError(f"unknown variant in {args.variant} (the manifest has: "
                         f"{', '.join(v['name'] for v in manifest['variants'])})")
    # graph: scores has the activation inside: CrossEncoder would apply it twice; it is for plain runtimes.
    skipped = [{"variant": v["name"], "backend": v["backend"], "file_name": v["file_name"],
                "reason": f"graph: {v.get('graph')} (not loaded through sentence-transformers)"}
               for v in variants if v.get("graph") != "transformer"]
    variants = [v for v in variants if v.get("graph") == "transformer"]

    torch_model = CrossEncoder(str(args.model), device="cpu", local_files_only=True)
    reference = np.asarray(torch_model.predict(pairs, batch_size=BATCH_SIZE), dtype=np.float64)
    torch_activation = type(torch_model.activation_fn).__name__
    notes: list[str] = []
    texts = [q for q, _ in pairs[:: max(1, len(pairs) // 64)]] + [p for _, p in pairs]
    problems = check_config_files(args.artifact, args.model, texts, notes)
    problems += check_pair_tokenisation(args.artifact, args.model, pairs, torch_model.max_seq_length)
    print("config files: " + ("readable by this sentence-transformers / transformers" if not problems else
                              f"{len(problems)} problem(s)"))
    for problem in problems:
        print(f"  {problem}")
    for note in notes:
        print(f"  note: {note}")
    # The artifact's stored reference (torch in the build stack) against torch here: a drift would be the stacks'.
    stored_path = args.artifact / "parity" / "rerank_scores.npy"
    stored_diff = None
    if stored_path.is_file():
        stored = np.load(stored_path).astype(np.float64).reshape(-1)
        if stored.shape == reference.shape:
            stored_diff = float(np.abs(stored - reference).max())
            print(f"torch here ({torch_activation}) against the artifact's stored scores: max |diff| {stored_diff:.3g}")

    results = []
    for variant in variants:
        print(f"checking {variant['name']} ({variant['backend']}, {variant['file_name']}) ...", flush=True)
        results.append(check_variant(args.artifact, variant, pairs, bounds, reference, torch_activation))
    print()
    print_rows(("variant", "backend", "file", *METRICS, "result"),
               [(r["variant"], r["backend"], r["file_name"], *(_cell(r, key) for key in METRICS),
                 "PASS" if r["passed"] else "FAIL") for r in results]
               + [(s["variant"], s["backend"], s["file_name"], *["-"] * len(METRICS), "skipped") for s in skipped])
    for r in results:
        if r["error"]:
            print(f"  {r['variant']}: {r['error']}")
    passed = bool(results) and all(r["passed"] for r in results) and not problems
    if not results:
        print("no graph: transformer variant to check")
    print(f"\nresult: {'PASS' if passed else 'FAIL'}: {sum(r['passed'] for r in results)} of {len(results)} "
          f"reranker variant(s) passed through sentence-transformers {found['sentence-transformers']} CrossEncoder"
          + (f"; {len(problems)} config file problem(s)" if problems else ""))
    if args.json:
        report = {"kind": "cross", "passed": passed, "versions": found, "groups": len(groups), "pairs": len(pairs),
                  "stored_reference_max_abs_diff": stored_diff, "config_problems": problems, "config_notes": notes,
                  "results": results, "skipped": skipped}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
