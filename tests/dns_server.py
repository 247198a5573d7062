"""A tiny DNS server on 127.0.0.1 for tests: answers from a table, and refers delegated zones as a parent does.

It plays the resolver (a query with RD set) and every authoritative server (RD clear) at once, on one UDP
port. Written apart from multiregion/lookups/dns.py (no name compression here), so that a bug in the
client's encoding or decoding is not mirrored by the server.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "AAAA": 28}
NAMES = {v: k for k, v in TYPES.items()}


def _name(name: str) -> bytes:
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\x00"


def _rdata(rtype: str, value: str) -> bytes:
    if rtype == "A":
        return socket.inet_aton(value)
    if rtype in ("NS", "CNAME"):
        return _name(value)
    if rtype == "SOA":
        return _name(value) + _name(f"hostmaster.{value}") + struct.pack("!IIIII", 1, 7200, 900, 1209600, 86400)
    raise ValueError(rtype)


def _record(owner: str, rtype: str, value: str, ttl: int = 300) -> bytes:
    data = _rdata(rtype, value)
    return _name(owner) + struct.pack("!HHIH", TYPES[rtype], 1, ttl, len(data)) + data


@dataclass
class TinyDns:
    """records: (name, type) -> values. delegations: zone -> name servers, answered to a query without
    recursion as a referral from the parent (NOERROR, not authoritative, NS in the authority section)."""

    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    delegations: dict[str, list[str]] = field(default_factory=dict)
    silent: bool = False  # answer nothing (a resolver that cannot be reached)
    lame: set[str] = field(default_factory=set)  # names asked without recursion answered NOERROR, no AA, nothing
    queries: list[tuple[str, str, bool]] = field(default_factory=list)  # (name, type, recursion desired)
    port: int = 0

    def add(self, name: str, rtype: str, *values: str) -> TinyDns:
        self.records.setdefault((name.rstrip(".").lower(), rtype), []).extend(values)
        return self

    def answer(self, packet: bytes) -> bytes | None:
        ident, flags = struct.unpack("!HH", packet[:4])
        offset, labels = 12, []
        while packet[offset]:
            size = packet[offset]
            labels.append(packet[offset + 1:offset + 1 + size].decode().lower())
            offset += 1 + size
        qtype = struct.unpack("!H", packet[offset + 1:offset + 3])[0]
        question = packet[12:offset + 5]
        name, rtype, recursion = ".".join(labels), NAMES.get(qtype, str(qtype)), bool(flags & 0x0100)
        self.queries.append((name, rtype, recursion))
        if self.silent:
            return None
        answers, authority, rcode, authoritative = self._lookup(name, rtype, recursion)
        reply_flags = 0x8000 | (flags & 0x0100) | 0x0080 | (0x0400 if authoritative else 0) | rcode
        header = struct.pack("!HHHHHH", ident, reply_flags, 1, len(answers), len(authority), 0)
        return header + question + b"".join(answers) + b"".join(authority)

    def _lookup(self, name: str, rtype: str, recursion: bool) -> tuple[list[bytes], list[bytes], int, bool]:
        if not recursion and name in self.lame:
            return [], [], 0, False  # a lame server: not authoritative, no referral
        if not recursion and name in self.delegations:
            return [], [_record(name, "NS", ns) for ns in self.delegations[name]], 0, False
        values = self.records.get((name, rtype))
        if values:
            return [_record(name, rtype, v) for v in values], [], 0, True
        if recursion and rtype == "NS" and name in self.delegations:
            return [_record(name, "NS", ns) for ns in self.delegations[name]], [], 0, False
        known = any(n == name or n.endswith("." + name) for n, _ in self.records) or name in self.delegations
        return [], [], 0 if known else 3, True  # NODATA, or NXDOMAIN

    @contextmanager
    def serving(self) -> Iterator[TinyDns]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.1)
        self.port = sock.getsockname()[1]
        stop = threading.Event()

        def serve() -> None:
            while not stop.is_set():
                try:
                    packet, client = sock.recvfrom(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                reply = self.answer(packet)
                if reply is not None:
                    sock.sendto(reply, client)

        thread = threading.Thread(target=serve, name="tiny-dns", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(2)
            sock.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
