"""The speed/accuracy chart of one ``exporter bench`` run (``exporter bench --plot FILE.png|svg``).

The decision bench supports, which variant is fast enough at which accuracy on which texts, reads best as a
picture: one point per model and length class, speed (× torch, same run) against accuracy (cosine min with
torch on the same texts), the CPU in the title. A second panel puts each variant's top-10 neighbour overlap
next to its speed when the caller has it: bench does not measure overlap, the validator does (manifest
``parity.neighbour_overlap``, on the validation texts), so that panel says where its numbers come from.

Everything is drawn from bench.json's content (``BenchResult.to_dict()``), so a saved bench.json can be
plotted again later (``write_chart``). matplotlib is an optional extra (``plot``), imported only here, only
when a chart is drawn, with the Agg backend (no display needed); ``require_matplotlib`` lets a caller fail
before anything is measured. The bytes are deterministic for one matplotlib version (no date in the file, fixed
SVG ids), so the same bench.json gives the same chart and pushing it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exporter.artifact.layout import CHART_NAMES, CHART_SUFFIXES
from exporter.errors import BadInputError, RuntimeUnavailableError

PLOT_FIX = 'pip install "embedding-exporter[plot]"'
# One marker per length class, one colour per model (matplotlib's default cycle, in bench.json's order).
CLASS_MARKERS = {"short": "o", "mixed": "s", "long": "^"}


def require_matplotlib() -> None:
    """``RuntimeUnavailableError`` naming the ``plot`` extra when matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as error:
        raise RuntimeUnavailableError(f"plotting needs matplotlib, which is not installed ({error}); "
                                      f"install it with: {PLOT_FIX}", fix=PLOT_FIX) from None


def chart_suffix(path: str | Path, *, parameter: str = "plot") -> str:
    """The chart format of ``path`` (``.png`` or ``.svg``); ``BadInputError`` naming ``parameter`` otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in CHART_SUFFIXES:
        raise BadInputError(f"{parameter}={path}: a chart is written as .png or .svg, not "
                            f"{suffix or 'a file without a suffix'}")
    return suffix


def chart_title(data: Mapping[str, Any], name: str | None = None) -> str:
    """The chart's title: what was measured, and on which CPU (with its cores and the run's settings)."""
    host, settings = data.get("host") or {}, data.get("settings") or {}
    cpu = host.get("cpu") or "unknown CPU"
    details = [f"{host['cores']} cores" if host.get("cores") else None,
               f"{settings['threads']} threads" if settings.get("threads") else None,
               f"batch {settings['batch_size']}" if settings.get("batch_size") else None]
    details = [item for item in details if item]
    head = f"{name}: speed against accuracy" if name else "Speed against accuracy"
    title = f"{head}\n{cpu}" + (f" ({', '.join(details)})" if details else "")
    speed_class = _speed_class(host)
    return title + (f"; {speed_class}" if speed_class else "")


def _speed_class(host: Mapping[str, Any]) -> str | None:
    """The CPU's speed class as the speed table names it ("AMX CPUs", "AVX2 CPUs without VNNI"...), from the ISA
    flags bench.json recorded: a CPU name alone ("Intel(R) Xeon(R) Processor") often does not say it."""
    from exporter.runtime.host import ISA_CLASSES, HostProfile

    if not host.get("isa"):
        return None
    isa_class = HostProfile.from_cpu_line(f"{host.get('cpu') or 'cpu'} ({', '.join(host['isa'])})").isa_class
    return ISA_CLASSES.get(isa_class) if isa_class else None


def chart_points(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One point per model and length class with both a ratio to torch and a cosine min: ``model``, ``class``,
    ``ratio``, ``cosine_min``, ``cosine_mean``. Torch is the (1, 1) anchor; rows without a torch reference have
    no ratio and are left out."""
    points = []
    for row in data.get("results") or []:
        for class_name, numbers in (row.get("classes") or {}).items():
            ratio, cosine_min = numbers.get("ratio_to_torch"), numbers.get("cosine_min")
            if row.get("kind") == "torch":
                cosine_min = 1.0 if ratio is not None else None
            if ratio is None or cosine_min is None:
                continue
            points.append({"model": row["name"], "class": class_name, "ratio": float(ratio),
                           "cosine_min": float(cosine_min), "cosine_mean": numbers.get("cosine_mean")})
    return points


