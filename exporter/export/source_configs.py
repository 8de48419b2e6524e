"""The artifact's configuration files are the source model's own, so that every client that reads the source
reads the artifact.

sentence-transformers 6 saves its modules under new class paths (``sentence_transformers.base.modules...``) and
new config keys (``1_Pooling/config.json``: ``pooling_mode``), which sentence-transformers 5.7 cannot import;
transformers 5 saves tokenizer configs that transformers 4 maps to a slow tokenizer needing ``vocab.txt``, which
it no longer writes. The source model's files are read by both (every version loads models saved years ago), so
after ``SentenceTransformer.save`` each JSON file it wrote is replaced by the source's file of the same path, and
the source's tokenizer vocabulary files are added. Files only the save wrote stay as saved.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from exporter.artifact.model_folder import transformer_module_path

# Tokenizer files older transformers versions read besides tokenizer.json (vocabularies, merges, special tokens).
TOKENIZER_VOCABULARY_FILES = ("vocab.txt", "vocab.json", "merges.txt", "special_tokens_map.json", "added_tokens.json",
                              "spiece.model", "sentencepiece.bpe.model", "tokenizer.model")


def keep_source_configs(source_dir: Path, folder: Path) -> list[str]:
    """Replace the JSON files saved into ``folder`` with ``source_dir``'s files of the same relative path and add
    the source's tokenizer vocabulary files to the Transformer module's folder. Returns the relative paths taken
    from the source."""
    source_dir, folder = Path(source_dir), Path(folder)
    taken: list[str] = []
    for saved in sorted(folder.rglob("*.json")):
        relative = saved.relative_to(folder)
        original = source_dir / relative
        if original.is_file():
            shutil.copyfile(original, saved)  # follows a cache snapshot's links; writes a plain file
            taken.append(relative.as_posix())
    module_path = transformer_module_path(folder)
    for name in TOKENIZER_VOCABULARY_FILES:
        original = source_dir / module_path / name
        target = folder / module_path / name
        if original.is_file() and not target.exists():
            shutil.copyfile(original, target)
            taken.append((Path(module_path) / name).as_posix())
    return taken
