"""The artifact folder, as every stage shares it: the typed manifest (``manifest``), checksums and atomic
writes (``integrity``), where each variant's files go (``layout``), facts about a sentence-transformers
model folder (``model_folder``) and what a folder may hold without ``trust_remote_code`` (``safety``). It
imports only the foundation (``constants``, ``errors``, ``progress``): every stage reads it (see
docs/architecture.md)."""
