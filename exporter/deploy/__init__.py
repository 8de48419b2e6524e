"""The deploy stage: which variant suits a host (``choice``) and getting it onto the host, verified
(``fetch``).

Public names are reached through ``exporter`` (``exporter.fetch``, ``exporter.fetch_variant``,
``exporter.load``, ``exporter.choose_variant``); this package re-exports nothing, so ``exporter.deploy.fetch``
stays the module and is never shadowed by the function.
"""
