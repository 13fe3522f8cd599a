"""The Hub stand-in answers the real huggingface_hub client like the Hub does on our paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_server import READ_TOKEN, USER, WRITE_TOKEN, validate_card_yaml


def _api(server, token=WRITE_TOKEN):
    from huggingface_hub import HfApi

    return HfApi(endpoint=server.endpoint, token=token)


def test_whoami_and_token_checks(hub_server):
    from huggingface_hub.errors import HfHubHTTPError

    assert _api(hub_server).whoami()["name"] == USER
    with pytest.raises(HfHubHTTPError) as info:
        _api(hub_server, token="hf_not_a_real_token").whoami()
    assert info.value.response.status_code == 401
    # creating without a token: 401; with a read token: 403; someone else's namespace: 403
    with pytest.raises(HfHubHTTPError) as info:
        _api(hub_server, token=False).create_repo(f"{USER}/x")
    assert info.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as info:
        _api(hub_server, token=READ_TOKEN).create_repo(f"{USER}/x")
    assert info.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as info:
        _api(hub_server).create_repo("someone-else/x")
    assert info.value.response.status_code == 403
    assert hub_server.repos == {}


def test_missing_repo_revision_and_file_raise_the_clients_typed_errors(hub_server):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    hub_server.add_repo(f"{USER}/present", {"config.json": b"{}"})
    with pytest.raises(RepositoryNotFoundError):
        _api(hub_server).model_info(f"{USER}/absent")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"{USER}/absent", "config.json")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(f"{USER}/present", "config.json", revision="no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(f"{USER}/present", "weights.bin")


def test_private_repo_needs_the_token(hub_server):
    from huggingface_hub.errors import RepositoryNotFoundError

    hub_server.add_repo(f"{USER}/secret", {"config.json": b"{}"}, private=True)
    assert _api(hub_server).model_info(f"{USER}/secret").private is True
    with pytest.raises(RepositoryNotFoundError):
        _api(hub_server, token=False).model_info(f"{USER}/secret")


def test_upload_download_listing_and_headers(hub_server, tmp_path):
    from huggingface_hub import hf_hub_download

    api = _api(hub_server)
    api.create_repo(f"{USER}/files")
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4)
    info = api.upload_folder(repo_id=f"{USER}/files", folder_path=tmp_path)
    assert sorted(api.list_repo_files(f"{USER}/files")) == [".gitattributes", "a.txt", "sub/b.bin"]
    tree = {f.path: f for f in api.list_repo_tree(f"{USER}/files", recursive=True)}
    assert tree["sub/b.bin"].size == 1024
    path = hf_hub_download(f"{USER}/files", "sub/b.bin", cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == bytes(range(256)) * 4
    # the download is pinned to the commit the Hub reported
    assert f"/snapshots/{info.oid}/" in path
    assert hub_server.files(f"{USER}/files")["a.txt"] == b"alpha"


def test_bad_readme_yaml_is_rejected(hub_server):
    from huggingface_hub import CommitOperationAdd

    api = _api(hub_server)
    api.create_repo(f"{USER}/card")
    bad = b"---\nlicense: [unclosed\n---\n# card\n"
    with pytest.raises(ValueError, match=r"Invalid metadata in README\.md"):
        api.create_commit(
            f"{USER}/card", [CommitOperationAdd("README.md", bad)], commit_message="card"
        )
    assert "README.md" not in hub_server.files(f"{USER}/card")


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("license: mit\ntags: [a, b]", None),
        ("license: [unclosed", "does not parse"),
        ("- just\n- a list", "mapping"),
        ("tags: {a: 1}", '"tags" must be a string or a list of strings'),
        ("base_model: a/b/c", '"base_model"'),
        ("base_model_relation: copy", '"base_model_relation" must be one of'),
        ("model-index:\n- name: m\n  results:\n  - task: {type: t}", "dataset"),
    ],
)
def test_yaml_validation_rules(header, error):
    errors = validate_card_yaml(f"---\n{header}\n---\nbody\n")
    if error is None:
        assert errors == []
    else:
        assert len(errors) == 1 and error in errors[0]


def test_unknown_requests_are_recorded_and_answered_501(hub_server):
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as info:
        _api(hub_server).list_repo_refs(f"{USER}/anything")
    assert info.value.response.status_code == 501
    assert hub_server.unhandled == [f"GET /api/models/{USER}/anything/refs"]
    hub_server.unhandled.clear()  # (the fixture would fail this test otherwise)
