"""The shipped speed table (exporter/data/speed_table.json) loads, every row has positive speeds and says where
they come from, and a malformed table fails with one line naming the file and the field. How the variant
choice uses it is tested with the choice (tests/test_fetch.py)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from exporter.deploy.speed_table import SpeedTableError, parse_speed_table, read_speed_table, shipped_speed_table
from exporter.runtime.host import HostProfile


def shipped_json() -> dict:
    return json.loads(resources.files("exporter").joinpath("data", "speed_table.json").read_text(encoding="utf-8"))


def test_the_shipped_table_loads_and_every_row_says_where_its_numbers_come_from():
    table = shipped_speed_table()
    assert table.schema_version == 1 and table.table_version and table.rows
    for row in table.rows:
        assert row.speed and all(value > 0 for value in row.speed.values()), row.key
        source = table.source_of(row)
        assert source.detail, row.source
        if source.status in ("measured", "simulated"):
            assert source.cpu and source.flags and source.how in ("exporter bench", "sentence-transformers")
            assert source.date or "date was not recorded" in source.detail, row.source
            # the CPU it was measured on belongs to the class the row is for
            measured_on = HostProfile(arch="x86_64", cpu_flags=frozenset(source.flags.split()))
            assert measured_on.isa_class == row.isa_class, (row.key, source.flags)
        else:
            assert source.how == "estimate" and source.cpu is None, row.source
    assert {source.status for source in table.sources.values()} == {"measured", "simulated", "estimated"}
    for source in table.sources.values():  # a simulation names the limit it ran under
        assert source.status != "simulated" or "ONEDNN_MAX_CPU_ISA" in source.detail
    assert not {row.source for row in table.rows} ^ set(table.sources)  # no source left uncited


def test_read_speed_table_reads_a_file(tmp_path):
    path = tmp_path / "speed_table.json"
    path.write_text(json.dumps(shipped_json()), encoding="utf-8")
    assert read_speed_table(path) == shipped_speed_table()
    with pytest.raises(SpeedTableError, match=r"missing\.json: cannot be read"):
        read_speed_table(tmp_path / "missing.json")


def _negative_speed(data):
    data["rows"][0]["speed"]["short"] = -1.0


def _measured_without_cpu(data):
    next(source for source in data["sources"].values() if source["status"] == "measured")["cpu"] = None


def _unknown_class(data):
    data["rows"][0]["isa_class"] = "avx9000"


def _unknown_source(data):
    data["rows"][0]["source"] = "nowhere"


def _row_twice(data):
    data["rows"].append(dict(data["rows"][0]))


def _float_with_a_method(data):
    next(row for row in data["rows"] if row["precision"] == "fp32")["quantization"] = "static"


def _unknown_key(data):
    data["rows"][0]["speedup"] = 2.0


def _no_speed(data):
    data["rows"][0]["speed"] = {"long": 1.5}


def _newer_schema(data):
    data["schema_version"] = 2


@pytest.mark.parametrize(("damage", "message"), [
    (_negative_speed, r"rows\.0\.speed\.short: Input should be greater than 0"),
    (_measured_without_cpu, r"sources\.[\w-]+: a measured source needs its cpu, its flags and how"),
    (_unknown_class, r"rows\.0: isa_class 'avx9000': expected one of amx, "),
    (_unknown_source, r"row amx openvino fp32 none: source 'nowhere' is not among the sources$"),
    (_row_twice, r"row amx openvino fp32 none is listed twice$"),
    (_float_with_a_method, r"rows\.\d+: a fp32 row needs quantization: none, not 'static'$"),
    (_unknown_key, r"rows\.0\.speedup: Extra inputs are not permitted"),
    (_no_speed, r"rows\.0: speed needs a short or a mixed value$"),
    (_newer_schema, r"schema_version 2 is not supported \(expected 1\)"),
])
def test_a_malformed_table_fails_in_one_line_naming_the_file_and_the_field(damage, message):
    data = shipped_json()
    damage(data)
    with pytest.raises(SpeedTableError, match=r"^speed_table\.json: " + message) as failure:
        parse_speed_table(json.dumps(data), "speed_table.json")
    assert "\n" not in str(failure.value)
    with pytest.raises(SpeedTableError, match=r"^speed_table\.json: not valid JSON: "):
        parse_speed_table("{", "speed_table.json")
