"""Form bodies (`multipart/form-data`, `application/x-www-form-urlencoded`): read into the
object the operation's schema describes, checked and stored as a JSON body is; a body that is
not the form it says is a 400, a media type the operation does not take a 415."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

UPLOADS = """
openapi: 3.0.3
info: {title: Uploads, version: '1'}
paths:
  /documents:
    get:
      responses:
        '200':
          description: The documents
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Document'}}
    post:
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [name, file]
              properties:
                name: {type: string}
                pages: {type: integer, minimum: 1}
                meta:  # no type: its members say it is an object (as the platform's parts)
                  properties: {lang: {type: string}}
                  additionalProperties: false
                tags: {type: array, items: {type: string}}
                draft: {type: boolean}
                file: {type: string, format: binary}
      responses:
        '201':
          description: Stored
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Document'}
        '400': {$ref: '#/components/responses/Problem'}
        '415': {$ref: '#/components/responses/Problem'}
  /documents/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get:
      responses:
        '200':
          description: The document
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Document'}
  /documents/{id}/rename:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    post:
      requestBody:
        required: true
        content:
          application/x-www-form-urlencoded:
            schema:
              type: object
              required: [name]
              properties: {name: {type: string, minLength: 1}}
      responses:
        '200':
          description: Renamed
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Document'}
        '400': {$ref: '#/components/responses/Problem'}
        '404': {$ref: '#/components/responses/Problem'}
components:
  responses:
    Problem:
      description: An RFC 9457 problem
      content:
        application/problem+json:
          schema: {type: object, required: [status, title], properties: {status: {type: integer}}}
  schemas:
    Document:
      type: object
      properties:
        id: {type: string, readOnly: true, pattern: '^DOC-\\d{4}-\\d{4}$'}
        name: {type: string}
        pages: {type: integer}
        meta: {type: object, properties: {lang: {type: string}}}
        tags: {type: array, items: {type: string}}
        draft: {type: boolean}
        file: {type: string}
"""


@pytest.fixture
def api(make_app: Callable[..., Flask], tmp_path: Path) -> Any:
    spec = tmp_path / "uploads.yaml"
    spec.write_text(UPLOADS, encoding="utf-8")
    return make_app(spec=spec).test_client()


def _upload(api: Any, **fields: Any) -> Any:
    form = {"name": "Terms", "file": (io.BytesIO(b"%PDF-1.7 \xe2\x82\xac"), "terms.pdf"), **fields}
    return api.post("/documents", data=form, content_type="multipart/form-data")


def test_a_multipart_create_stores_each_part_typed_by_its_schema(api):
    created = _upload(
        api,
        pages="3",
        meta=json.dumps({"lang": "en"}),
        tags=["legal", "draft"],
        draft="true",
    )
    assert created.status_code == 201, created.json
    document = created.json
    assert document["id"].startswith("DOC-")
    expected = {
        "name": "Terms",
        "pages": 3,
        "meta": {"lang": "en"},
        "tags": ["legal", "draft"],
        "draft": True,
        "file": "%PDF-1.7 €",  # an uploaded file: its content as text
    }
    assert {k: v for k, v in document.items() if k != "id"} == expected
    assert api.get(f"/documents/{document['id']}").json == document


def test_a_single_value_of_an_array_member_is_a_list(api):
    assert _upload(api, tags="legal").json["tags"] == ["legal"]


def test_a_part_that_breaks_the_schema_is_a_400_naming_it(api):
    refused = _upload(api, pages="zero", meta=json.dumps({"lang": 5}))
    assert refused.status_code == 400
    assert set(refused.json["errors"]) == {"pages", "meta.lang"}, refused.json


@pytest.mark.parametrize("value", ["true", "[]", "5", '"en"'])
def test_a_part_described_by_its_members_alone_must_be_an_object(api, value):
    """By the letter `meta` (no type) takes any JSON value; the server binds an object from
    it, so the mock types such a part as an object (`contract.spec.repair`)."""
    refused = _upload(api, meta=value)
    assert refused.status_code == 400, refused.json
    assert list(refused.json["errors"]) == ["meta"], refused.json
    assert "must be an object" in refused.json["errors"]["meta"][0], refused.json


def test_a_part_described_by_its_members_alone_is_typed_in_the_document_in_use(api):
    document = api.application.extensions["mockserver"].spec.document
    body = document["paths"]["/documents"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["meta"]["type"] == "object"
    assert (
        "form parts described by their members alone: 1 typed as objects"
        in (api.get("/_mock/health").json["spec"]["repairs"])
    )


def test_a_missing_required_part_is_a_400(api):
    refused = api.post("/documents", data={"name": "Terms"}, content_type="multipart/form-data")
    assert refused.status_code == 400
    assert "file" in json.dumps(refused.json["errors"]), refused.json


@pytest.mark.parametrize(
    ("content_type", "body", "says"),
    [
        ("multipart/form-data", b"name=x", "has no boundary"),
        ("multipart/form-data; boundary=abc", b"garbage", "is not valid multipart/form-data"),
    ],
)
def test_a_body_that_is_not_the_form_it_says_is_a_400(api, content_type, body, says):
    refused = api.post("/documents", data=body, content_type=content_type)
    assert refused.status_code == 400
    assert says in refused.json["errors"]["$"][0], refused.json


def test_a_media_type_the_operation_does_not_take_is_a_415_naming_the_form(api):
    refused = api.post("/documents", json={"name": "Terms", "file": "x"})
    assert refused.status_code == 415
    assert "multipart/form-data" in refused.json["detail"]


def test_an_urlencoded_action_answers_404_then_the_declared_status(api):
    rename = {"data": {"name": "Conditions"}, "content_type": "application/x-www-form-urlencoded"}
    assert api.post("/documents/DOC-0000-0000/rename", **rename).status_code == 404
    document = _upload(api).json
    renamed = api.post(f"/documents/{document['id']}/rename", **rename)
    assert renamed.status_code == 200
    assert renamed.json["id"] == document["id"]
    empty = api.post(
        f"/documents/{document['id']}/rename",
        data={"name": ""},
        content_type="application/x-www-form-urlencoded",
    )
    assert empty.status_code == 400
    assert "name" in empty.json["errors"]
