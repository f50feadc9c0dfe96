"""keepvip's API: the VirtualIP and VirtualIPPool models, their status, shared names and the CRD.

The one package both sides import (the agent daemon, the operator, the user
tools); it imports none of them, so the API is read the same way everywhere.

Raw documents (a YAML file, an API object) enter through :func:`load_documents`
or :func:`parse_virtualip`; everything downstream takes the model.
"""

__version__ = "0.1.0"

from keepvip_api.errors import SpecError
from keepvip_api.load import load_documents, load_file, parse_virtualip
from keepvip_api.model import (
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
    "__version__",
    "load_documents",
    "load_file",
    "parse_virtualip",
]
