"""Load an artifact folder's variants through sentence-transformers 5.7 and compare them with torch.

Runs inside the sentence-transformers 5.7 environment that compat/check_st57.sh builds; it never imports
``exporter`` (our package requires the newer stack), so everything it needs from the artifact is read from
``manifest.json`` and ``parity/texts.jsonl`` with the standard library.

For every ``graph: transformer`` variant it loads
``SentenceTransformer(folder, backend=..., model_kwargs={"file_name": ..., "ov_config": runtime_options})``,
encodes the texts and compares the embeddings with the torch model (``SentenceTransformer(source_model)``) in this
same environment. Before that, it checks that this sentence-transformers / transformers can read each config
file of the folder, so a failure names the file and field instead of a stack trace from deep inside a loader.

Exit codes: 0 every variant passed, 1 a variant failed (load, config or parity), 2 bad input or wrong environment.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import sys
import traceback
import warnings
from pathlib import Path

EXPECTED_ST = "5.7."
# The fp32 parity bar: an fp32 graph must reproduce torch almost exactly, whatever the manifest says.
FP32_COSINE_MIN = 0.9999
THRESHOLD_KEYS = ("cosine_min", "cosine_mean", "neighbour_overlap", "spearman")
NEIGHBOURS = 10
BATCH_SIZE = 32
PACKAGES = ("sentence-transformers", "transformers", "huggingface-hub", "tokenizers", "torch", "optimum",
            "optimum-onnx", "optimum-intel", "onnxruntime", "openvino")
REPO_VALIDATION_TEXTS = Path(__file__).resolve().parent.parent / "exporter" / "data" / "validation.jsonl"


class SetupError(Exception):
    """Bad input or the wrong environment: exit 2."""


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def read_texts(folder: Path, texts_file: Path | None) -> tuple[list[str], str]:
    """The artifact's stored parity texts (what its build validated), else the repository's built-in set."""
    candidates = [texts_file] if texts_file else [folder / "parity" / "texts.jsonl", REPO_VALIDATION_TEXTS]
    for path in candidates:
        if path is not None and path.is_file():
            texts = []
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                text = record if isinstance(record, str) else record.get("text")
                if not isinstance(text, str):
                    raise SetupError(f"{path}:{number}: no text field")
                texts.append(text)
            if not texts:
                raise SetupError(f"{path}: no texts")
            return texts, str(path)
    raise SetupError(f"no validation texts: none of {', '.join(str(p) for p in candidates if p)} exists")


# --- config files -----------------------------------------------------------------------------------------------

def check_config_files(folder: Path, source: Path, texts: list[str], notes: list[str]) -> list[str]:
    """Problems this sentence-transformers / transformers has reading the folder's config files, each naming the
    file and field; deprecation warnings go to ``notes``. Every file is tried on its own, so one broken file does
    not hide another."""
    problems: list[str] = []
    modules_path = folder / "modules.json"
    modules = []
    try:
        modules = json.loads(modules_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        problems.append(f"modules.json: unreadable: {error}")
    for index, module in enumerate(modules):
        type_path = module.get("type", "")
        where = f"modules.json: modules[{index}].type = {type_path!r}"
        module_name, _, class_name = type_path.rpartition(".")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", DeprecationWarning)
                cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as error:
            problems.append(f"{where}: not importable here: {type(error).__name__}: {error}")
            continue
        # Loads today, but a deprecated path is the next version's failure: worth a line, not a failure.
        for warning in caught:
            if issubclass(warning.category, DeprecationWarning):
                notes.append(f"{where}: {warning.message}")
        if module.get("path", ""):
            # The module's own loader, as SentenceTransformer calls it (it maps legacy keys, e.g. pooling_mode_*).
            try:
                cls.load(str(folder), subfolder=module["path"], local_files_only=True)
            except Exception as error:  # noqa: BLE001 - any failure is the finding to report
                problems.append(f"{module['path']}/ ({type_path}): its loader fails on the folder's config: "
                                f"{type(error).__name__}: {error}")

    try:
        from transformers import AutoConfig

        AutoConfig.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - any failure is the finding to report
        problems.append(f"config.json: AutoConfig cannot read it: {type(error).__name__}: {error}")

    problems += _check_tokenizer(folder, source, texts)
    return problems


def _check_tokenizer(folder: Path, source: Path, texts: list[str]) -> list[str]:
    """The folder's tokenizer must load as a fast tokenizer and give the source model's token ids."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception as error:  # noqa: BLE001
        return [f"tokenizer_config.json / tokenizer.json: AutoTokenizer cannot load them: "
                f"{type(error).__name__}: {error}"]
    if not tokenizer.is_fast:
        return [f"tokenizer_config.json: loads as the slow {type(tokenizer).__name__}, not a fast tokenizer"]
    reference = AutoTokenizer.from_pretrained(source, local_files_only=True)
    max_length = _max_seq_length(source) or reference.model_max_length
    ours = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    theirs = reference(texts, truncation=True, max_length=max_length)["input_ids"]
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    if differ:
        return [f"tokenizer.json / tokenizer_config.json: {len(differ)} of {len(texts)} texts tokenise differently "
                f"from the source model (first: text #{differ[0]})"]
    return []


