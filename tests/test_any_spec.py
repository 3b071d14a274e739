"""Any OpenAPI 3.0 or 3.1 file: every operation answered, never with a 500, and as declared.

In-process apps (response checking on): the platform's whole document, a small spec whose
schemas are recursive (through `$ref`, `allOf` and arrays), and a small OpenAPI 3.1 spec.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from support import AUTH, MARKETPLACE_SPEC, reference

from mockserver.contract.examples import WRITING, Maker
from mockserver.contract.spec import load_spec

PARAM = re.compile(r"\{([^{}]+)\}")

# ---------------------------------------------------------------- the platform's document


def _body_schema(node: dict[str, Any]) -> tuple[str, Any] | None:
    """The media type to send a body as (JSON if the operation takes it, else a form) and its
    schema."""
    content = node.get("requestBody", {}).get("content", {})
    media = next((m for m in content if "json" in m), next(iter(content), None))
    return None if media is None else (media, content[media].get("schema", {}))


def _form(value: Any) -> dict[str, Any]:
    """A value made for a form's schema, as a form sends it: text, JSON for what is not."""

    def text(item: Any) -> str:
        return item if isinstance(item, str) else json.dumps(item)

    members = value.items() if isinstance(value, dict) else ()
    return {k: [text(i) for i in v] if isinstance(v, list) else text(v) for k, v in members}


def _fill(template: str, ids: dict[str, str]) -> str:
    """The template with each parameter an id created for its collection, else a made-up one."""
    parts = template.split("/")
    for index, part in enumerate(parts):
        if PARAM.fullmatch(part):
            parts[index] = ids.get("/".join(parts[:index]), "ABC-1234-5678")
    return "/".join(parts)


def _send(api: Any, maker: Maker, operation: Any, ids: dict[str, str]) -> Any:
    body = _body_schema(operation.node)
    kwargs: dict[str, Any] = {}
    if body is not None:
        media, schema = body
        value = maker.value(schema, random.Random(operation.operation_id), WRITING)
        if "json" in media:
            kwargs["json"] = value
        else:  # multipart/form-data
            kwargs.update(data=_form(value), content_type=media)
    return api.open(_fill(operation.template, ids), method=operation.method, **kwargs)


def test_every_operation_of_the_platform_document_answers_without_a_server_error(make_app):
    """Creates first (their ids then fill the paths of reads, updates and actions on those
    items), then every other operation with a body made from its request schema. No answer
    is a 5xx, and every answer conforms to the document (undeclared error statuses aside: the
    document leaves most of them out)."""
    spec_path = reference(MARKETPLACE_SPEC)
    app = make_app(spec=spec_path, strict_conformance=False)
    api = app.test_client()
    operations = app.extensions["mockserver"].router.operations
    maker = Maker(load_spec(spec_path).schema)
    ids: dict[str, str] = {}
    statuses: dict[str, int] = {}
    order = {"create": 0, "delete": 2}  # creates first, deletes last
    for operation in sorted(operations, key=lambda op: order.get(op.kind, 1)):
        answer = _send(api, maker, operation, ids)
        statuses[f"{operation.method} {operation.template}"] = answer.status_code
        if operation.kind == "create" and answer.status_code < 300 and answer.is_json:
            ids.setdefault(_fill(operation.template, ids), str(answer.json.get("id")))
    assert len(statuses) == 452
    assert {op: s for op, s in statuses.items() if s >= 500} == {}
    # every operation takes the body its spec declares (31 take multipart/form-data)
    assert {op: s for op, s in statuses.items() if s == 415} == {}
    generated = [op for op in operations if op.kind == "action"]
    answered = [statuses[f"{op.method} {op.template}"] for op in generated]
    # most actions act on an item a create made
    assert sum(200 <= s < 300 for s in answered) >= 90, sum(200 <= s < 300 for s in answered)


