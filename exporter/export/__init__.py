"""Stage 2, recipe → artifact folder: orchestration, staging and atomic placement (``builder``), the source
model (``source``), the torch graphs (``graphs``), one variant at a time (``variants``), everything ONNX
(``onnx_backend``), everything OpenVINO (``openvino_backend``), calibration texts (``calibration``) and the
manifest's provenance record (``provenance``: ``finalize_manifest``, which ``push`` also calls)."""
