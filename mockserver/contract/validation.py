"""Checking a request against its operation: media type, JSON or form body, parameters, schema.

openapi-core is the validator. The mock does the parts openapi-core leaves to the framework
(media-type negotiation, decoding the body with clear errors, the nesting limit of the real
server) and turns openapi-core's errors into problem details keyed by JSON path.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.wrappers import Request

from mockserver import codec
from mockserver.codec import MAX_DEPTH
from mockserver.contract import library
from mockserver.contract.fast_path import Precheck
from mockserver.contract.forms import decode_form, is_form
from mockserver.contract.router import Match, Operation
from mockserver.contract.schemas import Members, members
from mockserver.contract.spec import Spec
from mockserver.contract.violations import Errors, violations
from mockserver.problems import Problem, invalid

if TYPE_CHECKING:
    from mockserver.contract.core_backend import CompiledFactory

_NO_HEADERS: Mapping[str, str] = {}


@dataclass
class Checked:
    """What validation leaves for the handler: the body as the server sees it."""

    body: Any = None
    warnings: list[str] = field(default_factory=list)


@functools.cache
def _request_class() -> Any:
    """The request as openapi-core sees it: our query decoding, our parsed body, and the
    request's own headers and cookies (not copied, as the base class does). Made on first use:
    it subclasses openapi-core's, which is loaded then."""
    library.load()
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
    from openapi_core.datatypes import RequestParameters

    class OpenAPIRequest(WerkzeugOpenAPIRequest):
        def __init__(
            self,
            request: Request,
            query: dict[str, str],
            path: dict[str, str],
            body: bytes | None,
            media_type: str,
        ) -> None:
            self.request = request
            self.parameters = RequestParameters(
                query=ImmutableMultiDict(query),
                header=request.headers,
                cookie=request.cookies,
                path=path,
            )
            self._body = body
            self._media_type = media_type

        @property
        def body(self) -> bytes | None:
            return self._body

        @property
        def content_type(self) -> str:
            return self._media_type

    return OpenAPIRequest


