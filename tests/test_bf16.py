"""precision: bf16 for OpenVINO: its own IR, compiled with bf16 inference precision, held to fp16's defaults.

Nothing here depends on this host's CPU: what runs is read back from the compiled model, and the expectations
follow from it (bf16 where the CPU has AVX512_BF16 / AMX-BF16, f32 or emulated bf16 elsewhere).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import cosine, write_recipe
from sentence_transformers import SentenceTransformer

from exporter import build, choose_variant, load_encoder
from exporter.artifact.manifest import Manifest
from exporter.constants import NATIVE_BF16_FLAGS
from exporter.runtime.host import HostProfile, cpu_flags
from exporter.validators.thresholds import default_thresholds

TEXTS = ["a short query", "a somewhat longer sentence about embeddings and their precision", "x"]


@pytest.fixture(scope="module")
def bf16_build(tmp_path_factory, tiny_model):
    folder = tmp_path_factory.mktemp("bf16")
    model_dir = tiny_model("bert", "mean", False, True)
    recipe = write_recipe(folder, f"""\
        name: tiny-bf16
        model:
          path: {model_dir}
        variants:
          - {{backend: openvino, precision: fp32}}
          - {{backend: openvino, precision: bf16}}
          - {{backend: openvino, precision: bf16, graph: sentence}}
        """)
    return build(recipe, output=folder / "out"), model_dir


def _compiled_precision(xml_path, config) -> str:
    import openvino as ov

    return ov.Core().compile_model(str(xml_path), "CPU", config).get_property("INFERENCE_PRECISION_HINT").to_string()


def test_bf16_variants_have_their_own_ir_and_bf16_numerics(bf16_build):
    result, _ = bf16_build
    manifest = result.manifest
    fp32, bf16, bf16_sentence = (manifest.variant(name) for name in
                                 ("openvino-fp32", "openvino-bf16", "openvino-bf16-sentence"))
    assert fp32.runtime_options == {"INFERENCE_PRECISION_HINT": "f32"}
    assert bf16.runtime_options == bf16_sentence.runtime_options == {"INFERENCE_PRECISION_HINT": "bf16"}
    assert bf16.file_name == "openvino/openvino_model_bf16.xml"  # not the fp32 client default
    assert {entry.path for entry in bf16.files}.isdisjoint(entry.path for entry in fp32.files)
    # The IR itself carries the setting too (for plain-OpenVINO readers), the weights are stored in fp16.
    xml = (result.output / bf16.file_name).read_text()
    assert 'INFERENCE_PRECISION_HINT value="bf16"' in xml and 'element_type="f16"' in xml


def test_bf16_is_validated_with_fp16_defaults_and_records_what_ran(bf16_build):
    result, _ = bf16_build
    assert result.report.passed, result.report.failures()
    report = json.loads((result.output / "parity_report.json").read_text())
    by_name = {v["name"]: v for v in report["variants"]}
    fp16_defaults = default_thresholds("fp16").model_dump()
    for name in ("openvino-bf16", "openvino-bf16-sentence"):
        assert by_name[name]["thresholds"] == fp16_defaults
        variant = result.manifest.variant(name)
        # what the validator recorded is what OpenVINO compiles here with the recorded settings
        ran = _compiled_precision(result.output / variant.file_name, variant.runtime_options)
        assert by_name[name]["inference_precision"] == variant.parity.inference_precision == ran
        assert variant.parity.validated_on == HostProfile.detect(probe=False).cpu_line()
    assert result.manifest.variant("openvino-fp32").parity.inference_precision == "f32"


def test_bf16_encoder_says_what_runs_and_stays_close(bf16_build):
    result, model_dir = bf16_build
    expected = SentenceTransformer(str(model_dir), device="cpu").encode(TEXTS)
    native = bool(cpu_flags() & NATIVE_BF16_FLAGS)
    for name in ("openvino-bf16", "openvino-bf16-sentence"):
        encoder = load_encoder(result.output, name)
        settings = encoder.settings
        compiled = settings["compiled_inference_precision"]
        assert settings["bf16"] == ("f32" if compiled != "bf16" else "native" if native else "emulated")
        embeddings = encoder.encode(TEXTS)
        assert embeddings.shape == expected.shape and embeddings.dtype == np.float32
        assert cosine(embeddings, expected).min() >= 0.999
    fp32 = load_encoder(result.output, "openvino-fp32")
    assert fp32.settings["compiled_inference_precision"] == "f32" and "bf16" not in fp32.settings


def _manifest(*variants: tuple[str, str, str, float]) -> Manifest:
    entries = [{"name": name, "backend": backend, "precision": precision, "file_name": f"{name}.xml",
                "files": [{"path": f"{name}.xml", "sha256": "0" * 64, "size": 1}],
                "parity": {"passed": True, "cosine_min": cosine_min}}
               for name, backend, precision, cosine_min in variants]
    return Manifest.parse({"schema_version": 1, "shared_files": [], "variants": entries}, "test manifest")


RUNTIMES = {"onnxruntime": "1.31.1", "openvino": "2026.4.1"}
AMX_BF16 = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8",
                                                           "amx_bf16", "avx512_bf16"}), runtimes=RUNTIMES)
ZEN4 = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}),
                   runtimes=RUNTIMES)
VNNI_NO_BF16 = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "avx512f", "avx512_vnni"}), runtimes=RUNTIMES)
AVX2_ONLY = HostProfile(arch="x86_64", cpu_flags=frozenset({"avx2", "fma"}), runtimes=RUNTIMES)


@pytest.mark.parametrize(("host", "chosen"), [(AMX_BF16, "openvino-bf16"), (ZEN4, "openvino-bf16"),
                                              (VNNI_NO_BF16, "openvino-fp32"), (AVX2_ONLY, "openvino-fp32")])
def test_automatic_choice_takes_bf16_only_where_it_runs_natively(host, chosen):
    manifest = _manifest(("openvino-fp32", "openvino", "fp32", 0.99999), ("openvino-bf16", "openvino", "bf16", 0.9999))
    choice = choose_variant(manifest, host)
    assert choice.name == chosen
    bf16 = next(c for c in choice.candidates if c.name == "openvino-bf16")
    if host.native_bf16:
        assert bf16.fit == "good" and bf16.speed > 1.0
    else:
        assert bf16.fit == "check" and bf16.speed < 1.0
        assert "AVX512_BF16 or AMX-BF16" in bf16.notes[0] and "falls back to f32 or emulates bf16" in bf16.notes[0]


def test_int8_with_bf16_float_layers_is_its_own_variant_run_as_validated(tmp_path, tiny_model):
    """quantization.float_precision: bf16 — the same int8 graph, its float ops (exclusions, softmax,
    normalisation) compiled in bf16: its own IR and name, bf16 numerics recorded, read back when loaded."""
    model_dir = tiny_model("bert", "mean", False, True)
    int8 = "{backend: openvino, precision: int8, quantization: {calibration: {samples: 16}%s}}"
    recipe = write_recipe(tmp_path, f"""\
        name: tiny-int8-bf16
        model:
          path: {model_dir}
        variants:
          - {int8 % ""}
          - {int8 % ", float_precision: bf16"}
        """)
    result = build(recipe, output=tmp_path / "out", validate=False)
    f32_float, bf16_float = (result.manifest.variant(name)
                             for name in ("openvino-int8-static", "openvino-int8-static-bf16"))
    assert bf16_float.file_name == "openvino/openvino_model_int8_static_bf16.xml"
    assert bf16_float.runtime_options == {"INFERENCE_PRECISION_HINT": "bf16"}
    assert f32_float.runtime_options == {"INFERENCE_PRECISION_HINT": "f32"}
    assert (bf16_float.quantization.float_precision, f32_float.quantization.float_precision) == ("bf16", "f32")
    assert 'INFERENCE_PRECISION_HINT value="bf16"' in (result.output / bf16_float.file_name).read_text()
    native = bool(cpu_flags() & NATIVE_BF16_FLAGS)
    encoder = load_encoder(result.output, bf16_float.name)
    compiled = encoder.settings["compiled_inference_precision"]
    assert compiled == _compiled_precision(result.output / bf16_float.file_name, bf16_float.runtime_options)
    assert encoder.settings["bf16"] == ("f32" if compiled != "bf16" else "native" if native else "emulated")
    reference = load_encoder(result.output, f32_float.name)
    assert reference.settings["compiled_inference_precision"] == "f32"
    # bf16 float ops on top of int8 error: close to the same graph with f32 float ops
    assert cosine(encoder.encode(TEXTS), reference.encode(TEXTS)).min() >= 0.99


def test_float_precision_is_refused_for_onnx(tmp_path, tiny_model):
    from exporter import load_recipe
    from exporter.errors import BadInputError

    recipe = write_recipe(tmp_path, f"""\
        name: tiny-onnx-bf16
        model:
          path: {tiny_model("bert", "mean", False, True)}
        variants:
          - {{backend: onnx, precision: int8, quantization: {{float_precision: bf16}}}}
        """)
    with pytest.raises(BadInputError, match=r"variants\[0\]\.quantization\.float_precision: only for backend "
                                            r"openvino") as raised:
        load_recipe(recipe)
    assert raised.value.exit_code == 2


@pytest.mark.parametrize("host", [AMX_BF16, ZEN4, VNNI_NO_BF16, AVX2_ONLY])
def test_int8_with_bf16_float_layers_is_good_only_on_the_cpu_class_it_was_validated_on(host):
    """Without native bf16 it is checked like a bf16 variant; with it, only a host of the validating CPU's class
    gets it as good (OpenVINO's int8 + bf16 kernels on AMX gave wrong embeddings where AVX-512 BF16 did not)."""
    def candidate(validated_on: str | None):
        manifest = _manifest(("openvino-int8-static-bf16", "openvino", "int8", 0.98))
        manifest.variants[0].runtime_options = {"INFERENCE_PRECISION_HINT": "bf16"}
        manifest.variants[0].parity.validated_on = validated_on
        return choose_variant(manifest, host).candidates[0]

    same = candidate(host.cpu_line())
    assert same.float_precision == "bf16"
    if not host.native_bf16:
        assert same.fit == "check" and "its float layers' bf16 runs natively only on CPUs with" in same.notes[0]
        return
    assert same.fit == "good", same.notes
    other_class = ZEN4 if host is AMX_BF16 else AMX_BF16
    for validated_on in (other_class.cpu_line(), None):
        other = candidate(validated_on)
        assert other.fit == "check", validated_on
        assert "int8 with bf16 float ops was validated on" in other.notes[-1]
        assert ("an unrecorded CPU" if validated_on is None else "CPUs") in other.notes[-1]
