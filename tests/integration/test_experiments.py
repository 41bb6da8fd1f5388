"""Experiments: create/get/get-by-name/search/rename/delete/restore/tags (api reference §4.1, §4.5)."""

from __future__ import annotations

import time

import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException


def _search(api, **body):
    body.setdefault("max_results", 1000)
    return api.post("experiments/search", body)


def _names(resp):
    return [e["name"] for e in resp.get("experiments", [])]


# --------------------------------------------------------------------------------------------
# Default experiment, create, get
# --------------------------------------------------------------------------------------------


def test_default_experiment_exists(api, client):
    exp = api.get("experiments/get", experiment_id="0")["experiment"]
    assert exp["experiment_id"] == "0"
    assert exp["name"] == "Default"
    assert exp["lifecycle_stage"] == "active"
    assert (
        api.get("experiments/get-by-name", experiment_name="Default")["experiment"]["experiment_id"]
        == "0"
    )
    assert client.get_experiment("0").name == "Default"


def test_create_and_get_roundtrip(api, unique_name):
    name = unique_name("exp")
    before = int(time.time() * 1000) - 5000
    resp = api.post(
        "experiments/create", {"name": name, "tags": [{"key": "team", "value": "core"}]}
    )
    exp_id = resp["experiment_id"]
    assert isinstance(exp_id, str) and exp_id.isdigit()

    exp = api.get("experiments/get", experiment_id=exp_id)["experiment"]
    assert exp["experiment_id"] == exp_id
    assert exp["name"] == name
    assert exp["lifecycle_stage"] == "active"
    assert exp["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    assert isinstance(exp["creation_time"], int) and exp["creation_time"] >= before
    assert (
        isinstance(exp["last_update_time"], int) and exp["last_update_time"] >= exp["creation_time"]
    )
    assert exp["tags"] == [{"key": "team", "value": "core"}]

    by_name = api.get("experiments/get-by-name", experiment_name=name)["experiment"]
    assert by_name == exp


def test_experiment_ids_increase(api):
    a = int(api.create_experiment())
    b = int(api.create_experiment())
    assert b > a > 0


def test_create_with_explicit_artifact_location(api, unique_name, tmp_path):
    loc = str(tmp_path / "elsewhere")
    exp_id = api.create_experiment(unique_name("loc"), artifact_location=loc)
    assert (
        api.get("experiments/get", experiment_id=exp_id)["experiment"]["artifact_location"] == loc
    )


def test_client_create_get(client, unique_name):
    name = unique_name("exp")
    exp_id = client.create_experiment(name, tags={"a": "1"})
    exp = client.get_experiment(exp_id)
    assert exp.name == name
    assert exp.tags == {"a": "1"}
    assert exp.lifecycle_stage == "active"
    assert client.get_experiment_by_name(name).experiment_id == exp_id
    assert client.get_experiment_by_name(unique_name("missing")) is None


def test_get_missing_and_invalid(api):
    api.error(
        "GET",
        "experiments/get",
        params={"experiment_id": "99999999"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    api.error(
        "GET",
        "experiments/get",
        params={"experiment_id": "abc"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error("GET", "experiments/get", status=400, code="INVALID_PARAMETER_VALUE")
    api.error(
        "GET",
        "experiments/get-by-name",
        params={"experiment_name": "no-such-experiment-3f1e"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_create_requires_name(api):
    api.error("POST", "experiments/create", json={}, status=400, code="INVALID_PARAMETER_VALUE")
    api.error(
        "POST", "experiments/create", json={"name": ""}, status=400, code="INVALID_PARAMETER_VALUE"
    )
    api.error(
        "POST", "experiments/create", json={"name": 123}, status=400, code="INVALID_PARAMETER_VALUE"
    )
    api.error(
        "POST",
        "experiments/create",
        json={"name": "x" * 501},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


def test_create_ignores_unknown_fields(api, unique_name):
    resp = api.post("experiments/create", {"name": unique_name("unk"), "bogus": 1})
    assert resp["experiment_id"].isdigit()


def test_duplicate_name_rejected_even_when_deleted(api, client, unique_name):
    name = unique_name("dup")
    exp_id = api.create_experiment(name)
    api.error(
        "POST",
        "experiments/create",
        json={"name": name},
        status=400,
        code="RESOURCE_ALREADY_EXISTS",
    )
    with pytest.raises(MlflowException) as excinfo:
        client.create_experiment(name)
    assert excinfo.value.error_code == "RESOURCE_ALREADY_EXISTS"

    api.post("experiments/delete", {"experiment_id": exp_id})
    api.error(
        "POST",
        "experiments/create",
        json={"name": name},
        status=400,
        code="RESOURCE_ALREADY_EXISTS",
    )
    # get-by-name still finds the deleted experiment
    exp = api.get("experiments/get-by-name", experiment_name=name)["experiment"]
    assert exp["experiment_id"] == exp_id
    assert exp["lifecycle_stage"] == "deleted"


# --------------------------------------------------------------------------------------------
# Rename
# --------------------------------------------------------------------------------------------


def test_rename(api, client, unique_name):
    old, new = unique_name("old"), unique_name("new")
    exp_id = api.create_experiment(old)
    assert api.post("experiments/update", {"experiment_id": exp_id, "new_name": new}) == {}
    assert api.get("experiments/get", experiment_id=exp_id)["experiment"]["name"] == new
    assert (
        api.get("experiments/get-by-name", experiment_name=new)["experiment"]["experiment_id"]
        == exp_id
    )
    api.error(
        "GET",
        "experiments/get-by-name",
        params={"experiment_name": old},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    # the old name is free again
    assert api.create_experiment(old)

    newer = unique_name("newer")
    client.rename_experiment(exp_id, newer)
    assert client.get_experiment(exp_id).name == newer


def test_rename_validation(api, unique_name):
    a = api.create_experiment()
    taken = unique_name("taken")
    api.create_experiment(taken)
    api.error("POST", "experiments/update", json={"experiment_id": a, "new_name": ""}, status=400)
    # renaming onto an existing name is refused (MLflow: 400 BAD_REQUEST from the unique constraint)
    api.error(
        "POST", "experiments/update", json={"experiment_id": a, "new_name": taken}, status=400
    )
    api.error(
        "POST",
        "experiments/update",
        json={"experiment_id": "99999999", "new_name": unique_name("x")},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )


def test_rename_deleted_experiment_is_refused(api, server, unique_name):
    exp_id = api.create_experiment()
    api.post("experiments/delete", {"experiment_id": exp_id})
    r = api(
        "POST", "experiments/update", json={"experiment_id": exp_id, "new_name": unique_name("x")}
    )
    assert r.status_code in (400, 500), r.text
    assert r.json()["error_code"] in ("INVALID_STATE", "INVALID_PARAMETER_VALUE")


@pytest.mark.labtrack_only
def test_rename_deleted_experiment_is_a_4xx(api, unique_name):
    """MLflow answers 500 here, which the client retries for minutes; labtrack must use a 4xx."""
    exp_id = api.create_experiment()
    api.post("experiments/delete", {"experiment_id": exp_id})
    r = api(
        "POST", "experiments/update", json={"experiment_id": exp_id, "new_name": unique_name("x")}
    )
    assert 400 <= r.status_code < 500, r.text


# --------------------------------------------------------------------------------------------
# Delete / restore
# --------------------------------------------------------------------------------------------


def test_delete_and_restore_cascade_to_runs(api, client):
    exp_id = api.create_experiment()
    runs = [api.create_run(exp_id)["info"]["run_id"] for _ in range(3)]
    # one run is deleted on its own before the experiment is deleted
    api.post("runs/delete", {"run_id": runs[0]})

    api.post("experiments/delete", {"experiment_id": exp_id})
    exp = api.get("experiments/get", experiment_id=exp_id)["experiment"]
    assert exp["lifecycle_stage"] == "deleted"
    for run_id in runs:
        assert api.get_run(run_id)["info"]["lifecycle_stage"] == "deleted"
    api.error(
        "POST",
        "runs/create",
        json={"experiment_id": exp_id},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )

    api.post("experiments/restore", {"experiment_id": exp_id})
    assert (
        api.get("experiments/get", experiment_id=exp_id)["experiment"]["lifecycle_stage"]
        == "active"
    )
    # restoring an experiment restores all its runs, including the one deleted on its own
    for run_id in runs:
        assert api.get_run(run_id)["info"]["lifecycle_stage"] == "active"

    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"


def test_delete_restore_state_errors(api):
    exp_id = api.create_experiment()
    # restoring an active experiment: not found among deleted ones
    api.error(
        "POST",
        "experiments/restore",
        json={"experiment_id": exp_id},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    api.post("experiments/delete", {"experiment_id": exp_id})
    # deleting twice: not found among active ones
    api.error(
        "POST",
        "experiments/delete",
        json={"experiment_id": exp_id},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    for path in ("experiments/delete", "experiments/restore"):
        api.error(
            "POST",
            path,
            json={"experiment_id": "99999999"},
            status=404,
            code="RESOURCE_DOES_NOT_EXIST",
        )
        api.error("POST", path, json={}, status=400, code="INVALID_PARAMETER_VALUE")


# --------------------------------------------------------------------------------------------
# Tags
# --------------------------------------------------------------------------------------------


def test_experiment_tags_set_overwrite_delete(api, client):
    exp_id = api.create_experiment()
    api.post("experiments/set-experiment-tag", {"experiment_id": exp_id, "key": "k", "value": "v1"})
    api.post("experiments/set-experiment-tag", {"experiment_id": exp_id, "key": "k", "value": "v2"})
    api.post(
        "experiments/set-experiment-tag", {"experiment_id": exp_id, "key": "other", "value": "o"}
    )
    tags = {
        t["key"]: t["value"]
        for t in api.get("experiments/get", experiment_id=exp_id)["experiment"]["tags"]
    }
    assert tags == {"k": "v2", "other": "o"}

    api.post("experiments/delete-experiment-tag", {"experiment_id": exp_id, "key": "k"})
    exp = api.get("experiments/get", experiment_id=exp_id)["experiment"]
    assert exp["tags"] == [{"key": "other", "value": "o"}]
    api.error(
        "POST",
        "experiments/delete-experiment-tag",
        json={"experiment_id": exp_id, "key": "k"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )

    client.set_experiment_tag(exp_id, "via-client", "yes")
    assert client.get_experiment(exp_id).tags["via-client"] == "yes"
    client.delete_experiment_tag(exp_id, "via-client")
    assert "via-client" not in client.get_experiment(exp_id).tags


def test_experiment_tag_errors(api):
    exp_id = api.create_experiment()
    api.error(
        "POST",
        "experiments/set-experiment-tag",
        json={"experiment_id": exp_id, "key": "bad$key", "value": "v"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
    api.error(
        "POST",
        "experiments/set-experiment-tag",
        json={"experiment_id": "99999999", "key": "k", "value": "v"},
        status=404,
        code="RESOURCE_DOES_NOT_EXIST",
    )
    api.post("experiments/delete", {"experiment_id": exp_id})
    api.error(
        "POST",
        "experiments/set-experiment-tag",
        json={"experiment_id": exp_id, "key": "k", "value": "v"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


@pytest.fixture
def five_experiments(api, unique_name):
    """Five experiments sharing a unique prefix; tags: team a/a/b/b/<none>."""
    prefix = unique_name("srch")
    ids = {}
    teams = ["a", "a", "b", "b", None]
    for i, team in enumerate(teams):
        name = f"{prefix}-{i}"
        tags = [{"key": "team", "value": team}] if team else []
        ids[name] = api.create_experiment(name, tags=tags)
    return prefix, ids


def test_search_filter_by_name(api, five_experiments):
    prefix, ids = five_experiments
    got = _names(_search(api, filter=f"name LIKE '{prefix}%'"))
    assert sorted(got) == sorted(ids)
    got = _names(_search(api, filter=f"attribute.name = '{prefix}-3'"))
    assert got == [f"{prefix}-3"]
    got = _names(_search(api, filter=f"name ILIKE '{prefix.upper()}-1'"))
    assert got == [f"{prefix}-1"]
    got = _names(_search(api, filter=f"name LIKE '{prefix}%' AND name != '{prefix}-0'"))
    assert sorted(got) == sorted(n for n in ids if n != f"{prefix}-0")


def test_search_filter_by_tags(api, five_experiments):
    prefix, ids = five_experiments
    base = f"name LIKE '{prefix}%'"
    assert sorted(_names(_search(api, filter=f"{base} AND tags.team = 'a'"))) == [
        f"{prefix}-0",
        f"{prefix}-1",
    ]
    assert sorted(_names(_search(api, filter=f"{base} AND tags.team != 'a'"))) == [
        f"{prefix}-2",
        f"{prefix}-3",
    ]
    assert _names(_search(api, filter=f"{base} AND tags.team IS NULL")) == [f"{prefix}-4"]
    assert len(_names(_search(api, filter=f"{base} AND tags.team IS NOT NULL"))) == 4
    assert len(_names(_search(api, filter=f"{base} AND tags.`team` LIKE 'b%'"))) == 2
    assert len(_names(_search(api, filter=f"{base} AND tag.team ILIKE 'B'"))) == 2


def test_search_filter_by_attributes(api, five_experiments):
    prefix, ids = five_experiments
    wanted = [ids[f"{prefix}-1"], ids[f"{prefix}-2"]]
    got = _search(api, filter=f"attribute.experiment_id IN ('{wanted[0]}', '{wanted[1]}')")
    assert sorted(e["experiment_id"] for e in got["experiments"]) == sorted(wanted)
    created = api.get("experiments/get", experiment_id=ids[f"{prefix}-0"])["experiment"][
        "creation_time"
    ]
    got = _names(_search(api, filter=f"name LIKE '{prefix}%' AND creation_time >= {created}"))
    assert sorted(got) == sorted(ids)
    got = _names(_search(api, filter=f"name LIKE '{prefix}%' AND creation_time < {created}"))
    assert got == []


def test_search_order_by(api, five_experiments):
    prefix, ids = five_experiments
    flt = f"name LIKE '{prefix}%'"
    assert _names(_search(api, filter=flt, order_by=["name ASC"])) == sorted(ids)
    assert _names(_search(api, filter=flt, order_by=["name DESC"])) == sorted(ids, reverse=True)
    by_id = sorted(ids, key=lambda n: int(ids[n]))
    assert _names(_search(api, filter=flt, order_by=["experiment_id ASC"])) == by_id
    assert (
        _names(_search(api, filter=flt, order_by=["attribute.experiment_id DESC"])) == by_id[::-1]
    )
    # default order: creation_time DESC, then experiment_id ASC (experiments made in the same ms tie)
    created = {
        n: api.get("experiments/get", experiment_id=i)["experiment"]["creation_time"]
        for n, i in ids.items()
    }
    newest_first = sorted(ids, key=lambda n: (-created[n], int(ids[n])))
    assert _names(_search(api, filter=flt)) == newest_first
    expected = sorted(ids, key=lambda n: (-created[n], n))
    assert _names(_search(api, filter=flt, order_by=["creation_time DESC", "name ASC"])) == expected


def test_search_paging(api, client, five_experiments):
    prefix, ids = five_experiments
    flt = f"name LIKE '{prefix}%'"
    seen = []
    token = None
    pages = 0
    while True:
        body = {"filter": flt, "max_results": 2, "order_by": ["name ASC"]}
        if token:
            body["page_token"] = token
        resp = api.post("experiments/search", body)
        pages += 1
        seen += _names(resp)
        if "next_page_token" not in resp:
            break
        token = resp["next_page_token"]
        assert token, (
            "an empty next_page_token makes the client loop forever; omit it on the last page"
        )
        assert pages < 10
    assert pages == 3
    assert seen == sorted(ids)

    # exactly-full last page: still no token after the final page
    resp = api.post("experiments/search", {"filter": flt, "max_results": 5})
    assert len(resp["experiments"]) == 5
    assert "next_page_token" not in resp

    page1 = client.search_experiments(filter_string=flt, max_results=3, order_by=["name ASC"])
    assert [e.name for e in page1] == sorted(ids)[:3]
    assert page1.token
    page2 = client.search_experiments(
        filter_string=flt, max_results=3, order_by=["name ASC"], page_token=page1.token
    )
    assert [e.name for e in page2] == sorted(ids)[3:]
    assert not page2.token


def test_search_via_get(api, five_experiments):
    prefix, ids = five_experiments
    resp = api.get("experiments/search", max_results=10, filter=f"name LIKE '{prefix}%'")
    assert sorted(_names(resp)) == sorted(ids)


def test_search_view_type(api, client, five_experiments):
    prefix, ids = five_experiments
    deleted = f"{prefix}-2"
    api.post("experiments/delete", {"experiment_id": ids[deleted]})
    flt = f"name LIKE '{prefix}%'"
    assert deleted not in _names(_search(api, filter=flt))
    assert deleted not in _names(_search(api, filter=flt, view_type="ACTIVE_ONLY"))
    assert _names(_search(api, filter=flt, view_type="DELETED_ONLY")) == [deleted]
    assert sorted(_names(_search(api, filter=flt, view_type="ALL"))) == sorted(ids)

    assert [
        e.name
        for e in client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=flt)
    ] == [deleted]
    assert len(client.search_experiments(view_type=ViewType.ALL, filter_string=flt)) == 5
    assert len(client.search_experiments(filter_string=flt)) == 4


def test_search_client_filter_and_order(client, five_experiments):
    prefix, ids = five_experiments
    exps = client.search_experiments(
        filter_string=f"name LIKE '{prefix}%' AND tags.team = 'b'", order_by=["name DESC"]
    )
    assert [e.name for e in exps] == [f"{prefix}-3", f"{prefix}-2"]
    assert all(e.tags == {"team": "b"} for e in exps)


@pytest.mark.parametrize(
    "method, body",
    [
        ("POST", {}),  # max_results has no default for experiments
        ("GET", {}),
        ("POST", {"max_results": 0}),
        ("POST", {"max_results": 50001}),
        ("POST", {"max_results": 10, "filter": "attributes.name = 'x'"}),
        ("POST", {"max_results": 10, "filter": "name >> 'x'"}),
        ("POST", {"max_results": 10, "filter": "bogus.key = 'x'"}),
        ("POST", {"max_results": 10, "order_by": ["bogus"]}),
        ("POST", {"max_results": 10, "page_token": "garbage"}),
    ],
    ids=lambda v: str(v)[:40],
)
def test_search_errors(api, method, body):
    if method == "GET":
        api.error(
            "GET", "experiments/search", params=body, status=400, code="INVALID_PARAMETER_VALUE"
        )
    else:
        api.error(
            "POST", "experiments/search", json=body, status=400, code="INVALID_PARAMETER_VALUE"
        )


def test_search_or_refused_by_mlflow_grammar(api, is_mlflow):
    if not is_mlflow:
        pytest.skip("labtrack may extend the grammar with OR")
    api.error(
        "POST",
        "experiments/search",
        json={"max_results": 10, "filter": "name = 'a' OR name = 'b'"},
        status=400,
        code="INVALID_PARAMETER_VALUE",
    )
