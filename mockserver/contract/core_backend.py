"""openapi-core's schema validators on the compiled backend (`contract.schema_backend`).

Importing this module imports openapi-core (about a quarter of a second of CPU): the request
validator loads it on the first request whose parameters or body need it, not at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property, partial
from typing import Any

from jsonschema_path import SchemaPath
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from openapi_core.validation.schemas.factories import SchemaValidatorsFactory
from openapi_core.validation.schemas.validators import SchemaValidator

from mockserver.contract.schema_backend import Violation, compile_schema
from mockserver.contract.spec import Spec


class CompiledValidator(SchemaValidator):
    """openapi-core's SchemaValidator, judging with a compiled jsonschema-rs validator."""

    def __init__(self, schema: SchemaPath, validator: Any, compiled: Any) -> None:
        super().__init__(schema, validator)
        self.compiled = compiled

    def validate(self, value: Any) -> None:
        if self.compiled.is_valid(value):
            return
        errors = [Violation.from_rust(error) for error in self.compiled.iter_errors(value)]
        raise InvalidSchemaValue(value, self._type, schema_errors=errors)

    @cached_property
    def _type(self) -> Any:
        """The schema's `type` (read once: a path lookup costs a third of an explanation)."""
        return (self.schema / "type").read_str_or_list("any")


class CompiledFactory(SchemaValidatorsFactory):
    """openapi-core's schema validators factory, compiling each schema once and reusing it."""

    def __init__(self, spec: Spec, base: SchemaValidatorsFactory) -> None:
        super().__init__(base.schema_validator_cls, base.format_checker)
        self.spec = spec
        self._base = base
        checker = base.format_checker
        self.formats: dict[str, Callable[[str], bool]] = {
            name: partial(checker.conforms, format=name) for name in checker.checkers
        }
        self._made: dict[tuple[Any, ...], SchemaValidator] = {}

    def create(
        self, spec: SchemaPath, schema: SchemaPath, *args: Any, **kwargs: Any
    ) -> SchemaValidator:
        key = (tuple(schema.parts), args, tuple(sorted(kwargs.items())))
        made = self._made.get(key)
        if made is None:
            made = self._base.create(spec, schema, *args, **kwargs)
            extra = args or any(kwargs.get(k) for k in kwargs)
            with schema.resolve() as resolved:
                compiled = (
                    None if extra else compile_schema(self.spec, resolved.contents, self.formats)
                )
            if compiled is not None:
                made = CompiledValidator(schema, made.validator, compiled)
            self._made[key] = made
        return made
