"""The publish stage: the model card (``card``) and the one-commit push to a Hub repo (``push``).

Public names are reached through ``exporter`` (``exporter.push``, ``exporter.write_card``); this package
re-exports nothing, so ``exporter.publish.push`` stays the module and is never shadowed by the function.
The Hub plumbing both publish and deploy use is ``exporter.hub``.
"""
