#!/usr/bin/env node
// Load an artifact folder's ONNX variants in transformers.js (@huggingface/transformers, Node) and compare with the
// folder's stored torch reference (parity/texts.jsonl, parity/reference.npy).
//
//   node check_transformersjs.mjs ARTIFACT_DIR [ARTIFACT_DIR ...]      (check_transformersjs.sh installs the library)
//
// The folder is a local model (env.localModelPath = its parent, env.allowRemoteModels = false). File names come
// from manifest.json: onnx/model.onnx loads with dtype "fp32", onnx/model_quantized.onnx with dtype "q8",
// onnx/model_fp16.onnx with "fp16" (the library's own names); any other file with model_file_name.
//   graph: transformer  pipeline("feature-extraction") with the model's pooling (mean / cls / last token) and
//                       normalize when modules.json has Normalize; Dense layers cannot be expressed: skipped.
//   graph: sentence     AutoModel + AutoTokenizer, output "sentence_embedding".
// Gated texts: those within max_seq_length tokens (counted with the artifact's tokenizer, through the library).
// transformers.js drops the final [SEP] of longer texts when it truncates (a client quirk), so they are encoded
// and reported ("cos min long") but not gated.
// Bars: fp32 cosine >= 0.99999 for every text and norms within 1e-4 relative; other precisions the variant's
// recorded validation_thresholds.cosine_min.
// Exit 0: every checked variant matched; 1: a mismatch or a variant that would not load; 2: bad input.

import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

import { AutoModel, AutoTokenizer, env, pipeline } from "@huggingface/transformers";

const FP32_COSINE_MIN = 0.99999;
const FP32_NORM_RTOL = 1e-4;
const BATCH_SIZE = 32;
const DTYPE_SUFFIXES = { "": "fp32", _fp16: "fp16", _quantized: "q8", _int8: "int8", _uint8: "uint8" };
const POOLING = { mean: "mean", cls: "cls", lasttoken: "last_token" };
const LEGACY_POOLING_KEYS = {
  pooling_mode_cls_token: "cls", pooling_mode_max_tokens: "max", pooling_mode_mean_tokens: "mean",
  pooling_mode_mean_sqrt_len_tokens: "mean_sqrt_len_tokens", pooling_mode_weightedmean_tokens: "weightedmean",
  pooling_mode_lasttoken: "lasttoken",
};

class BadInput extends Error {}

const readJson = (file) => JSON.parse(readFileSync(file, "utf8"));

// A .npy file: magic, version, header length, a Python dict literal header, then the raw array (C order).
function readNpy(file) {
  const buffer = readFileSync(file);
  if (buffer.subarray(0, 6).toString("latin1") !== "\x93NUMPY") throw new BadInput(`${file}: not a .npy file`);
  const major = buffer[6];
  const headerLength = major === 1 ? buffer.readUInt16LE(8) : buffer.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buffer.subarray(start, start + headerLength).toString("latin1");
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1].split(",").filter((s) => s.trim()).map(Number);
  if (descr !== "<f4" || fortran !== "False" || shape?.length !== 2) {
    throw new BadInput(`${file}: expected a C-order little-endian float32 matrix, got ${header.trim()}`);
  }
  const offset = start + headerLength;
  const data = new Float32Array(buffer.buffer.slice(buffer.byteOffset + offset, buffer.byteOffset + buffer.length));
  if (data.length !== shape[0] * shape[1]) throw new BadInput(`${file}: ${data.length} values for shape ${shape}`);
  return { rows: shape[0], cols: shape[1], data };
}

// [pooling for the pipeline or null, normalize, why not]
function postprocessing(folder) {
  const modules = readJson(path.join(folder, "modules.json"));
  const kinds = modules.map((module) => module.type.split(".").at(-1));
  if (kinds.includes("Dense")) return [null, false, "Dense layers: the pipeline cannot run them"];
  const pooling = modules.find((module) => module.type.endsWith("Pooling"));
  if (!pooling) return [null, false, "no Pooling module"];
  const config = readJson(path.join(folder, pooling.path, "config.json"));
  let modes = config.pooling_mode;
  if (modes === undefined) {
    modes = Object.entries(LEGACY_POOLING_KEYS).filter(([key]) => config[key]).map(([, mode]) => mode);
    if (modes.length === 0) modes = ["mean"];
  }
  modes = typeof modes === "string" ? [modes] : modes;
  if (modes.length !== 1 || !(modes[0] in POOLING)) {
    return [null, false, `pooling ${JSON.stringify(modes)}: the pipeline has mean, cls and last_token only`];
  }
  return [POOLING[modes[0]], kinds.includes("Normalize"), ""];
}