def test_the_platform_document_declares_what_is_answered(make_app):
    """The issue's cases: a create that declares 200 answers 200; ids follow the declared
    pattern (`^UGR-\\d\\d\\d\\d-\\d\\d\\d\\d$`); an action on a missing item is a 404, on a
    stored one the declared status with a body made from its schema; errors are listed once."""
    spec_path = reference(MARKETPLACE_SPEC)
    app = make_app(spec=spec_path, strict_conformance=False)
    api = app.test_client()
    maker = Maker(load_spec(spec_path).schema)
    groups = "/public/v1/accounts/ACC-1234-5678/users/USR-1234-5678/groups"
    created = api.post(groups, json={"id": "UGR-1234-5678"})
    assert created.status_code == 200
    assert re.fullmatch(r"UGR-\d{4}-\d{4}", created.json["id"])

    orders = "/public/v1/commerce/orders"
    assert api.post(f"{orders}/ORD-0000-0000-0000/process", json={}).status_code == 404
    create = app.extensions["mockserver"].router.match("POST", orders).operation
    order = _send(api, maker, create, {})
    assert order.status_code == 201, order.json
    processed = api.post(f"{orders}/{order.json['id']}/process", json={})
    assert processed.status_code == 200
    assert processed.json["id"] == order.json["id"]
    assert processed.headers["Content-Type"].startswith("application/json")

    refused = api.post(groups, json={"id": "nope"})
    assert refused.status_code == 400
    for messages in refused.json["errors"].values():
        assert len(messages) == len(set(messages))


def test_health_reports_the_operations_of_the_platform_document_by_kind(make_app):
    app = make_app(spec=reference(MARKETPLACE_SPEC), strict_conformance=False)
    found = app.test_client().get("/_mock/health").json
    kinds = found["operations"]
    assert sum(kinds.values()) == 452
    assert kinds["crud"] > 250
    assert kinds["generated"] > 100
    assert found["responseFindingsByKind"] == {"crud": 0, "example": 0, "generated": 0}


# ---------------------------------------------------------------- a spec with recursive schemas

RECURSIVE = {
    "openapi": "3.0.3",
    "info": {"title": "Trees", "version": "1"},
    "paths": {
        "/trees": {
            "get": {"responses": {"200": {"$ref": "#/components/responses/Trees"}}},
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Tree"}}
                    },
                },
                "responses": {
                    "200": {"$ref": "#/components/responses/Tree"},
                    "400": {"$ref": "#/components/responses/Problem"},
                },
            },
        },
        "/trees/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "responses": {
                    "200": {"$ref": "#/components/responses/Tree"},
                    "404": {"$ref": "#/components/responses/Problem"},
                }
            },
            "delete": {
                "responses": {
                    "200": {"$ref": "#/components/responses/Tree"},
                    "404": {"$ref": "#/components/responses/Problem"},
                }
            },
        },
        "/trees/{id}/prune": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "post": {
                "responses": {
                    "202": {"$ref": "#/components/responses/Tree"},
                    "200": {
                        "description": "Pruned already",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Tree"},
                                "examples": {
                                    "bare": {"value": {"id": "TRE-0000-0001", "name": "bare"}},
                                    "leafy": {"$ref": "#/components/examples/Leafy"},
                                },
                            }
                        },
                    },
                    "404": {"$ref": "#/components/responses/Problem"},
                }
            },
        },
        "/forest/census": {
            "get": {"responses": {"200": {"$ref": "#/components/responses/Tree"}}},
        },
    },
    "components": {
        "responses": {
            "Tree": {
                "description": "A tree",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Tree"}}},
            },
            "Trees": {
                "description": "Trees",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "data": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Tree"},
                                }
                            },
                        }
                    }
                },
            },
            "Problem": {
                "description": "A problem",
                "content": {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/ProblemDetails"}
                    }
                },
            },
        },
        "examples": {"Leafy": {"value": {"id": "TRE-0000-0002", "name": "leafy", "branches": []}}},
        "schemas": {
            "Node": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "readOnly": True, "pattern": "^TRE-\\d{4}-\\d{4}$"},
                    "parent": {"allOf": [{"$ref": "#/components/schemas/Tree"}], "nullable": True},
                },
            },
            "Tree": {
                "type": "object",
                "required": ["name"],
                "allOf": [{"$ref": "#/components/schemas/Node"}],
                "properties": {
                    "id": {"type": "string", "readOnly": True, "pattern": "^TRE-\\d{4}-\\d{4}$"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 40},
                    "contact": {"type": "string", "format": "email"},
                    "planted": {"type": "string", "format": "date-time"},
                    "branches": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}},
                    "parent": {"allOf": [{"$ref": "#/components/schemas/Tree"}], "nullable": True},
                },
            },
            "ProblemDetails": {"type": "object", "additionalProperties": True},
        },
    },
}


