"""Artifacts with the last 2.x client (mlflow-skinny 2.22.5): log, list, download, round trip."""

from __future__ import annotations

import json
from pathlib import Path


def test_artifact_round_trip_2x(fluent, unique_name, tmp_path):
    src = tmp_path / "src"
    (src / "nested dir").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "nested dir" / "b ü.bin").write_bytes(bytes(range(256)) * 100)
    (src / "empty").write_bytes(b"")
    fluent.set_experiment(unique_name("art2x"))
    with fluent.start_run() as run:
        fluent.log_artifacts(str(src), artifact_path="tree")
        fluent.log_artifact(str(src / "a.txt"))
        fluent.log_text("text body", "notes/t.txt")
        fluent.log_dict({"k": [1, 2]}, "cfg/d.json")
    run_id = run.info.run_id
    client = fluent.MlflowClient()

    top = client.list_artifacts(run_id)
    assert [(f.path, f.is_dir) for f in top] == [
        ("a.txt", False),
        ("cfg", True),
        ("notes", True),
        ("tree", True),
    ]
    assert [f.file_size for f in top if f.path == "a.txt"] == [5]
    inner = client.list_artifacts(run_id, "tree")
    assert sorted(f.path for f in inner) == ["tree/a.txt", "tree/empty", "tree/nested dir"]

    (tmp_path / "dl").mkdir()
    (tmp_path / "one").mkdir()
    out = Path(client.download_artifacts(run_id, "", str(tmp_path / "dl")))
    assert (out / "tree" / "nested dir" / "b ü.bin").read_bytes() == bytes(range(256)) * 100
    assert (out / "tree" / "empty").read_bytes() == b""
    assert (out / "notes" / "t.txt").read_text() == "text body"
    assert json.loads((out / "cfg" / "d.json").read_text()) == {"k": [1, 2]}
    one = client.download_artifacts(run_id, "a.txt", str(tmp_path / "one"))
    assert Path(one).read_text() == "alpha"
