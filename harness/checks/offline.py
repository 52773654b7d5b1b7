"""Signs, in an installer's output or a server's logs, that a release tried the network and
carried on when it failed: the substitute for a packet capture where the provider has none
(tart's Softnet), and a second opinion where it has one."""

from __future__ import annotations

import re
from collections.abc import Mapping

# What resolvers, sockets, curl, pip and urllib print when a name or an address cannot be reached.
NETWORK_FAILURES = re.compile(
    r"Temporary failure in name resolution|Name or service not known|nodename nor servname provided"
    r"|Could not resolve host|getaddrinfo failed|Failed to establish a new connection"
    r"|Network is unreachable|No route to host|Max retries exceeded with url"
    r"|Could not fetch URL|Retrying \(Retry\(total=",
    re.IGNORECASE,
)
MAX_LINE = 200


def network_failures(texts: Mapping[str, str]) -> list[str]:
    """``source: line`` for every line of ``texts`` (source -> text) that shows a failed network attempt."""
    found = []
    for source, text in texts.items():
        for line in text.splitlines():
            if NETWORK_FAILURES.search(line):
                found.append(f"{source}: {line.strip()[:MAX_LINE]}")
    return found
