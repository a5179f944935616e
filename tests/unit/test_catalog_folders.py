"""Workshop folder validation: each problem names its file and field."""
from __future__ import annotations

import json

import nbformat
import pytest
import yaml

from chalicelib.adapters.workshop_folders import load_catalog
from chalicelib.catalog.__main__ import main as catalog_main
from tests.conftest import ROOT
from tests.factory import write_workshop


def problems_of(root, locations=("local",)):
    return load_catalog(root, locations)[1]


@pytest.fixture
def root(tmp_path):
    return tmp_path / "workshops"


def test_the_sample_workshops_are_valid():
    workshops, problems = load_catalog(ROOT / "workshops", ["local"])
    assert problems == []
    ids = {w.spec.id for w in workshops}
    assert {"WKSHP-PY101", "WKSHP-API101", "WKSHP-SQL101"} <= ids
    assert max(len(w.spec.student_range.ids()) for w in workshops) >= 100
    assert any(w.spec.appliance for w in workshops)


def test_a_valid_folder_has_no_problems_and_a_content_version(root):
    write_workshop(root, "WKSHP-OK", seats=5)
    [workshop], problems = load_catalog(root, ["local"])
    assert problems == []
    assert workshop.spec.student_range.ids() == ["ok-1", "ok-2", "ok-3", "ok-4", "ok-5"]
    before = workshop.content_version
    (root / "WKSHP-OK" / "data.csv").write_text("a,b\n")
    assert load_catalog(root, ["local"])[0][0].content_version != before


def test_schema_errors_name_the_field(root):
    write_workshop(root, "WKSHP-BAD", duration="long", colour="red", presenter={})
    found = {(f, where) for f, where, _ in problems_of(root)}
    assert ("workshops/WKSHP-BAD/workshop.yaml", "duration") in found
    assert ("workshops/WKSHP-BAD/workshop.yaml", "colour") in found
    assert ("workshops/WKSHP-BAD/workshop.yaml", "presenter.name") in found


def test_yaml_syntax_error_names_the_line(root):
    folder = write_workshop(root, "WKSHP-YML")
    (folder / "workshop.yaml").write_text("id: WKSHP-YML\ntitle: [unclosed\n")
    [(file, where, message)] = problems_of(root)
    assert file == "workshops/WKSHP-YML/workshop.yaml" and where.startswith("line ") and "YAML" in message


def test_id_must_match_folder_and_seats_need_one_source(root):
    write_workshop(root, "WKSHP-ONE", id="WKSHP-TWO")
    write_workshop(root, "WKSHP-BOTH", students={"from": 1, "to": 3}, seats=None)
    (root / "WKSHP-BOTH" / "workshop.yaml").write_text(
        (root / "WKSHP-BOTH" / "workshop.yaml").read_text() + "seats: 3\n")
    messages = {(f, w): m for f, w, m in problems_of(root)}
    assert "folder is named 'WKSHP-ONE'" in messages[("workshops/WKSHP-ONE/workshop.yaml", "id")]
    assert "either 'students'" in messages[("workshops/WKSHP-BOTH/workshop.yaml", "-")]


def test_overlapping_student_ranges_are_reported(root):
    write_workshop(root, "WKSHP-A", students={"from": 1, "to": 10})
    write_workshop(root, "WKSHP-B", students={"from": 10, "to": 20})
    write_workshop(root, "WKSHP-C", students={"prefix": "guest", "from": 1, "to": 10})
    assert problems_of(root) == [
        ("workshops/WKSHP-B/workshop.yaml", "students", "student range overlaps the range of WKSHP-A")]


def test_unknown_location_and_missing_badge(root):
    write_workshop(root, "WKSHP-LOC", location="mars", badge="missing.svg")
    found = {(w, m.split(":")[0]) for _, w, m in problems_of(root)}
    assert ("location", "unknown location 'mars' (known") in found
    assert ("badge", "file 'missing.svg' not found in the workshop folder") in found


