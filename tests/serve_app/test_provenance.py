"""The one provenance record: what it names, result file names, and stamping a raw answer."""
from __future__ import annotations

import json

from sparse24.serve_app.provenance import describe, results_stem, run_provenance, stamp


def test_the_record_names_machine_versions_date_commit_and_command():
    p = run_provenance("python -m x --y")
    assert p["command"] == "python -m x --y" and p["created"].endswith("Z") and p["cpu_count"] >= 1
    assert "GiB" in p["machine"] and "torch" in p["versions"] and p["git_commit"]
    assert p["machine"] in describe(p) and p["created"] in describe(p)


def test_results_stem_slugs_the_machine():
    assert results_stem("NVIDIA H200", "2026-12-08T10:00:00Z") == "nvidia_h200_2026-12-08"
    assert results_stem("", "2026-12-08", "chat") == "cpu_2026-12-08_chat"


def test_stamp_keeps_the_raw_answer_beside_its_provenance(tmp_path):
    f = tmp_path / "answer.json"
    f.write_text('{"object": "list", "data": []}')
    stamp(f, "curl /v1/models", {"q": 1})
    doc = json.loads(f.read_text())
    assert doc["response"] == {"object": "list", "data": []} and doc["request"] == {"q": 1}
    assert doc["provenance"]["command"] == "curl /v1/models" and doc["provenance"]["machine"]