def render_chart(data: Mapping[str, Any], suffix: str = ".png", *, name: str | None = None,
                 overlap: Mapping[str, float] | None = None) -> bytes:
    """The chart of bench.json's content ``data`` as PNG or SVG bytes (``suffix``).

    ``overlap``: top-10 neighbour overlap per variant name (the validator's, from the manifest); when any
    bench row has one, a second panel plots it against the row's summary-class speed. ``name`` heads the title
    (the artifact folder's name). ``BadInputError`` when the run has no point to draw (no torch reference:
    no ratios); ``RuntimeUnavailableError`` without matplotlib."""
    import io

    require_matplotlib()
    suffix = chart_suffix(f"chart{suffix}", parameter="suffix")
    points = chart_points(data)
    if not points:
        raise BadInputError("the bench run has no ratio to torch to plot (it ran without the torch reference)")
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    overlap_rows = _overlap_rows(data, overlap or {})
    models = list(dict.fromkeys(point["model"] for point in points))
    classes = list(dict.fromkeys(point["class"] for point in points))
    # SVG text stays text (searchable, smaller); fixed ids so the same numbers give the same bytes.
    with matplotlib.rc_context({"svg.hashsalt": "embedding-exporter", "svg.fonttype": "none", "font.size": 9}):
        colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        colour = {model: colours[i % len(colours)] for i, model in enumerate(models)}
        panels = 2 if overlap_rows else 1
        figure = Figure(figsize=(7.5 + 4.5 * (panels - 1), 5.2), layout="constrained")
        axes = figure.subplots(1, panels, squeeze=False)[0]
        speed = axes[0]
        for point in points:
            speed.scatter(point["cosine_min"], point["ratio"], color=colour[point["model"]],
                          marker=CLASS_MARKERS.get(point["class"], "D"), s=46, edgecolors="black", linewidths=0.4,
                          zorder=3)
        speed.axhline(1.0, color="grey", linewidth=0.8, linestyle=":", zorder=1)
        speed.set_ylim(bottom=0)  # from zero: a ratio's height reads as its size
        speed.set_xlabel("cosine min with torch (per text, same texts; 1 = identical)")
        speed.set_ylabel("speed: × torch fp32 (texts/s, same run)")
        speed.set_title("per model and length class", fontsize=9)
        speed.grid(True, linewidth=0.4, alpha=0.5)
        speed.ticklabel_format(axis="x", useOffset=False)
        if overlap_rows:
            top = axes[1]
            for row in overlap_rows:
                top.scatter(row["overlap"], row["ratio"], color=colour.get(row["model"], "black"), marker="D", s=46,
                            edgecolors="black", linewidths=0.4, zorder=3)
            top.axhline(1.0, color="grey", linewidth=0.8, linestyle=":", zorder=1)
            top.set_ylim(bottom=0)
            top.set_xlabel("top-10 neighbour overlap with torch (validator, validation texts)")
            top.set_ylabel(f"speed: × torch fp32 ({overlap_rows[0]['class']} texts)")
            top.set_title("per variant: the validator's overlap", fontsize=9)
            top.grid(True, linewidth=0.4, alpha=0.5)
        handles = [Line2D([], [], color=colour[model], marker="o", linestyle="", label=model) for model in models]
        handles += [Line2D([], [], color="grey", marker=CLASS_MARKERS.get(c, "D"), linestyle="", label=f"{c} texts")
                    for c in classes]
        figure.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
        title = chart_title(data, name)
        figure.suptitle(title, fontsize=10)
        buffer = io.BytesIO()
        metadata = {"Title": title.replace("\n", ": ")}  # PNG tEXt / SVG dc:title: what and which CPU
        if suffix == ".svg":
            figure.savefig(buffer, format="svg", metadata={**metadata, "Date": None})
        else:
            figure.savefig(buffer, format="png", dpi=110, metadata=metadata)
    return buffer.getvalue()


def write_chart(data: Mapping[str, Any], path: str | Path, *, name: str | None = None,
                overlap: Mapping[str, float] | None = None) -> Path:
    """Draw bench.json's content ``data`` (e.g. ``json.load`` of a saved bench.json) into ``path`` (.png or
    .svg, written atomically); returns the path. Errors as ``render_chart``, and ``BadInputError`` for another
    suffix."""
    from exporter.artifact.integrity import write_bytes_atomic

    target = Path(path)
    chart = render_chart(data, chart_suffix(target), name=name, overlap=overlap)
    if target.parent != Path(""):
        target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, chart)
    return target


def manifest_overlap(manifest) -> dict[str, float]:
    """Each validated variant's top-10 neighbour overlap (``parity.neighbour_overlap``) from a ``Manifest``."""
    return {variant.name: float(variant.parity.neighbour_overlap) for variant in manifest.variants
            if variant.parity is not None and variant.parity.neighbour_overlap is not None}


def _overlap_rows(data: Mapping[str, Any], overlap: Mapping[str, float]) -> list[dict[str, Any]]:
    """The variant rows with an overlap: its value and the row's summary-class speed."""
    rows = []
    for row in data.get("results") or []:
        name = str(row.get("name", ""))
        base = name.removesuffix(f" ({row.get('loader')})")
        if row.get("kind") != "variant" or base not in overlap or row.get("ratio_to_torch") is None:
            continue
        rows.append({"model": name, "overlap": overlap[base], "ratio": float(row["ratio_to_torch"]),
                     "class": row.get("summary_class", "mixed")})
    return rows


__all__ = ["CHART_NAMES", "CHART_SUFFIXES", "PLOT_FIX", "chart_points", "chart_suffix", "chart_title",
           "manifest_overlap", "render_chart", "require_matplotlib", "write_chart"]