def test_notebook_problems_name_the_cell(root):
    write_workshop(root, "WKSHP-NB", notebooks={
        "0-ReadMeFirst.ipynb": ["fine {{ student_id }}", "broken {{ student_id ", "{{ appliance_url }} {{ secret }}"],
    })
    problems = problems_of(root)
    assert ("workshops/WKSHP-NB/0-ReadMeFirst.ipynb", "cells[1]") in {(f, w) for f, w, _ in problems}
    unknown = [m for f, w, m in problems if w == "cells[2]"][0]
    assert "appliance_url, secret" in unknown  # appliance_url only with an appliance
    assert ("workshops/WKSHP-NB/", "*Conclusion*.ipynb", "missing: a conclusion notebook") in problems


def test_invalid_notebook_json_and_schema(root):
    folder = write_workshop(root, "WKSHP-JSON")
    (folder / "1-Lab.ipynb").write_text("{not json")
    nb = nbformat.v4.new_notebook()
    data = json.loads(nbformat.writes(nb))
    data["cells"] = [{"cell_type": "bogus", "source": ""}]
    (folder / "2-Lab.ipynb").write_text(json.dumps(data))
    bad = {f for f, w, _ in problems_of(root) if w == "notebook"}
    assert bad == {"workshops/WKSHP-JSON/1-Lab.ipynb", "workshops/WKSHP-JSON/2-Lab.ipynb"}


def test_check_command_prints_problems_and_fails(root, capsys):
    write_workshop(root, "WKSHP-CLI", duration=5)
    assert catalog_main(["check", str(root)]) == 1
    err = capsys.readouterr().err
    assert "workshops/WKSHP-CLI/workshop.yaml: duration: Input should be greater than or equal to 15" in err
    assert "nothing was synced" in err


def test_check_command_passes_on_the_samples(capsys):
    assert catalog_main(["check", str(ROOT / "workshops")]) == 0
    assert "valid" in capsys.readouterr().out


def test_a_workshop_without_a_location_goes_to_the_only_one(tmp_path):
    folder = write_workshop(tmp_path / "w", "WKSHP-NOLOC")
    spec = yaml.safe_load((folder / "workshop.yaml").read_text())
    del spec["location"]
    (folder / "workshop.yaml").write_text(yaml.safe_dump(spec))
    [workshop], problems = load_catalog(tmp_path / "w", ["eu-west"])
    assert problems == [] and workshop.spec.location == "eu-west"
    _, problems = load_catalog(tmp_path / "w", ["eu-west", "us-east"])
    assert problems == [("w/WKSHP-NOLOC/workshop.yaml", "location",
                         "missing, and the platform knows several locations (eu-west, us-east): name one")]


def test_the_sample_workshops_deploy_to_any_single_location():
    workshops, problems = load_catalog(ROOT / "workshops", ["eu-west-1"])
    assert problems == [] and {w.spec.location for w in workshops} == {"eu-west-1"}


def test_check_on_aws_says_an_appliance_workshop_needs_an_ecs_cluster(capsys, monkeypatch):
    from chalicelib.settings import get_settings

    monkeypatch.setenv("WOD_CONTENT_BUCKET", "wod-content")
    monkeypatch.setenv("WOD_LOCATIONS", '{"eu-west-1": "orders@backend.example.org"}')
    monkeypatch.setenv("WOD_LOCATION", "eu-west-1")
    get_settings.cache_clear()
    try:
        assert catalog_main(["check", str(ROOT / "workshops")]) == 1
        err = capsys.readouterr().err
        assert "WKSHP-API101/workshop.yaml: appliance: this workshop needs an appliance per student" in err
        assert "EcsCluster" in err and "WKSHP-PY101" not in err
        monkeypatch.setenv("WOD_ECS_CLUSTER", "wod-appliances")
        get_settings.cache_clear()
        assert catalog_main(["check", str(ROOT / "workshops")]) == 0
    finally:
        get_settings.cache_clear()