class Validator:
    """Validates requests for one spec; what does not depend on a request is built once."""

    def __init__(self, spec: Spec, strict: bool = False) -> None:
        self.spec = spec
        self.strict = strict
        self._members: dict[tuple[str, str], Members | None] = {}
        self._body_validators: dict[tuple[str, str], Any] = {}
        self._media: dict[tuple[str, str], str] = {}  # (operation, sent type) -> declared type
        self.precheck = Precheck(spec, lambda: self.factory)

    # openapi-core's request validator on the compiled schema backend, made on the first
    # request that needs it (a request without parameters or body, such as the health check,
    # does not: openapi-core's import is a quarter of a second). The mock has already found
    # the operation, so it calls the parameter and body steps directly instead of
    # `iter_errors` (which would find it again).

    def warm(self) -> None:
        """Make now what the first request that needs openapi-core would make (its import and
        objects): a server warms its validators in the background once it serves."""
        _ = self.openapi, _request_class()

    @cached_property
    def factory(self) -> CompiledFactory:
        library.load()
        from mockserver.contract.core_backend import CompiledFactory

        own: Any = self.spec.openapi.request_validator
        return CompiledFactory(self.spec, own.schema_validators_factory)

    @cached_property
    def openapi(self) -> Any:
        own: Any = self.spec.openapi.request_validator
        return type(own)(
            self.spec.openapi.spec,
            schema_validators_factory=self.factory,
            extra_media_type_deserializers=own.extra_media_type_deserializers,
        )

    @cached_property
    def _paths(self) -> Any:
        return self.spec.openapi.spec / "paths"

    def check(
        self, request: Request, match: Match, query: dict[str, str], body: bytes | None = None
    ) -> Checked:
        """Raise a Problem (400/411/414/415) for a request that breaks the contract. `body`:
        the request's body when it was read already."""
        check_target(request.environ)
        operation = match.operation
        checked = Checked()
        media_type, raw = self._body(request, operation, body)
        if media_type is not None:
            checked.body = self._decode(request, operation, media_type, raw)
            if not self.strict:
                strip = self._stripper(operation, media_type)
                if strip is not None:
                    checked.warnings = strip.strip(checked.body)
        # an empty value is no value, as ASP.NET Core binds it (`order=` is no order)
        present = {name: value for name, value in query.items() if value != ""}
        params_pass = self._params_pass(operation, present, match.params, request.headers)
        body_passes = self._body_passes(operation, media_type, checked.body)
        if not (params_pass and body_passes):  # openapi-core explains what the pre-check refused
            parts = (not params_pass, not body_passes)
            self._explain(request, match, present, media_type, checked.body, parts)
        return checked

    def _decode(self, request: Request, operation: Operation, media_type: str, raw: bytes) -> Any:
        """The body as a JSON value: parsed JSON, or a form's parts (see `contract.forms`)."""
        if not is_form(media_type):
            return decode_json(raw)
        schema = operation.node["requestBody"]["content"][media_type].get("schema")
        return decode_form(raw, request.content_type or "", schema, self.spec.schema)

    def _passes_precheck(
        self,
        operation: Operation,
        media_type: str | None,
        body: Any,
        query: dict[str, str],
        path: dict[str, str],
        headers: Headers | Mapping[str, str] = _NO_HEADERS,
    ) -> bool:
        return self._params_pass(operation, query, path, headers) and self._body_passes(
            operation, media_type, body
        )

    def _params_pass(
        self,
        operation: Operation,
        query: dict[str, str],
        path: dict[str, str],
        headers: Headers | Mapping[str, str],
    ) -> bool:
        params = self.precheck.parameters(operation)
        return params is not None and params(query, path, headers)

    def _body_passes(self, operation: Operation, media_type: str | None, body: Any) -> bool:
        if media_type is None:
            return not _body_required(operation)
        valid = self.precheck.body(operation, media_type)
        return valid is not None and valid(body)

    def _explain(
        self,
        request: Request,
        match: Match,
        query: dict[str, str],
        media_type: str | None,
        body: Any,
        parts: tuple[bool, bool] = (True, True),
    ) -> None:
        """openapi-core's verdict on the parameters and/or the body, with every violation."""
        operation = match.operation
        errors: Errors = {}
        parameters, body_part = parts
        no_body = body_part and media_type is None  # the body part, and none was sent
        if parameters or (no_body and _body_required(operation)):
            self._core_steps(
                request,
                match,
                query,
                media_type,
                body,
                errors,
                parameters=parameters,
                no_body=no_body,
            )
        if body_part and media_type is not None:
            self._body_errors(operation, media_type, body, errors)
        if errors:
            raise invalid(errors)

    def _core_steps(
        self,
        request: Request,
        match: Match,
        query: dict[str, str],
        media_type: str | None,
        body: Any,
        errors: Errors,
        *,
        parameters: bool,
        no_body: bool,
    ) -> None:
        """openapi-core's own steps, on its request type (made only for them: ~30 us): the
        parameters, and the body step for a request sent without a body."""
        operation = match.operation
        raw = codec.dumps(body) if media_type is not None else b""
        path = self._paths / operation.template
        req = _request_class()(request, query, match.params, raw, media_type or "")
        op = path / operation.method.lower()
        for error in self.openapi._iter_parameters_errors(req, op, path) if parameters else ():
            _add_parameter_error(errors, error)
        if no_body:
            for error in self.openapi._iter_body_errors(req, op):
                _add_body_error(errors, error)

    def _body_errors(
        self, operation: Operation, media_type: str, body: Any, errors: Errors
    ) -> None:
        """openapi-core's body step from its schema check on: the very validator it makes
        (found once per operation and media type), given the body already parsed. Finding
        the media type and parsing the body again cost it twice the check itself."""
        content = operation.node.get("requestBody", {}).get("content", {}).get(media_type, {})
        if "schema" not in content:
            return  # nothing to check it against
        key = (operation.operation_id, media_type)
        validator = self._body_validators.get(key)
        if validator is None:
            op = self._paths / operation.template / operation.method.lower()
            schema = op / "requestBody" / "content" / media_type / "schema"
            validator = self._body_validators[key] = self.factory.create(
                self.openapi.spec,
                schema,
                format_validators=self.openapi.format_validators,
                extra_format_validators=self.openapi.extra_format_validators,
                forbid_unspecified_additional_properties=(
                    self.openapi.forbid_unspecified_additional_properties
                ),
                enforce_properties_required=self.openapi.enforce_properties_required,
            )
        library.load()
        from openapi_core.validation.schemas.exceptions import InvalidSchemaValue

        try:
            validator.validate(body)
        except InvalidSchemaValue as exc:
            for violation in exc.schema_errors:
                for name, message in violations(violation):
                    errors.setdefault(name, []).append(message)

    def _body(
        self, request: Request, operation: Operation, raw: bytes | None
    ) -> tuple[str | None, bytes]:
        """The declared media type the body is sent as (None: no body) and its bytes; or 415
        (and 400 or 411, see `_read_body`)."""
        content = operation.node.get("requestBody", {}).get("content")
        raw = _read_body(request, raw)
        if not content or (not raw and not request.content_type):
            return None, b""
        found = self._accepted_type(operation, content, request.content_type or "")
        if not raw:
            return None, b""
        return found, raw

    def _accepted_type(self, operation: Operation, content: Any, header: str) -> str:
        """The declared JSON or form media type a Content-Type header goes to; 415 for a
        media type the operation does not take, or a charset other than UTF-8."""
        sent, charset = parse_media_type(header)
        found = self._declared_type(operation, content, sent)
        if found is None or not ("json" in found or is_form(found)):
            raise Problem(
                415,
                f"The media type '{sent or '(none)'}' is not supported; send one of: "
                + ", ".join(content)
                + ".",
            )
        if charset not in ("", "utf-8", "utf8"):
            raise Problem(415, f"The charset '{charset}' is not supported; send UTF-8.")
        return found

    def _declared_type(self, operation: Operation, content: Any, sent: str) -> str | None:
        """The declared media type a sent one goes to (exactly, else by wildcard), found once."""
        key = (operation.operation_id, sent)
        found = self._media.get(key)
        if found is None:
            found = next((d for d in content if sent == d), None) or next(
                (d for d in content if fnmatch.fnmatchcase(sent, d)), None
            )
            if found is not None and len(self._media) < 1024:
                self._media[key] = found
        return found

    def _stripper(self, operation: Operation, media_type: str) -> Members | None:
        key = (operation.operation_id, media_type)
        if key not in self._members:
            schema = operation.node["requestBody"]["content"][media_type].get("schema")
            self._members[key] = members(schema, self.spec.schema)
        return self._members[key]