def _write(tmp_path: Path, document: dict[str, Any], name: str) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def trees(make_app: Callable[..., Flask], tmp_path: Path) -> Any:
    return make_app(spec=_write(tmp_path, RECURSIVE, "trees.yaml"), faker_seed=3).test_client()


def test_a_recursive_spec_creates_and_strips_read_only_members_at_every_depth(trees):
    body = {
        "name": "oak",
        "id": "mine",
        "branches": [{"name": "b1", "id": "x", "branches": [{"name": "b2", "id": "y"}]}],
        "parent": {"name": "root", "id": "z", "parent": {"name": "older", "id": "w"}},
    }
    created = trees.post("/trees", json=body)
    assert created.status_code == 200  # the create declares 200, not 201
    item = created.json
    assert re.fullmatch(r"TRE-\d{4}-\d{4}", item["id"])
    assert item["branches"] == [{"name": "b1", "branches": [{"name": "b2"}]}]
    assert item["parent"] == {"name": "root", "parent": {"name": "older"}}
    assert trees.get(f"/trees/{item['id']}").json == item


def test_an_action_answers_404_then_the_declared_status_with_a_made_body(trees):
    assert trees.post("/trees/TRE-0000-0000/prune").status_code == 404
    tree = trees.post("/trees", json={"name": "elm"}).json
    first = trees.post(f"/trees/{tree['id']}/prune")
    assert first.status_code == 200  # the lowest declared 2xx
    assert (
        first.json == {"id": "TRE-0000-0002", "name": "leafy", "branches": []}
        or first.json["name"] == "bare"
    )


def test_prefer_picks_the_status_the_example_or_a_dynamic_body(trees):
    tree = trees.post("/trees", json={"name": "ash"}).json
    prune = f"/trees/{tree['id']}/prune"
    leafy = trees.post(prune, headers={**AUTH, "Prefer": "example=leafy"})
    assert (leafy.status_code, leafy.json["name"]) == (200, "leafy")
    bare = trees.post(prune, headers={**AUTH, "Prefer": "example=bare"})
    assert bare.json == {"id": "TRE-0000-0001", "name": "bare"}
    missing = trees.post(prune, headers={**AUTH, "Prefer": "example=nope"})
    assert missing.status_code == 404
    assert "bare, leafy" in missing.json["detail"]

    accepted = trees.post(prune, headers={**AUTH, "Prefer": "code=202"})
    assert accepted.status_code == 202
    assert accepted.json["id"] == tree["id"]  # a made body about the item acted on
    assert isinstance(accepted.json["name"], str)

    dynamic = [trees.post(prune, headers={**AUTH, "Prefer": "dynamic=true"}).json for _ in "ab"]
    assert dynamic[0] != dynamic[1]
    assert all(d["id"] == tree["id"] for d in dynamic)


