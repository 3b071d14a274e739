"""Bearer tokens: 401 without a valid one, 403 without the right, identities from a tokens file."""

from __future__ import annotations

import pytest
from support import EVENT_TYPES, RECORDS, new_record

from mockserver import TokensFileError
from mockserver.auth.tokens import load_tokens

TOKENS = """
tokens:
  - token: idt:TKN-1111-1111:writer
    actor: {id: USR-1111-1111, name: Wendy Writer}
    account: {id: ACC-1111-1111, name: Acme Corp, type: Client}
    rights: ["records:*", "event-types:read"]
  - token: reader
    rights: ["*:read"]
  - token: idt:TKN-2222-2222:nothing
    rights: []
"""


@pytest.fixture
def tokens_file(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text(TOKENS)
    return path


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "An 'Authorization: Bearer <token>' header is required."),
        (
            {"Authorization": "Basic dXNlcjpwYXNz"},
            "The Authorization header must be 'Bearer <token>'.",
        ),
        ({"Authorization": "Bearer "}, "The Authorization header must be 'Bearer <token>'."),
    ],
)
def test_no_bearer_token_is_a_401_problem(api, headers, detail):
    answer = api.get(RECORDS, headers=headers)
    assert answer.status_code == 401
    assert answer.json["title"] == "Unauthorized"
    assert answer.json["detail"] == detail
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_auth_comes_before_validation(api):
    assert api.post(RECORDS, json={}, headers={}).status_code == 401


def test_any_token_is_accepted_by_default(api):
    assert api.get(RECORDS, headers=bearer("anything at all")).status_code == 200


def test_the_spec_document_needs_no_token(api):
    answer = api.get("/public/v1/audit/openapi.json", headers={})
    assert answer.status_code == 200
    assert answer.json["info"]["title"] == "SoftwareOne Marketplace Audit API"


def test_auth_off_needs_no_header_and_uses_the_default_identity(make_app):
    api = make_app(auth=False).test_client()
    record = api.post(RECORDS, json=new_record(), headers={}).json
    assert record["actor"]["id"] == "USR-0000-0001"


def test_tokens_file_identity_becomes_the_actor(make_app, tokens_file):
    api = make_app(tokens=tokens_file).test_client()
    answer = api.post(RECORDS, json=new_record(), headers=bearer("idt:TKN-1111-1111:writer"))
    assert answer.status_code == 201
    assert answer.json["actor"] == {
        "id": "USR-1111-1111",
        "name": "Wendy Writer",
        "account": {"id": "ACC-1111-1111", "name": "Acme Corp", "accountType": "Client"},
    }
    assert answer.json["viewers"] == [
        {"id": "ACC-1111-1111", "name": "Acme Corp", "type": "Client"}
    ]


def test_an_api_token_without_an_actor_is_its_own_actor(make_app, tokens_file):
    api = make_app(tokens=tokens_file).test_client()
    assert api.get(RECORDS, headers=bearer("idt:TKN-2222-2222:nothing")).status_code == 403
    identity = load_tokens(tokens_file)["idt:TKN-2222-2222:nothing"]
    assert identity.actor_id == "TKN-2222-2222"


def test_unknown_token_with_a_tokens_file_is_401(make_app, tokens_file):
    api = make_app(tokens=tokens_file).test_client()
    answer = api.get(RECORDS, headers=bearer("idt:TKN-9999-9999:guess"))
    assert answer.status_code == 401
    assert answer.json["detail"] == "The access token is not valid."


@pytest.mark.parametrize(
    ("token", "method", "path", "status"),
    [
        ("reader", "GET", RECORDS, 200),
        ("reader", "GET", EVENT_TYPES, 200),
        ("reader", "POST", RECORDS, 403),
        ("reader", "PUT", f"{EVENT_TYPES}/AET-6491-7370", 403),
        ("idt:TKN-1111-1111:writer", "POST", RECORDS, 201),
        ("idt:TKN-1111-1111:writer", "GET", EVENT_TYPES, 200),
        ("idt:TKN-1111-1111:writer", "PUT", f"{EVENT_TYPES}/AET-6491-7370", 403),
        ("idt:TKN-2222-2222:nothing", "GET", RECORDS, 403),
    ],
)
def test_rights_decide_403(make_app, tokens_file, token, method, path, status):
    api = make_app(tokens=tokens_file).test_client()
    body = {"name": "Order created"} if method == "PUT" else new_record()
    answer = api.open(
        path, method=method, headers=bearer(token), json=body if method != "GET" else None
    )
    assert answer.status_code == status
    if status == 403:
        assert answer.json["title"] == "Forbidden"
        right = ("records" if "records" in path else "event-types") + (
            ":read" if method == "GET" else ":write"
        )
        assert answer.json["detail"] == (
            f"The token is not allowed to do this: the '{right}' right is missing."
        )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tokens: [", "tokens.yaml:1:10: expected the node content, but found"),
        ("{}", "invalid tokens file at (top level): 'tokens' is a required property"),
        ("tokens: [{actor: {id: X}}]", "invalid tokens file at tokens > 0: 'token' is a required"),
        ("tokens: [{token: t, rights: read}]", "invalid tokens file at tokens > 0 > rights"),
        ("tokens: [{token: t, colour: red}]", "invalid tokens file at tokens > 0"),
    ],
)
def test_bad_tokens_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "tokens.yaml"
    path.write_text(content)
    with pytest.raises(TokensFileError) as caught:
        load_tokens(path)
    assert str(caught.value).startswith(f"{path}:")
    assert message in str(caught.value)


def test_a_missing_tokens_file_is_named(tmp_path):
    with pytest.raises(TokensFileError, match="cannot read the tokens file"):
        load_tokens(tmp_path / "absent.yaml")
