"""The base of every VirtualIP model class: strict, closed, frozen, camelCase on the wire.

Attribute docstrings become schema descriptions, so the CRD's ``kubectl
explain`` text and the field reference are the docstrings written here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

BY_NAME: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
"""Schema of a list keyed by ``name``: server-side apply merges its items by name."""
BY_TYPE: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}
"""Schema of a list keyed by ``type`` (conditions)."""


class Model(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )
