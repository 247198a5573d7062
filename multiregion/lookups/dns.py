"""A small DNS client over UDP (TCP when the answer is truncated): one question, the sections parsed.

Enough of RFC 1035 to ask a resolver or a zone's own name servers for NS, A, AAAA and SOA records and read
the answer, authority and additional sections (a referral from a parent zone carries the delegation in
its authority section). Names are compared in lower case without the final dot. Nothing here caches.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import struct
import time
from dataclasses import dataclass

from multiregion.names import dns_name as normal

A, NS, CNAME, SOA, AAAA, OPT = 1, 2, 5, 6, 28, 41
TYPES = {"A": A, "NS": NS, "CNAME": CNAME, "SOA": SOA, "AAAA": AAAA}
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
IN = 1
DNS_PORT = 53
UDP_PAYLOAD = 1232  # the EDNS0 size DNS operators agreed on (DNS flag day 2020): no IP fragmentation
RESOLVER_ENV = "MULTIREGION_DNS_RESOLVER"
_MAX_POINTERS = 64  # a name with more compression jumps is a loop
_MAX_NAME = 255  # octets of a name on the wire (RFC 1035, 2.3.4)


class DnsError(Exception):
    """No usable answer: a timeout, a refused connection, or a malformed reply."""


@dataclass(frozen=True)
class Server:
    address: str
    port: int = DNS_PORT

    def __str__(self) -> str:
        return self.address if self.port == DNS_PORT else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Record:
    name: str
    rtype: int
    ttl: int
    data: str  # a name (NS, CNAME; SOA: the primary server), an address (A, AAAA), else hex


@dataclass(frozen=True)
class Reply:
    rcode: int
    authoritative: bool
    truncated: bool
    answers: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]

    @property
    def rcode_name(self) -> str:
        return RCODES.get(self.rcode, str(self.rcode))

    def names(self, section: tuple[Record, ...], rtype: int, owner: str) -> list[str]:
        """The data of `rtype` records of `owner` in `section` (NS targets, addresses), in order."""
        wanted = normal(owner)
        return [r.data for r in section if r.rtype == rtype and r.name == wanted]


def system_resolver() -> Server:
    """The resolver to ask: MULTIREGION_DNS_RESOLVER ("address" or "address:port", "[v6]:port"), else the
    first nameserver of /etc/resolv.conf, else a resolver on this machine."""
    configured = os.environ.get(RESOLVER_ENV, "").strip()
    if configured:
        return parse_server(configured)
    try:
        with open("/etc/resolv.conf", encoding="utf-8") as conf:
            for line in conf:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return Server(parts[1].split("%")[0])
    except OSError:
        pass
    return Server("127.0.0.1")


def parse_server(text: str) -> Server:
    """An address with an optional port; DnsError for anything else (a host name is not resolved here)."""
    text = text.strip()
    host, port = text, str(DNS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise DnsError(f"{RESOLVER_ENV}={text!r} is not address[:port] (e.g. [::1]:53)")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise DnsError(f"{RESOLVER_ENV}={text!r} is not an IP address with an optional port "
                       "(e.g. 127.0.0.1:5353 or [::1]:53)") from None
    if not 0 < number < 65536:
        raise DnsError(f"{RESOLVER_ENV}={text!r}: port {number} is out of range")
    return Server(host, number)


# ------------------------------------------------------------------------------------------------ asking


def ask(server: Server, name: str, rtype: int, recursion: bool = True, timeout: float = 2.0,
          tries: int = 2) -> Reply:
    """Ask `server` one question; DnsError when it does not answer in `tries` x `timeout` seconds."""
    last: Exception | None = None
    for _ in range(tries):
        ident = secrets.randbelow(0x10000)
        message = encode_query(ident, name, rtype, recursion)
        try:
            data = _udp(server, message, ident, timeout)
            # A truncated reply may end mid-record: ask again over TCP before reading its sections.
            return _tcp(server, message, ident, timeout) if _truncated(data) else decode_reply(data)
        except (OSError, DnsError, ValueError) as exc:
            last = exc
    raise DnsError(f"{server} did not answer {name} {_type_name(rtype)}: {last}")


def _truncated(data: bytes) -> bool:
    return len(data) >= 4 and bool(data[2] & 0x02)  # TC, in the header's flags


def _udp(server: Server, message: bytes, ident: int, timeout: float) -> bytes:
    family = socket.AF_INET6 if ipaddress.ip_address(server.address).version == 6 else socket.AF_INET
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((server.address, server.port))
        sock.send(message)
        while True:  # a stray datagram (an old reply) is not ours: wait for the one with our id, until the deadline
            left = deadline - time.monotonic()
            if left <= 0:
                raise DnsError(f"no reply within {timeout:g}s")
            sock.settimeout(left)
            data = sock.recv(65535)
            if len(data) >= 2 and struct.unpack("!H", data[:2])[0] == ident:
                return data


def _tcp(server: Server, message: bytes, ident: int, timeout: float) -> Reply:
    with socket.create_connection((server.address, server.port), timeout) as sock:
        sock.sendall(struct.pack("!H", len(message)) + message)
        size = struct.unpack("!H", _read(sock, 2))[0]
        if size < 12:
            raise DnsError(f"a TCP reply of {size} bytes, shorter than a DNS header")
        data = _read(sock, size)
    if struct.unpack("!H", data[:2])[0] != ident:
        raise DnsError("a TCP reply to another query")
    return decode_reply(data)


def _read(sock: socket.socket, size: int) -> bytes:
    chunks = b""
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise DnsError("the connection closed mid-reply")
        chunks += chunk
    return chunks


def _type_name(rtype: int) -> str:
    return next((k for k, v in TYPES.items() if v == rtype), str(rtype))


# ---------------------------------------------------------------------------------------------- encoding


def encode_name(name: str) -> bytes:
    out = b""
    for label in normal(name).split(".") if normal(name) else []:
        raw = label.encode("idna") if not label.isascii() else label.encode()
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad DNS label in {name!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def encode_query(ident: int, name: str, rtype: int, recursion: bool = True) -> bytes:
    flags = 0x0100 if recursion else 0  # RD
    header = struct.pack("!HHHHHH", ident, flags, 1, 0, 0, 1)
    question = encode_name(name) + struct.pack("!HH", rtype, IN)
    # EDNS0 OPT pseudo-record: root name, type OPT, class = the UDP payload we accept, no flags, no data.
    opt = b"\x00" + struct.pack("!HHIH", OPT, UDP_PAYLOAD, 0, 0)
    return header + question + opt


def decode_reply(data: bytes) -> Reply:
    try:
        ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
        if not flags & 0x8000:
            raise DnsError("not a reply (QR bit clear)")
        offset = 12
        for _ in range(qd):
            _, offset = decode_name(data, offset)
            offset += 4
        sections: list[tuple[Record, ...]] = []
        for count in (an, ns, ar):
            records: list[Record] = []
            for _ in range(count):
                record, offset = _decode_record(data, offset)
                if record.rtype != OPT:
                    records.append(record)
            sections.append(tuple(records))
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise DnsError(f"malformed reply: {exc}") from None
    return Reply(flags & 0x000F, bool(flags & 0x0400), bool(flags & 0x0200), *sections)


def decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` (following compression pointers) and the offset just past it."""
    labels: list[str] = []
    end: int | None = None
    jumps = size = 0
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DnsError("a compression loop in a name")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length == 0:
            return ".".join(labels).lower(), end if end is not None else offset + 1
        size += 1 + length
        if size > _MAX_NAME:
            raise DnsError(f"a name longer than {_MAX_NAME} octets")
        label = data[offset + 1:offset + 1 + length]
        if len(label) != length:
            raise DnsError("a name runs past the end of the reply")
        labels.append(label.decode("ascii"))
        offset += 1 + length


def _decode_record(data: bytes, offset: int) -> tuple[Record, int]:
    name, offset = decode_name(data, offset)
    rtype, _, ttl, size = struct.unpack("!HHIH", data[offset:offset + 10])
    start = offset + 10
    raw = data[start:start + size]
    if len(raw) != size:
        raise DnsError("a record runs past the end of the reply")
    if rtype in (NS, CNAME, SOA):
        value = decode_name(data, start)[0]
    elif rtype == A and size == 4:
        value = str(ipaddress.IPv4Address(raw))
    elif rtype == AAAA and size == 16:
        value = str(ipaddress.IPv6Address(raw))
    else:
        value = raw.hex()
    return Record(name, rtype, ttl, value), start + size
