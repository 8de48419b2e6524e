"""The parity report and its three renderings: JSON (``parity_report.json``, schema in
``report_schema.json``), JUnit XML (one testcase per variant and check, for CI test views) and Markdown (a
table per variant, for a CI step summary)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from exporter.validators.checks import Check
from exporter.validators.thresholds import Loosened

REPORT_SCHEMA_VERSION = 1
REPORT_NAME = "parity_report.json"


@dataclass
class VariantResult:
    """The checks of one variant and its verdict (``passed``: every gating check passed)."""

    name: str
    backend: str
    precision: str
    graph: str
    file_name: str
    thresholds: dict[str, float | None]
    checks: list[Check]
    seconds: float = 0.0
    loosened: list[Loosened] = field(default_factory=list)  # thresholds below the precision's defaults
    # What the runtime computed in on this host, read back from the compiled model (OpenVINO: "f32", "bf16"...);
    # None where the runtime has no such setting (ONNX Runtime on the CPU computes in the graph's types).
    inference_precision: str | None = None

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks if check.gating)

    def loosened_lines(self) -> list[str]:
        """One line per loosened threshold, e.g. "variant onnx-int8: cosine_min 0.9 < default 0.95"."""
        return [f"variant {self.name}: {item}" for item in self.loosened]

    def loosened_text(self, check: str) -> str | None:
        """"cosine_min 0.9 < default 0.95" when the threshold of ``check`` was loosened, else None."""
        return next((str(item) for item in self.loosened if item.check == check), None)

    def check(self, name: str) -> Check:
        """The check called ``name``. Raises ``KeyError`` when there is none."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def failures(self) -> list[str]:
        """One line per failed gating check, e.g. "variant onnx-int8: cosine_min 0.9412 < required 0.95"."""
        return [
            f"variant {self.name}: {describe_failure(check)}"
            for check in self.checks
            if check.gating and not check.passed
        ]


@dataclass
class ParityReport:
    """Everything one validation run measured, and the verdict. ``passed`` is the CI gate."""

    folder: str
    recipe: str | None
    reference: str  # "source" (torch model run now) or "stored" (parity/reference.npy)
    source: str | None  # where the torch model was read from, when reference == "source"
    max_seq_length: int
    texts: dict[str, int]  # total, builtin, extra, batch_1 (texts encoded one at a time)
    batch_sizes: list[int]
    variants: list[VariantResult] = field(default_factory=list)
    seconds: float = 0.0
    created_at: str = ""
    tool_version: str = ""
    record_error: str | None = None  # validate(record=True) could not write the results into the folder
    # Where the thresholds came from (``ThresholdPolicy.to_dict``): policy, file, description.
    thresholds: dict[str, Any] = field(default_factory=lambda: {"policy": "artifact", "file": None})
    # The manifest's source.trust_remote_code (recorded) and the caller's (used: the only one obeyed).
    trust_remote_code: dict[str, bool] = field(default_factory=lambda: {"recorded": False, "used": False})

    @property
    def passed(self) -> bool:
        return bool(self.variants) and all(variant.passed for variant in self.variants)

    def variant(self, name: str) -> VariantResult:
        """The result of the variant called ``name``. Raises ``KeyError`` when there is none."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(name)

    def failures(self) -> list[str]:
        """One line per failed gating check over all variants, naming the variant, check, measured and required."""
        return [line for variant in self.variants for line in variant.failures()]

    def loosened(self) -> list[str]:
        """One line per threshold looser than its precision's default, over all variants."""
        return [line for variant in self.variants for line in variant.loosened_lines()]

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON data (the structure ``report_schema.json`` describes)."""
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "tool": {"name": "embedding-exporter", "version": self.tool_version},
            "created_at": self.created_at,
            "folder": self.folder,
            "recipe": self.recipe,
            "passed": self.passed,
            "reference": self.reference,
            "source": self.source,
            "max_seq_length": self.max_seq_length,
            "texts": dict(self.texts),
            "batch_sizes": list(self.batch_sizes),
            "seconds": round(self.seconds, 3),
            "thresholds": dict(self.thresholds),
            "trust_remote_code": dict(self.trust_remote_code),
            "variants": [
                {
                    "name": v.name, "backend": v.backend, "precision": v.precision, "graph": v.graph,
                    "file_name": v.file_name, "passed": v.passed, "seconds": round(v.seconds, 3),
                    "thresholds": dict(v.thresholds),
                    "loosened": [item.to_dict() for item in v.loosened],
                    "inference_precision": v.inference_precision,
                    "checks": [_json_safe(asdict(check)) for check in v.checks],
                }
                for v in self.variants
            ],
        }

    def to_json(self) -> str:
        """``to_dict`` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_junit(self) -> str:
        """JUnit XML: a testsuite per variant, a testcase per check (classname = variant name).

        Failed gating checks carry ``<failure message="measured X vs required Y">``; reported checks always
        pass and carry their value in ``system-out``. Each testsuite's ``properties`` name the thresholds'
        policy and every loosened threshold (``loosened.cosine_min`` = "cosine_min 0.9 < default 0.95"), which
        the check's own testcase repeats.
        """
        suites = ET.Element("testsuites", name="parity", tests="0", failures="0", time=f"{self.seconds:.3f}")
        total = failed = 0
        for variant in self.variants:
            suite = ET.SubElement(suites, "testsuite", name=f"parity.{variant.name}", time=f"{variant.seconds:.3f}")
            properties = ET.SubElement(suite, "properties")
            ET.SubElement(properties, "property", name="thresholds", value=str(self.thresholds.get("policy")))
            for item in variant.loosened:
                ET.SubElement(properties, "property", name=f"loosened.{item.check}", value=str(item))
            suite_failures = 0
            for check in variant.checks:
                case = ET.SubElement(suite, "testcase", classname=variant.name, name=check.name, time="0")
                loosened = variant.loosened_text(check.name)
                note = f" (loosened: {loosened})" if loosened else ""
                if check.gating and not check.passed:
                    suite_failures += 1
                    failure = ET.SubElement(
                        case, "failure", type="ParityCheckFailed",
                        message=f"measured {format_value(check.measured, check.required)} vs required "
                        f"{format_required(check.required)}{note}",
                    )
                    failure.text = f"variant {variant.name}: {describe_failure(check)}{note}"
                else:
                    ET.SubElement(case, "system-out").text = _value_line(check) + note
            suite.set("tests", str(len(variant.checks)))
            suite.set("failures", str(suite_failures))
            suite.set("errors", "0")
            total += len(variant.checks)
            failed += suite_failures
        suites.set("tests", str(total))
        suites.set("failures", str(failed))
        ET.indent(suites)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"

    def to_markdown(self) -> str:
        """Markdown for a CI step summary: the verdict, how it was measured, and a table per variant."""
        verdict = "✅ passed" if self.passed else "❌ failed"
        reference = (f"torch model from `{self.source}`" if self.reference == "source"
                     else "stored reference (`parity/reference.npy`)")
        lines = [
            f"## Parity: {self.recipe or self.folder} — {verdict}",
            "",
            f"Reference: {reference}. {self.texts.get('total', 0)} texts ({self.texts.get('builtin', 0)} built-in, "
            f"{self.texts.get('extra', 0)} extra), max_seq_length {self.max_seq_length}; batch size 1 on "
            f"{self.texts.get('batch_1', 0)} texts, batch size {max(self.batch_sizes)} on all (mixed lengths). "
            f"{self.seconds:.1f} s.",
        ]
        if self.thresholds.get("description"):
            lines += ["", f"Thresholds: {self.thresholds['description']}."]
        for variant in self.variants:
            mark = "✅" if variant.passed else "❌"
            lines += [
                "",
                f"### {mark} `{variant.name}` ({variant.backend}, {variant.precision}, graph: {variant.graph})",
                "",
            ]
            if variant.loosened:
                lines += ["**Loosened thresholds** (below the precision defaults): "
                          + "; ".join(str(item) for item in variant.loosened) + ".", ""]
            lines += ["| check | measured | required | result |", "|---|---|---|---|"]
            for check in variant.checks:
                required = format_requirement(check)
                result = ("pass" if check.passed else "**FAIL**") if check.gating else "reported"
                lines.append(f"| {check.name} | {format_value(check.measured, check.required)} "
                             f"| {required} | {result} |")
        return "\n".join(lines) + "\n"