def test_an_operation_on_no_item_is_generated_the_same_each_time(trees, make_app, tmp_path):
    first = trees.get("/forest/census")
    assert first.status_code == 200
    assert first.json == trees.get("/forest/census").json
    assert "@" in first.json["contact"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.json["planted"])
    again = make_app(spec=_write(tmp_path, RECURSIVE, "again.yaml"), faker_seed=3).test_client()
    assert again.get("/forest/census").json == first.json  # --faker-seed: the same body


def test_a_delete_declared_200_answers_with_a_body(trees):
    tree = trees.post("/trees", json={"name": "fir"}).json
    deleted = trees.delete(f"/trees/{tree['id']}")
    assert deleted.status_code == 200
    assert isinstance(deleted.json, dict)


# ---------------------------------------------------------------- an OpenAPI 3.1 spec

OAS31 = {
    "openapi": "3.1.0",
    "info": {"title": "Notes", "version": "1"},
    "paths": {
        "/notes": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Note"}}
                    }
                },
                "responses": {
                    "201": {"$ref": "#/components/responses/Note"},
                    "204": {"description": "Nothing to say"},
                },
            },
            "get": {
                "responses": {
                    "200": {
                        "description": "Notes",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                }
            },
        },
        "/notes/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {"responses": {"200": {"$ref": "#/components/responses/Note"}}},
            "delete": {"responses": {"204": {"description": "Gone"}}},
        },
        "/notes/{id}/pin": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "put": {
                "responses": {
                    "204": {"description": "Pinned"},
                    "404": {
                        "description": "No such note",
                        "content": {"application/problem+json": {}},
                    },
                }
            },
        },
        "/stats": {
            "get": {
                "responses": {
                    "200": {
                        "description": "Stats",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["count", "kind", "owner"],
                                    "properties": {
                                        "count": {"type": "integer", "minimum": 1, "maximum": 9},
                                        "kind": {"const": "stats"},
                                        "owner": {"type": ["string", "null"], "format": "email"},
                                        "tags": {
                                            "type": "array",
                                            "minItems": 2,
                                            "items": {"type": "string", "enum": ["a", "b"]},
                                        },
                                    },
                                }
                            }
                        },
                    }
                }
            }
        },
    },
    "components": {
        "responses": {
            "Note": {
                "description": "A note",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Note"}}},
            }
        },
        "schemas": {
            "Note": {
                "type": "object",
                "properties": {
                    "id": {
                        "type": "string",
                        "readOnly": True,
                        "pattern": "^NOT-[0-9]{4}-\\d\\d\\d\\d$",
                    },
                    "text": {"type": ["string", "null"]},
                    "replies": {"type": "array", "items": {"$ref": "#/components/schemas/Note"}},
                },
            }
        },
    },
}


@pytest.fixture
def notes(make_app: Callable[..., Flask], tmp_path: Path) -> Any:
    return make_app(spec=_write(tmp_path, OAS31, "notes.yaml")).test_client()


def test_a_31_spec_creates_with_its_id_pattern_and_answers_204_bare(notes):
    created = notes.post("/notes", json={"text": None, "replies": [{"text": "hi", "id": "x"}]})
    assert created.status_code == 201
    note = created.json
    assert re.fullmatch(r"NOT-\d{4}-\d{4}", note["id"])
    assert note["replies"] == [{"text": "hi"}]
    pinned = notes.put(f"/notes/{note['id']}/pin")
    assert pinned.status_code == 204
    assert "Content-Type" not in pinned.headers
    assert pinned.get_data() == b""
    deleted = notes.delete(f"/notes/{note['id']}")
    assert (deleted.status_code, deleted.get_data()) == (204, b"")
    assert "Content-Type" not in deleted.headers
    assert notes.put(f"/notes/{note['id']}/pin").status_code == 404


def test_a_31_spec_generates_from_type_lists_const_and_bounds(notes):
    stats = notes.get("/stats").json
    assert stats["kind"] == "stats"
    assert 1 <= stats["count"] <= 9
    assert stats["owner"] is None or "@" in stats["owner"]
    assert len(stats["tags"]) >= 2
    assert set(stats["tags"]) <= {"a", "b"}


