"""The artifact folder, as every stage shares it: the typed manifest (``manifest``), checksums and atomic
writes (``integrity``), where each variant's files go (``layout``), facts about a sentence-transformers
model folder (``model_folder``) and the manifest's provenance record (``provenance``)."""
