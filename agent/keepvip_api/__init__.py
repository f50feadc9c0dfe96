"""keepvip's API: the VirtualIP and VirtualIPPool models, their status, shared names and the CRD.

The one package both sides import (the agent daemon, the operator, the user
tools); it imports none of them, so the API is read the same way everywhere.

Raw documents enter through :func:`load_documents` (a YAML file),
:func:`from_api_object` (an object read from the API) or :func:`parse_virtualip`
(one mapping); everything downstream takes the model.
"""

__version__ = "0.1.0"

from keepvip_api.errors import SpecError
from keepvip_api.load import (
    from_api_object,
    load_documents,
    load_file,
    parse_virtualip,
    pool_from_api_object,
)
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
    "from_api_object",
    "load_documents",
    "load_file",
    "parse_virtualip",
    "pool_from_api_object",
]