def test_prefer_code_204_on_an_answer_with_a_body_sends_none(notes):
    created = notes.post("/notes", json={"text": "x"}, headers={**AUTH, "Prefer": "code=204"})
    assert created.status_code == 204
    assert created.get_data() == b""
    assert "Content-Type" not in created.headers


def test_a_nested_create_under_a_non_ascii_parent_id_has_an_ascii_location(make_app):
    """Found by schemathesis on the platform document: uWSGI dropped the whole answer (status
    line aside) when the Location header held the parent's id unencoded."""
    api = make_app(spec=reference(MARKETPLACE_SPEC), strict_conformance=False).test_client()
    created = api.post(
        "/public/v1/commerce/orders/%C3%BC%2A/subscriptions", json={"status": "Active"}
    )
    assert created.status_code == 201
    location = created.headers["Location"]
    assert location.isascii()
    assert "/orders/%C3%BC%2A/subscriptions/SUB-" in location


# ------------------------------------------- closed allOf parts: the letter and the server

SELLERS: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Sellers", "version": "1"},
    "paths": {
        "/sellers": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Seller"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "Created",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Seller"}}
                        },
                    }
                },
            }
        },
        "/sellers/{id}": {
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "responses": {
                    "200": {
                        "description": "The seller",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Seller"}}
                        },
                    }
                }
            },
        },
    },
    "components": {
        "schemas": {
            # as the platform's SellerCreate: the closed part requires what only the outer
            # schema declares, so by the letter no body is valid
            "Seller": {
                "type": "object",
                "required": ["name", "currencies"],
                "allOf": [{"$ref": "#/components/schemas/SellerRef"}],
                "properties": {
                    "id": {"type": "string", "readOnly": True},
                    "name": {"type": "string", "minLength": 1},
                    "currencies": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "erpLink": {"type": "string"},
                },
                "additionalProperties": False,
            },
            "SellerRef": {
                "type": "object",
                "required": ["name", "currencies"],
                "properties": {
                    "id": {"type": "string", "readOnly": True},
                    "erpLink": {"type": "string"},
                },
                "additionalProperties": False,
            },
        }
    },
}


def test_a_closed_allof_part_is_read_as_the_merged_object_in_lenient_mode(make_app, tmp_path):
    """By the letter no body is valid (the part requires `name` and forbids it); the real
    server takes the body the author meant, every member of every part. Unknown members are
    still ignored (the outer schema is closed) and required ones still required."""
    api = make_app(spec=_write(tmp_path, SELLERS, "sellers.yaml"), strict_conformance=False)
    api = api.test_client()
    created = api.post("/sellers", json={"name": "Acme", "currencies": ["USD"], "bogus": 1})
    assert created.status_code == 201, created.json
    assert {k: v for k, v in created.json.items() if k != "id"} == {
        "name": "Acme",
        "currencies": ["USD"],
    }
    refused = api.post("/sellers", json={"name": "Acme", "currencies": []})
    assert refused.status_code == 400
    assert list(refused.json["errors"]) == ["currencies"], refused.json
    repairs = api.get("/_mock/health").json["spec"]["repairs"]
    assert repairs == ["closed allOf parts that require members they forbid read open: Seller"]
    served = api.application.extensions["mockserver"].spec.document["components"]["schemas"]
    assert "additionalProperties" not in served["Seller"]["allOf"][0]
    assert served["SellerRef"]["additionalProperties"] is False  # used alone, still closed


