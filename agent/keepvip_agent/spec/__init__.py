"""The VirtualIP resource: one validated, frozen model for standalone and Kubernetes modes.

Raw documents (a YAML file, an API object) enter through :func:`load_documents`
or :func:`parse_virtualip`; everything downstream takes the model.
"""

from keepvip_agent.spec.errors import SpecError
from keepvip_agent.spec.load import load_documents, load_file, parse_virtualip
from keepvip_agent.spec.model import (
    Check,
    Metadata,
    NodePriority,
    OnFailure,
    VirtualIP,
    VirtualIPSpec,
)

__all__ = [
    "Check",
    "Metadata",
    "NodePriority",
    "OnFailure",
    "SpecError",
    "VirtualIP",
    "VirtualIPSpec",
    "load_documents",
    "load_file",
    "parse_virtualip",
]
