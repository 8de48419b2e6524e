"""Load an artifact folder's ONNX variants in fastembed and compare with the folder's stored torch reference.

Run it in an environment with fastembed (``check_fastembed.sh`` makes one); it needs nothing from this
repository. For every ONNX variant in ``manifest.json`` that passed parity it registers the file with
``TextEmbedding.add_custom_model`` and loads the folder offline with ``specific_model_path``:

* ``graph: transformer``: fastembed's own pooling (mean / CLS / last token, as ``1_Pooling/config.json`` says) and
  normalization (when ``modules.json`` has Normalize); a model with Dense layers or another pooling mode cannot be
  expressed in fastembed and is reported as skipped;
* ``graph: sentence``: ``output_name="sentence_embedding"``, pooling disabled, no normalization.

It encodes the stored validation texts (``parity/texts.jsonl``, long texts included) and compares row by row with
``parity/reference.npy``: fp32 needs cosine >= 0.99999 for every text and norms within 1e-4 relative; other
precisions need the variant's recorded ``validation_thresholds.cosine_min``.

    python check_fastembed.py ARTIFACT_DIR [ARTIFACT_DIR ...]

Exit 0: every checked variant matched; 1: a mismatch; 2: bad input (no folder, no manifest, nothing to check).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never reach the Hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

FP32_COSINE_MIN = 0.99999
FP32_NORM_RTOL = 1e-4
FASTEMBED_POOLING = {"mean": "MEAN", "cls": "CLS", "lasttoken": "LAST_TOKEN"}
LEGACY_POOLING_KEYS = {  # sentence-transformers < 5.7 wrote one boolean per mode
    "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken",
}


class BadInput(Exception):
    pass


def read_reference(folder: Path) -> tuple[list[str], np.ndarray]:
    texts_path, reference_path = folder / "parity" / "texts.jsonl", folder / "parity" / "reference.npy"
    if not texts_path.is_file() or not reference_path.is_file():
        raise BadInput(f"{folder}: no stored reference (parity/texts.jsonl, parity/reference.npy)")
    texts = [json.loads(line)["text"] for line in texts_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    reference = np.load(reference_path, allow_pickle=False).astype(np.float64)
    if reference.shape[0] != len(texts):
        raise BadInput(f"{folder}: parity/reference.npy has {reference.shape[0]} rows for {len(texts)} texts")
    return texts, reference


def postprocessing(folder: Path) -> tuple[str | None, bool, str]:
    """(fastembed pooling name or None, normalization, why not) for a graph: transformer variant."""
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
    if "Dense" in kinds:
        return None, False, "Dense layers: fastembed cannot run them after a transformer graph"
    pooling = next((module for module in modules if module["type"].endswith("Pooling")), None)
    if pooling is None:
        return None, False, "no Pooling module"
    config = json.loads((folder / pooling["path"] / "config.json").read_text(encoding="utf-8"))
    modes = config.get("pooling_mode")
    if modes is None:
        modes = [mode for key, mode in LEGACY_POOLING_KEYS.items() if config.get(key)] or ["mean"]
    modes = [modes] if isinstance(modes, str) else list(modes)
    if len(modes) != 1 or modes[0] not in FASTEMBED_POOLING:
        return None, False, f"pooling {modes}: fastembed has mean, CLS and last-token pooling only"
    return FASTEMBED_POOLING[modes[0]], "Normalize" in kinds, ""


def cosine_and_norms(got: np.ndarray, want: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    got_norm, want_norm = np.linalg.norm(got, axis=1), np.linalg.norm(want, axis=1)
    cosine = (got * want).sum(axis=1) / np.maximum(got_norm * want_norm, 1e-30)
    return cosine, np.abs(got_norm - want_norm) / np.maximum(want_norm, 1e-30)


def check_folder(folder: Path, batch_size: int, rows: list[dict]) -> bool:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType
    from tokenizers import Tokenizer

    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise BadInput(f"{folder}: no manifest.json (not an artifact folder)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    max_seq_length = int(manifest["source"]["max_seq_length"])
    dimension = int(manifest["source"]["dimension"])
    texts, reference = read_reference(folder)
    counter = Tokenizer.from_file(str(folder / "tokenizer.json"))
    counter.no_truncation()
    counter.no_padding()
    tokens = np.array([len(encoding.ids) for encoding in counter.encode_batch(texts)])
    long = tokens > max_seq_length
    print(f"{folder}: {len(texts)} texts, {int(long.sum())} longer than max_seq_length {max_seq_length} tokens")

    ok = True
    cache_dir = tempfile.mkdtemp(prefix="fastembed-cache-")
    for variant in manifest["variants"]:
        name, file_name = variant["name"], variant["file_name"]
        row = {"folder": folder.name, "variant": name, "file": file_name}
        if variant["backend"] != "onnx":
            continue
        if not (variant.get("parity") or {}).get("passed"):
            rows.append({**row, "result": "skipped: did not pass parity when built"})
            continue
        if variant["graph"] == "sentence":
            pooling, normalization, output_name, why = "DISABLED", False, "sentence_embedding", ""
            loaded_as = 'output_name="sentence_embedding", DISABLED'
        else:
            pooling, normalization, why = postprocessing(folder)
            output_name = None
            loaded_as = f"{pooling}{' + normalize' if normalization else ''}"
        if pooling is None:
            rows.append({**row, "result": f"skipped: {why}"})
            continue
        model_id = f"local/{folder.name}/{name}"
        TextEmbedding.add_custom_model(
            model=model_id, pooling=getattr(PoolingType, pooling), normalization=normalization,
            sources=ModelSource(hf=model_id), dim=dimension, model_file=file_name, output_name=output_name)
        started = time.perf_counter()
        try:
            model = TextEmbedding(model_name=model_id, specific_model_path=str(folder), cache_dir=cache_dir,
                                  local_files_only=True)
            got = np.stack(list(model.embed(texts, batch_size=batch_size))).astype(np.float64)
        except Exception as error:  # the client cannot load or run our file: that is the finding
            ok = False
            rows.append({**row, "loaded_as": loaded_as, "result": f"FAILED: {type(error).__name__}: {error}"[:200]})
            continue
        seconds = time.perf_counter() - started
        if got.shape != reference.shape:
            ok = False
            rows.append({**row, "loaded_as": loaded_as, "result": f"MISMATCH: shape {got.shape} != {reference.shape}"})
            continue
        tokenizer = getattr(getattr(model, "model", None), "tokenizer", None)
        truncation = (tokenizer.truncation if tokenizer is not None else None) or {}
        cosine, norm_rel = cosine_and_norms(got, reference)
        if variant["precision"] == "fp32":
            bar = f"cos>={FP32_COSINE_MIN}, norm<={FP32_NORM_RTOL:g}"
            passed = bool(cosine.min() >= FP32_COSINE_MIN and norm_rel.max() <= FP32_NORM_RTOL)
        else:
            threshold = float(variant["validation_thresholds"]["cosine_min"])
            bar = f"cos>={threshold} (recorded)"
            passed = bool(cosine.min() >= threshold)
        ok &= passed
        rows.append({**row, "loaded_as": loaded_as, "truncates_at": truncation.get("max_length"),
                     "cos_min": float(cosine.min()), "cos_mean": float(cosine.mean()),
                     "cos_min_long": float(cosine[long].min()) if long.any() else None,
                     "norm_rel_max": float(norm_rel.max()), "bar": bar, "seconds": round(seconds, 1),
                     "result": "ok" if passed else "MISMATCH"})
        if not passed:
            for index in np.argsort(cosine)[:3]:
                print(f"  {name}: cosine {cosine[index]:.6f}, norm rel {norm_rel[index]:.2e}, {tokens[index]} tokens:"
                      f" {texts[index][:70]!r}", file=sys.stderr)
            if truncation.get("max_length") not in (None, max_seq_length):
                print(f"  {name}: fastembed truncates at {truncation.get('max_length')} tokens, the model at "
                      f"{max_seq_length} (tokenizer_config.json / tokenizer.json say so)", file=sys.stderr)
    return ok


def print_table(rows: list[dict]) -> None:
    def fmt(value, digits=6):
        return "-" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    header = ["variant", "file", "loaded as", "trunc", "cos min", "cos mean", "cos min long", "norm rel max",
              "bar", "s", "result"]
    lines = [[row["variant"], row["file"], row.get("loaded_as", "-"), fmt(row.get("truncates_at")),
              fmt(row.get("cos_min"), 7), fmt(row.get("cos_mean"), 7), fmt(row.get("cos_min_long"), 7),
              "-" if row.get("norm_rel_max") is None else f"{row['norm_rel_max']:.1e}", row.get("bar", "-"),
              fmt(row.get("seconds"), 1), row["result"]] for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    for line in [header, ["-" * width for width in widths], *lines]:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, metavar="ARTIFACT_DIR")
    parser.add_argument("--batch-size", type=int, default=int(os.environ.get("FASTEMBED_BATCH_SIZE", 32)),
                        help="fastembed's batch size (default 32, or $FASTEMBED_BATCH_SIZE; fastembed's own is 256)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args(argv)
    import fastembed

    print(f"fastembed {fastembed.__version__}, onnxruntime {__import__('onnxruntime').__version__}, "
          f"batch size {args.batch_size}")
    rows: list[dict] = []
    ok = True
    try:
        for folder in args.folders:
            ok &= check_folder(folder.resolve(), args.batch_size, rows)
    except (BadInput, OSError, KeyError, ValueError) as error:
        print(f"check_fastembed: {error}", file=sys.stderr)
        return 2
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps({"fastembed": fastembed.__version__, "rows": rows}, indent=2))
    if not any("cos_min" in row for row in rows):
        print("check_fastembed: no ONNX variant could be checked", file=sys.stderr)
        return 2
    print("fastembed: all checked variants match" if ok else "fastembed: MISMATCH", file=None if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