def _max_seq_length(folder: Path) -> int | None:
    path = folder / "sentence_bert_config.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")).get("max_seq_length")
    return None


# --- parity -----------------------------------------------------------------------------------------------------

def metrics(reference, embeddings) -> dict[str, float]:
    """Per-text cosine (mean, min), top-10 neighbour overlap and the Spearman correlation of the pairwise
    similarity matrices: the validator's gating checks, recomputed here."""
    import numpy as np
    from scipy.stats import spearmanr

    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    var = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    cosine = np.sum(ref * var, axis=1)
    sim_ref, sim_var = ref @ ref.T, var @ var.T
    np.fill_diagonal(sim_ref, -np.inf)
    np.fill_diagonal(sim_var, -np.inf)
    k = min(NEIGHBOURS, len(ref) - 1)
    top_ref = np.argsort(-sim_ref, axis=1)[:, :k]
    top_var = np.argsort(-sim_var, axis=1)[:, :k]
    shared = [len(set(a) & set(b)) / k for a, b in zip(top_ref, top_var, strict=True)] if k > 0 else [1.0]
    overlap = float(np.mean(shared))
    upper = np.triu_indices(len(ref), 1)
    rho = float(spearmanr((ref @ ref.T)[upper], (var @ var.T)[upper]).statistic) if len(ref) > 2 else 1.0
    return {"cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
            "neighbour_overlap": overlap, "spearman": rho}


def required_thresholds(variant: dict) -> dict[str, float]:
    """The manifest's recorded thresholds for the variant; fp32 at least the fp32 parity bar."""
    recorded = variant.get("validation_thresholds") or {}
    required = {key: float(recorded[key]) for key in THRESHOLD_KEYS if recorded.get(key) is not None}
    if variant.get("precision") == "fp32":
        required["cosine_min"] = max(required.get("cosine_min", 0.0), FP32_COSINE_MIN)
    return required


def check_variant(folder: Path, variant: dict, texts: list[str], reference) -> dict:
    from sentence_transformers import SentenceTransformer

    result = {"variant": variant["name"], "backend": variant["backend"], "precision": variant["precision"],
              "file_name": variant["file_name"], "required": required_thresholds(variant), "passed": False,
              "error": None}
    model_kwargs: dict = {"file_name": variant["file_name"]}
    if variant["backend"] == "openvino" and variant.get("runtime_options"):
        # OpenVINO ignores a precision hint stored in the IR; it must be passed at compile time.
        model_kwargs["ov_config"] = dict(variant["runtime_options"])
    result["model_kwargs"] = model_kwargs
    try:
        model = SentenceTransformer(str(folder), backend=variant["backend"], device="cpu",
                                    model_kwargs=model_kwargs, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - a load failure is the finding
        result["error"] = f"load failed: {type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()
        return result
    try:
        embeddings = model.encode(texts, batch_size=BATCH_SIZE, convert_to_numpy=True)
    except Exception as error:  # noqa: BLE001
        result["error"] = f"encode failed: {type(error).__name__}: {error}"
        result["traceback"] = traceback.format_exc()
        return result
    if embeddings.shape != reference.shape:
        result["error"] = f"embeddings {tuple(embeddings.shape)}, torch {tuple(reference.shape)}"
        return result
    result.update(metrics(reference, embeddings))
    failed = [f"{key} {result[key]:.6f} < {value:g}" for key, value in result["required"].items()
              if result[key] < value]
    result["passed"] = not failed
    if failed:
        result["error"] = "; ".join(failed)
    return result


# --- report -----------------------------------------------------------------------------------------------------

def print_rows(header: tuple, rows: list[tuple]) -> None:
    """A plain text table: the header, a rule, one line per row (the checkers of every model kind use it)."""
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*(str(cell) for cell in row)))


