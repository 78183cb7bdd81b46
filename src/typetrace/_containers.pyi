# The types of exact containers in C (_containers.c); see typetrace.inference.

from typing import Any, Optional

from typetrace.typemodel import TypeRef

class ContainerTypes:
    def __init__(
        self,
        class_refs: dict[int, Any],
        plain_refs: dict[int, Any],
        built_refs: dict[tuple[int, ...], Any],
        shape_refs: dict[tuple[object, ...], Any],
        none_ref: TypeRef,
        any_ref: TypeRef,
        ellipsis_ref: TypeRef,
        *,
        max_elements: int,
        max_depth: int,
        head_elements: int,
        spread_elements: int,
        max_tuple_length: int,
        max_shape_keys: int,
        max_shape_key_length: int,
    ) -> None: ...
    def infer(self, value: object) -> Optional[TypeRef]: ...
    @property
    def elements(self) -> int: ...
    @property
    def typed(self) -> int: ...
