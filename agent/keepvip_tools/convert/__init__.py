"""``keepvip convert``: keepalived configurations in, VirtualIP documents out, nothing lost silently.

keepalived checks little of its configuration and rewrites some of it on
the fly (a MASTER without a priority becomes the address owner, nopreempt
with state MASTER is cleared, authentication is ignored in VRRPv3). The
converter parses the files strictly, applies keepalived's rules exactly,
and writes VirtualIPs whose comments say where each value came from. What
it cannot express is reported with file and line, never dropped.

Stages, one module each: :mod:`~.lexer` and :mod:`~.parser` (syntax and
includes), :mod:`~.reader` and :mod:`~.keywords` (vocabulary),
:mod:`~.rules`, :mod:`~.resolve` and :mod:`~.checks` (keepalived's semantics),
:mod:`~.mapper` and :mod:`~.render` (documents), :mod:`~.report` (the
findings), :mod:`~.pipeline` (the whole path), :mod:`~.command` (the CLI).
"""

from keepvip_tools.convert.errors import ConvertError, Finding, Location, Severity
from keepvip_tools.convert.pipeline import Conversion, convert_files

__all__ = ["Conversion", "ConvertError", "Finding", "Location", "Severity", "convert_files"]
