"""Measuring and checking a host: ``exporter bench`` (``benchmark`` and its ``bench_*`` parts) and
``exporter doctor`` (``doctor``)."""