// The options that make transformers.js load this file: the library's own name where it has one.
function loadOptions(fileName) {
  const subfolder = path.posix.dirname(fileName);
  const stem = path.posix.basename(fileName, ".onnx");
  const options = subfolder === "onnx" ? {} : { subfolder };
  for (const [suffix, dtype] of Object.entries(DTYPE_SUFFIXES)) {
    if (stem === `model${suffix}`) return { ...options, dtype };
  }
  return { ...options, dtype: "fp32", model_file_name: stem };
}

function compare(got, reference, rows) {
  const cosine = [];
  const normRel = [];
  for (const [i, row] of rows.entries()) {
    let dot = 0, gotNorm = 0, refNorm = 0;
    for (let j = 0; j < reference.cols; j++) {
      const a = got[i * reference.cols + j];
      const b = reference.data[row * reference.cols + j];
      dot += a * b; gotNorm += a * a; refNorm += b * b;
    }
    gotNorm = Math.sqrt(gotNorm); refNorm = Math.sqrt(refNorm);
    cosine.push(dot / Math.max(gotNorm * refNorm, 1e-30));
    normRel.push(Math.abs(gotNorm - refNorm) / Math.max(refNorm, 1e-30));
  }
  return { cosine, normRel };
}

async function encode(variant, modelId, options, pooling, normalize, texts) {
  const out = new Float32Array(texts.length * variant.dim);
  if (variant.graph === "sentence") {
    const tokenizer = await AutoTokenizer.from_pretrained(modelId);
    const model = await AutoModel.from_pretrained(modelId, options);
    for (let i = 0; i < texts.length; i += BATCH_SIZE) {
      const inputs = tokenizer(texts.slice(i, i + BATCH_SIZE), { padding: true, truncation: true });
      const { sentence_embedding } = await model(inputs);
      if (!sentence_embedding) throw new Error("the model has no sentence_embedding output");
      out.set(sentence_embedding.data, i * variant.dim);
    }
    await model.dispose();
  } else {
    const extractor = await pipeline("feature-extraction", modelId, options);
    for (let i = 0; i < texts.length; i += BATCH_SIZE) {
      const result = await extractor(texts.slice(i, i + BATCH_SIZE), { pooling, normalize });
      out.set(result.data, i * variant.dim);
    }
    await extractor.dispose();
  }
  return out;
}