def test_strict_mode_keeps_the_letter_of_a_closed_allof_part(make_app, tmp_path):
    api = make_app(
        spec=_write(tmp_path, SELLERS, "sellers.yaml"), strict=True, strict_conformance=False
    ).test_client()
    refused = api.post("/sellers", json={"name": "Acme", "currencies": ["USD"]})
    assert refused.status_code == 400
    assert refused.json["errors"] == {
        "name": ["'name' is not a member of this object."],
        "currencies": ["'currencies' is not a member of this object."],
    }
    assert api.get("/_mock/health").json["spec"]["repairs"] == []


@pytest.mark.parametrize(
    ("path", "body"),
    [  # schemathesis' cases: valid by the merged object, refused by the letter
        ("/public/v1/accounts/sellers", {"currencies": ["0"], "name": "0"}),
        ("/public/v1/accounts/accounts", {"serviceLevel": "Focus", "type": "Vendor", "name": "A"}),
    ],
)
def test_the_platform_document_takes_the_merged_object_where_the_letter_takes_nothing(
    make_app, path, body
):
    api = make_app(spec=reference(MARKETPLACE_SPEC), strict_conformance=False).test_client()
    created = api.post(path, headers=AUTH, json=body)
    assert created.status_code in (200, 201), created.json  # shown as the answer's schema says
    assert created.json["id"]


def test_a_null_the_answer_schema_does_not_take_is_left_out_of_the_answer(make_app):
    """`CreateRequest.parameters` is nullable, `Request.parameters` (the answer) is not: the
    stored null is not shown (found by schemathesis: the answer broke the document)."""
    api = make_app(spec=reference(MARKETPLACE_SPEC), strict_conformance=False).test_client()
    body = {"from": {}, "to": {}, "name": "Access", "status": "Draft", "parameters": None}
    created = api.post("/public/v1/commerce/requests", headers=AUTH, json=body)
    assert created.status_code == 201, created.json
    assert "parameters" not in created.json
    assert created.json["name"] == "Access"
    fetched = api.get(f"/public/v1/commerce/requests/{created.json['id']}", headers=AUTH)
    assert fetched.status_code == 200
    assert "parameters" not in fetched.json


def test_a_closed_allof_part_that_can_be_met_keeps_the_letter(make_app, tmp_path):
    """A closed part that is only narrower than the schema around it (the platform's `Order`
    and `OrderRef`) is read by the letter: the members it does not declare are unknown."""
    document = json.loads(json.dumps(SELLERS))
    del document["components"]["schemas"]["SellerRef"]["required"]
    app = make_app(spec=_write(tmp_path, document, "sellers.yaml"), strict_conformance=False)
    api = app.test_client()
    refused = api.post("/sellers", json={"name": "Acme", "currencies": ["USD"]})
    assert refused.status_code == 400
    assert set(refused.json["errors"]) == {"name", "currencies"}, refused.json
    assert api.get("/_mock/health").json["spec"]["repairs"] == []


def test_a_null_nullable_reference_is_read_as_absent_in_lenient_mode(make_app, tmp_path):
    """`allOf: [$ref], nullable: true` takes no null by the letter of OpenAPI 3.0.3 (`nullable`
    needs a `type` beside it); the server reads a null reference as no value (the platform's
    own examples send `"$meta": null`). Strict mode keeps the letter."""
    document = json.loads(json.dumps(SELLERS))
    seller = document["components"]["schemas"]["Seller"]
    seller["properties"]["address"] = {
        "allOf": [{"$ref": "#/components/schemas/Address"}],
        "nullable": True,
    }
    document["components"]["schemas"]["Address"] = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
    }
    path = _write(tmp_path, document, "sellers.yaml")
    body = {"name": "Acme", "currencies": ["USD"], "address": None}
    lenient = make_app(spec=path, strict_conformance=False).test_client()
    created = lenient.post("/sellers", json=body)
    assert created.status_code == 201, created.json
    assert "address" not in created.json
    strict = make_app(spec=path, strict=True, strict_conformance=False).test_client()
    refused = strict.post("/sellers", json=body)
    assert refused.status_code == 400
    assert "address" in refused.json["errors"], refused.json
