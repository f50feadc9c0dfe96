"""The base of every VirtualIP model class: strict, closed, frozen, camelCase on the wire.

Attribute docstrings become schema descriptions, so the CRD's ``kubectl
explain`` text and the field reference are the docstrings written here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        use_attribute_docstrings=True,
    )