async function checkFolder(folder, table) {
  const manifestPath = path.join(folder, "manifest.json");
  if (!existsSync(manifestPath)) throw new BadInput(`${folder}: no manifest.json (not an artifact folder)`);
  const manifest = readJson(manifestPath);
  const maxSeqLength = Number(manifest.source.max_seq_length);
  const dim = Number(manifest.source.dimension);
  const textsPath = path.join(folder, "parity", "texts.jsonl");
  const referencePath = path.join(folder, "parity", "reference.npy");
  if (!existsSync(textsPath) || !existsSync(referencePath)) {
    throw new BadInput(`${folder}: no stored reference (parity/texts.jsonl, parity/reference.npy)`);
  }
  const texts = readFileSync(textsPath, "utf8").split("\n").filter((line) => line.trim()).map((l) => JSON.parse(l).text);
  const reference = readNpy(referencePath);
  if (reference.rows !== texts.length || reference.cols !== dim) {
    throw new BadInput(`${referencePath}: shape ${reference.rows}x${reference.cols} for ${texts.length} texts, dim ${dim}`);
  }

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(folder) + path.sep;
  const modelId = path.basename(folder);

  // Token counts with the artifact's tokenizer, untruncated, special tokens included.
  const tokenizer = await AutoTokenizer.from_pretrained(modelId);
  const tokens = texts.map((text) => tokenizer(text).input_ids.dims.at(-1));
  const within = tokens.map((count, i) => [count, i]).filter(([count]) => count <= maxSeqLength).map(([, i]) => i);
  const longer = tokens.map((count, i) => [count, i]).filter(([count]) => count > maxSeqLength).map(([, i]) => i);
  console.log(`${folder}: ${texts.length} texts; ${within.length} within max_seq_length ${maxSeqLength} tokens ` +
    `(gated), ${longer.length} longer (reported only: transformers.js drops their final [SEP])`);

  let ok = true;
  for (const variant of manifest.variants) {
    const row = { variant: variant.name, file: variant.file_name };
    if (variant.backend !== "onnx") continue;
    if (!variant.parity?.passed) { table.push({ ...row, result: "skipped: did not pass parity when built" }); continue; }
    let pooling = null, normalize = false, why = "";
    if (variant.graph !== "sentence") [pooling, normalize, why] = postprocessing(folder);
    if (variant.graph !== "sentence" && pooling === null) { table.push({ ...row, result: `skipped: ${why}` }); continue; }
    const options = loadOptions(variant.file_name);
    const loadedAs = JSON.stringify(options) + (variant.graph === "sentence" ? " AutoModel" : ` ${pooling}${normalize ? "+norm" : ""}`);
    const started = performance.now();
    let got;
    try {
      got = await encode({ ...variant, dim }, modelId, options, pooling, normalize, [...within, ...longer].map((i) => texts[i]));
    } catch (error) {
      ok = false;
      table.push({ ...row, loadedAs, result: `FAILED: ${String(error.message ?? error).split("\n")[0].slice(0, 160)}` });
      continue;
    }
    const seconds = (performance.now() - started) / 1000;
    const { cosine, normRel } = compare(got, reference, [...within, ...longer]);
    const gated = cosine.slice(0, within.length);
    const gatedNorm = normRel.slice(0, within.length);
    const cosMin = Math.min(...gated);
    const normMax = Math.max(...gatedNorm);
    let bar, passed;
    if (variant.precision === "fp32") {
      bar = `cos>=${FP32_COSINE_MIN}, norm<=${FP32_NORM_RTOL}`;
      passed = cosMin >= FP32_COSINE_MIN && normMax <= FP32_NORM_RTOL;
    } else {
      const threshold = Number(variant.validation_thresholds.cosine_min);
      bar = `cos>=${threshold} (recorded)`;
      passed = cosMin >= threshold;
    }
    ok &&= passed;
    table.push({
      ...row, loadedAs, cosMin, cosMean: gated.reduce((a, b) => a + b, 0) / gated.length,
      cosMinLong: longer.length ? Math.min(...cosine.slice(within.length)) : null, normMax, bar,
      seconds, result: passed ? "ok" : "MISMATCH",
    });
    if (!passed) {
      const worst = gated.map((c, k) => [c, within[k]]).sort((a, b) => a[0] - b[0]).slice(0, 3);
      for (const [c, i] of worst) {
        console.error(`  ${variant.name}: cosine ${c.toFixed(6)}, ${tokens[i]} tokens: ${JSON.stringify(texts[i].slice(0, 70))}`);
      }
    }
  }
  return ok;
}

function printTable(table) {
  const f = (value, digits) => (value === null || value === undefined ? "-" : typeof value === "number" ? value.toFixed(digits) : String(value));
  const header = ["variant", "file", "loaded as", "cos min", "cos mean", "cos min long", "norm rel max", "bar", "s", "result"];
  const lines = table.map((r) => [r.variant, r.file, r.loadedAs ?? "-", f(r.cosMin, 7), f(r.cosMean, 7), f(r.cosMinLong, 7),
    r.normMax === undefined ? "-" : r.normMax.toExponential(1), r.bar ?? "-", f(r.seconds, 1), r.result]);
  const widths = header.map((_, c) => Math.max(...[header, ...lines].map((line) => String(line[c]).length)));
  for (const line of [header, widths.map((w) => "-".repeat(w)), ...lines]) {
    console.log(line.map((cell, c) => String(cell).padEnd(widths[c])).join(" | ").trimEnd());
  }
}

async function main(argv) {
  if (argv.length === 0 || argv.includes("-h") || argv.includes("--help")) {
    console.error("usage: node check_transformersjs.mjs ARTIFACT_DIR [ARTIFACT_DIR ...]");
    return 2;
  }
  const here = path.dirname(new URL(import.meta.url).pathname);
  const version = (name) => {
    try { return readJson(path.join(here, "node_modules", name, "package.json")).version; } catch { return "?"; }
  };
  console.log(`@huggingface/transformers ${version("@huggingface/transformers")}, onnxruntime-node ` +
    `${version("onnxruntime-node")}, node ${process.version}, batch size ${BATCH_SIZE}`);
  const table = [];
  let ok = true;
  try {
    for (const folder of argv) ok = (await checkFolder(path.resolve(folder), table)) && ok;
  } catch (error) {
    if (!(error instanceof BadInput) && error.code !== "ENOENT" && !(error instanceof SyntaxError)) throw error;
    console.error(`check_transformersjs: ${error.message}`);
    return 2;
  }
  printTable(table);
  if (!table.some((row) => row.cosMin !== undefined || row.result.startsWith("FAILED"))) {
    console.error("check_transformersjs: no ONNX variant could be checked");
    return 2;
  }
  if (ok) console.log("transformers.js: all checked variants match");
  else console.error("transformers.js: MISMATCH");
  return ok ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