def print_table(results: list[dict], skipped: list[dict]) -> None:
    header = ("variant", "backend", "file", "cos mean", "cos min", "overlap", "spearman",
              "required min/mean/overlap/spearman", "result")
    rows = []
    for r in results:
        numbers = [f"{r[k]:.6f}" if r.get(k) is not None else "-" for k in
                   ("cosine_mean", "cosine_min", "neighbour_overlap", "spearman")]
        required = "/".join(f"{r['required'][k]:g}" if k in r["required"] else "-" for k in THRESHOLD_KEYS)
        rows.append((r["variant"], r["backend"], r["file_name"], *numbers, required,
                     "PASS" if r["passed"] else "FAIL"))
    for s in skipped:
        rows.append((s["variant"], s["backend"], s["file_name"], "-", "-", "-", "-", "-", "skipped"))
    print_rows(header, rows)
    for r in results:
        if r["error"]:
            print(f"  {r['variant']}: {r['error']}")
    for s in skipped:
        print(f"  {s['variant']}: skipped: {s['reason']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifact", type=Path, help="artifact folder (with manifest.json)")
    parser.add_argument("--model", type=Path, required=True, help="the source model folder (torch reference)")
    parser.add_argument("--texts", type=Path, help="a .jsonl of {\"text\": ...} (default: the artifact's "
                        "parity/texts.jsonl, else exporter/data/validation.jsonl)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--variant", action="append", help="check only this variant (repeatable)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SetupError as error:
        print(f"st57_check: {error}", file=sys.stderr)
        return 2


def environment_and_manifest(artifact: Path) -> tuple[dict[str, str | None], Path, dict]:
    """Print this environment's versions, refuse one that is not sentence-transformers 5.7, and read the
    artifact's manifest: (the versions, the manifest's path, its content). Shared with st57_cross_check.py."""
    found = versions()
    print("environment: " + ", ".join(f"{name} {version or 'absent'}" for name, version in found.items()))
    if not (found["sentence-transformers"] or "").startswith(EXPECTED_ST):
        raise SetupError(f"this is not a sentence-transformers {EXPECTED_ST}x environment "
                         f"(found {found['sentence-transformers']})")
    manifest_path = artifact / "manifest.json"
    if not manifest_path.is_file():
        raise SetupError(f"{artifact}: no manifest.json (not an artifact folder)")
    return found, manifest_path, json.loads(manifest_path.read_text(encoding="utf-8"))


def run(args: argparse.Namespace) -> int:
    found, _, manifest = environment_and_manifest(args.artifact)
    if not (args.model / "modules.json").is_file():
        raise SetupError(f"{args.model}: not a sentence-transformers model folder (no modules.json)")
    texts, texts_source = read_texts(args.artifact, args.texts)
    print(f"artifact: {args.artifact} (built by {manifest.get('tool', {}).get('name', '?')} "
          f"{manifest.get('tool', {}).get('version', '?')})")
    print(f"texts: {len(texts)} from {texts_source}")

    variants = [v for v in manifest["variants"] if not args.variant or v["name"] in args.variant]
    if args.variant and len(variants) != len(set(args.variant)):
        known = ", ".join(v["name"] for v in manifest["variants"])
        raise SetupError(f"unknown variant in {args.variant} (the manifest has: {known})")
    # sentence-transformers pools a graph's token embeddings itself: a sentence graph is not loaded through it.
    skipped = [{"variant": v["name"], "backend": v["backend"], "file_name": v["file_name"],
                "reason": "graph: sentence (not loaded through sentence-transformers)"}
               for v in variants if v.get("graph", "transformer") != "transformer"]
    variants = [v for v in variants if v.get("graph", "transformer") == "transformer"]

    notes: list[str] = []
    problems = check_config_files(args.artifact, args.model, texts, notes)
    print("config files: " + ("readable by this sentence-transformers / transformers" if not problems else
                              f"{len(problems)} problem(s)"))
    for problem in problems:
        print(f"  {problem}")
    for note in notes:
        print(f"  note: {note}")

    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(args.model), device="cpu", local_files_only=True).encode(
        texts, batch_size=BATCH_SIZE, convert_to_numpy=True)
    results = []
    for variant in variants:
        print(f"checking {variant['name']} ({variant['backend']}, {variant['file_name']}) ...", flush=True)
        results.append(check_variant(args.artifact, variant, texts, reference))
    print()
    print_table(results, skipped)
    passed = bool(results) and all(r["passed"] for r in results) and not problems
    if not results:
        print("no graph: transformer variant to check")
    print(f"\nresult: {'PASS' if passed else 'FAIL'}: {sum(r['passed'] for r in results)} of {len(results)} "
          f"variant(s) passed through sentence-transformers {found['sentence-transformers']}"
          + (f"; {len(problems)} config file problem(s)" if problems else ""))
    if args.json:
        report = {"passed": passed, "versions": found, "texts": texts_source, "config_problems": problems,
                  "config_notes": notes, "results": results, "skipped": skipped}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