def variant_result_from_dict(data: dict[str, Any]) -> VariantResult:
    """A variant's result read back from ``parity_report.json`` (``ParityReport.to_dict``'s form), e.g. what a
    build cache kept with the variant or what a shard's report holds."""
    return VariantResult(
        name=data["name"], backend=data["backend"], precision=data["precision"], graph=data["graph"],
        file_name=data["file_name"], thresholds=dict(data.get("thresholds") or {}),
        checks=[Check(**check) for check in data.get("checks") or []], seconds=float(data.get("seconds") or 0.0),
        loosened=[Loosened(**item) for item in data.get("loosened") or []],
        inference_precision=data.get("inference_precision"))


def report_schema() -> dict[str, Any]:
    """The JSON Schema of ``parity_report.json`` (shipped as ``exporter/validators/report_schema.json``)."""
    text = resources.files("exporter.validators").joinpath("report_schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def describe_failure(check: Check) -> str:
    """"cosine_min 0.9412 < required 0.95", or why the check could not be measured."""
    if check.name == "runs":
        return f"runs failed: {check.detail}"
    if check.measured is None:
        return f"{check.name} {check.detail or 'not measured'}"
    operator = {">=": "<", "<=": ">"}.get(check.comparison or "", "!=")  # "<=": a reranker's max_abs_diff
    return (f"{check.name} {format_value(check.measured, check.required)} {operator} "
            f"required {format_required(check.required)}")


def format_value(value: Any, against: Any = None) -> str:
    """A measured value for people: floats with 4 decimals, or as many more as it takes for the printed value
    to compare with ``against`` as the real one does (0.99989 vs 0.9999 must not print as 0.9999)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        comparable = isinstance(against, (int, float)) and not isinstance(against, bool)
        if not comparable and value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"  # e.g. max_abs_diff 3.58e-07, not 0.0000
        for decimals in range(4, 13):
            text = f"{value:.{decimals}f}"
            if not comparable or (float(text) >= against) == (value >= against):
                return text
        return repr(value)
    if isinstance(value, list):
        return "×".join(str(item) for item in value)
    return str(value)


def format_required(value: Any) -> str:
    """A threshold as written in a recipe: 0.95, 0.9999 (shortest form)."""
    if isinstance(value, float):
        return f"{value:.10g}"
    return format_value(value)


def format_requirement(check: Check) -> str:
    """What a check requires, for tables: "≥ 0.9999", "float32", or "–" for a reported check."""
    if not check.gating or check.required is None:
        return "–"
    prefix = "≥ " if check.comparison == ">=" else ""
    return prefix + format_required(check.required)


def _value_line(check: Check) -> str:
    per_batch = ", ".join(f"batch {b}: {format_value(v)}" for b, v in check.by_batch.items())
    return f"{check.name} = {format_value(check.measured)}" + (f" ({per_batch})" if per_batch else "")


def _json_safe(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null (a metric that could not be measured)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value
