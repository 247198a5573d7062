"""The addresses of AWS endpoints in the sandbox: what an alias record answers, and which endpoint owns one.

Route 53 answers an alias A record with the IPv4 addresses of its target (AAAA: IPv6), not the target's
name. The sandbox has no real addresses for `d-xxxx.execute-api.{region}.amazonaws.com`, so it derives them
from the name: PER_NAME addresses from a SHA-256 of the lower-case name, in 198.18.0.0/15 (IPv4) and
2001:db8::/32 (IPv6). The first is reserved for benchmarking networks (RFC 2544) and the second for
documentation (RFC 3849): neither is ever a real client or internet address, and neither falls in a client
subnet of `multiregion.regions`. The same name always gets the same addresses, in every sandbox.

Both directions live here: `endpoint_addresses(name)` for the answer, `endpoint_at(address, names)` for a
client that connects to an answered address (the data plane's `X-Multiregion-Connect-To`). Two names can
in principle share an address (in IPv4 at most about 2k^2 in 131,070 for k names: 1 in 16,000 for two
regions); `endpoint_at` then names no endpoint rather than guess.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

IPV4 = ipaddress.ip_network("198.18.0.0/15")
IPV6 = ipaddress.ip_network("2001:db8::/32")
PER_NAME = 2  # Route 53 answers a regional API endpoint with several addresses; two is enough to show it


def endpoint_addresses(name: str, version: int = 4) -> list[str]:
    """The addresses the sandbox gives the endpoint `name` (version 4 or 6), always the same ones."""
    network = IPV4 if version == 4 else IPV6
    # Neither the network's first nor its last address: they read as the network itself.
    usable = network.num_addresses - 2
    key = name.strip().rstrip(".").lower()
    found: list[str] = []
    attempt = 0
    while len(found) < PER_NAME:
        digest = hashlib.sha256(f"{attempt}:{key}".encode()).digest()
        address = str(network.network_address + 1 + int.from_bytes(digest[:16], "big") % usable)
        if address not in found:
            found.append(address)
        attempt += 1
    return found


def endpoint_at(address: str, names: Iterable[str]) -> str | None:
    """The one name among `names` whose addresses include `address`; None for none, or for several."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    owners = {n.rstrip(".").lower() for n in names if str(parsed) in endpoint_addresses(n, parsed.version)}
    return owners.pop() if len(owners) == 1 else None


def is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True