_MEDIA = re.compile(r"^\s*([^\s;/]+/[^\s;]+)\s*(?:;(.*))?$")


def check_target(environ: dict[str, Any]) -> None:
    """414 for a query string the server could not read. uWSGI leaves out a variable that
    does not fit its 64 KiB request buffer (and says so only in its own log): the query
    string of a URL over about 32 KiB (less with large headers), which the request would
    otherwise be served without (a filtered read answering every record)."""
    uri = environ.get("REQUEST_URI")
    if uri and not environ.get("QUERY_STRING") and uri.partition("?")[2]:
        raise Problem(
            414,
            f"The request is too large for the server to read whole (a URL of {len(uri)} "
            "bytes): keep the URL under about 32 KiB.",
        )


@functools.lru_cache(maxsize=64)  # a client sends the same Content-Type again and again
def parse_media_type(header: str) -> tuple[str, str]:
    """`application/json; charset=UTF-8` → (`application/json`, `utf-8`); never raises."""
    found = _MEDIA.match(header)
    if not found:
        return header.strip().lower(), ""
    charset = ""
    for parameter in (found.group(2) or "").split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return found.group(1).lower(), charset


def decode_json(raw: bytes) -> Any:
    """Parse a body as the real server would, with a 400 problem naming what is wrong."""
    try:
        value = codec.loads(raw)
    except UnicodeDecodeError as exc:
        byte = f"0x{raw[exc.start]:02x}"
        message = f"The body is not valid UTF-8: byte {byte} at offset {exc.start}."
        raise invalid({"$": [message]}) from exc
    except json.JSONDecodeError as exc:
        what = exc.msg.removesuffix(" at")  # "Unterminated string starting at" at line...
        where = f"at line {exc.lineno}, column {exc.colno}"
        raise invalid({"$": [f"The body is not valid JSON: {what} {where}."]}) from exc
    except ValueError as exc:
        raise invalid({"$": [f"The body is not valid JSON: {exc}."]}) from exc
    except RecursionError as exc:
        raise invalid({"$": [_too_deep()]}) from exc
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise invalid({"$": [_too_deep()]})
    return value


def _too_deep() -> str:
    return f"The JSON is nested deeper than the maximum of {MAX_DEPTH} levels."


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        stack.extend((child, level + 1) for child in node if isinstance(child, dict | list))
    return deepest


def _read_body(request: Request, raw: bytes | None) -> bytes:
    """The request's body (`raw` when it was read already); 400 for a Content-Length that is
    not a length, 411 for a chunked body."""
    length = request.headers.get("Content-Length")
    if length is not None and not (length.isascii() and length.strip().isdigit()):
        raise invalid({"Content-Length": [f"The value '{length}' is not a valid length."]})
    if raw is None:
        raw = request.get_data(cache=True)
    if not raw and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        raise Problem(411, "A chunked request body is not supported: send a Content-Length.")
    return raw


def _body_required(operation: Operation) -> bool:
    return bool(operation.node.get("requestBody", {}).get("required"))


def _add_parameter_error(errors: Errors, error: Exception) -> None:
    library.load()
    from openapi_core.casting.schemas.exceptions import CastError
    from openapi_core.deserializing.styles.exceptions import EmptyQueryParameterValue
    from openapi_core.validation.request.exceptions import (
        MissingRequiredParameter,
        ParameterValidationError,
    )

    if not isinstance(error, ParameterValidationError):
        errors.setdefault("$", []).append(str(error))
        return
    name, cause = error.name, error.__cause__
    if isinstance(error, MissingRequiredParameter):
        message = f"The {name} parameter is required."
    elif isinstance(cause, CastError):
        message = f"The value '{cause.value}' is not valid for {name}."
    elif isinstance(cause, EmptyQueryParameterValue):
        message = f"The value of {name} cannot be empty."
    else:
        for violation in getattr(cause, "schema_errors", None) or []:
            for _, text in violations(violation):
                errors.setdefault(name, []).append(text)
        return
    errors.setdefault(name, []).append(message)


def _add_body_error(errors: Errors, error: Exception) -> None:
    library.load()
    from openapi_core.validation.request.exceptions import MissingRequiredRequestBody

    if isinstance(error, MissingRequiredRequestBody):
        errors.setdefault("$", []).append("A non-empty request body is required.")
        return
    found = getattr(error.__cause__, "schema_errors", None)
    if not found:
        errors.setdefault("$", []).append(str(error.__cause__ or error))
        return
    for violation in found:
        for key, message in violations(violation):
            errors.setdefault(key, []).append(message)
