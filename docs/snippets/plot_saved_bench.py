import json

from exporter.diagnostics.bench_plot import write_chart

# Draw a saved bench.json again (any run, any machine): the CPU it was measured on is in the title.
data = json.load(open("artifacts/minilm-openvino/bench.json"))
write_chart(data, "minilm-openvino-bench.svg", name="minilm-openvino")
