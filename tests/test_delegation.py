"""Is the hosted zone delegated? The DNS client and the check, against a tiny DNS server on 127.0.0.1."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from multiregion.lookups import dns, zones
from multiregion.lookups.dns import Server
from multiregion.lookups.zones import DELEGATED, UNDELEGATED, UNKNOWN, check_delegation
from tests.conftest import Cli
from tests.dns_server import TinyDns

ZONE = "multiregion-demo.example.com"
ROUTE53 = ("ns-2048.awsdns-64.com", "ns-2049.awsdns-65.net", "ns-2050.awsdns-66.org", "ns-2051.awsdns-67.co.uk")


def world() -> TinyDns:
    """example.com served by one parent server (this very server); Route 53's servers have addresses."""
    tiny = TinyDns().add("example.com", "NS", "ns1.parent.test").add("ns1.parent.test", "A", "127.0.0.1")
    tiny.add("com", "NS", "a.gtld.test").add("a.gtld.test", "A", "127.0.0.1")
    for i, ns in enumerate(ROUTE53):
        tiny.add(ns, "A", f"192.0.2.{i + 1}")
    return tiny


@pytest.fixture
def tiny() -> Iterator[TinyDns]:
    with world().serving() as server:
        yield server


def check(tiny: TinyDns, zone: str = ZONE, timeout: float = 1.0) -> zones.Delegation:
    return check_delegation(zone, ROUTE53, resolver=Server("127.0.0.1", tiny.port), authority_port=tiny.port,
                            timeout=timeout)


def test_a_zone_its_parent_delegates_to_route53_passes(tiny: TinyDns) -> None:
    tiny.delegations[ZONE] = [f"{ns}." for ns in ROUTE53]
    found = check(tiny)
    assert found.verdict == DELEGATED and found.parent == "example.com"
    assert set(found.delegated_to) == set(ROUTE53)
    # The parent was asked without recursion, as a resolver on its way down asks it.
    assert (ZONE, "NS", False) in tiny.queries


def test_a_zone_the_parent_does_not_know_is_undelegated(tiny: TinyDns) -> None:
    found = check(tiny)
    assert found.verdict == UNDELEGATED and found.delegated_to == ()
    assert "the parent zone example.com (ns1.parent.test) has no such name as" in found.detail


def test_a_zone_delegated_elsewhere_names_where(tiny: TinyDns) -> None:
    tiny.delegations[ZONE] = ["ns1.registrar-parking.test"]
    found = check(tiny)
    assert found.verdict == UNDELEGATED and found.delegated_to == ("ns1.registrar-parking.test",)
    error = zones.undelegated_error("certificates", "eu-west-1", found)
    assert error.stage == "certificates" and error.region == "eu-west-1"
    assert "delegates multiregion-demo.example.com to ns1.registrar-parking.test" in error.detail
    assert ", ".join(ROUTE53) in error.hint and "NS record in the parent zone example.com" in error.hint


def test_the_delegation_of_an_old_zone_of_the_same_name_is_undelegated(tiny: TinyDns) -> None:
    # A zone deleted and created again gets other Route 53 name servers: the registrar still has the old ones.
    tiny.delegations[ZONE] = ["ns-1.awsdns-01.com", "ns-2.awsdns-02.net"]
    tiny.add("ns-1.awsdns-01.com", "A", "198.51.100.1").add("ns-2.awsdns-02.net", "A", "198.51.100.2")
    assert check(tiny).verdict == UNDELEGATED


def test_white_label_name_servers_with_route53_s_addresses_pass(tiny: TinyDns) -> None:
    tiny.delegations[ZONE] = ["ns1.example.com", "ns2.example.com"]
    tiny.add("ns1.example.com", "A", "192.0.2.1").add("ns2.example.com", "A", "192.0.2.3")
    assert check(tiny).verdict == DELEGATED


def test_a_zone_under_a_tld_is_asked_of_the_tld(tiny: TinyDns) -> None:
    tiny.delegations["example.com"] = list(ROUTE53)
    found = check(tiny, "example.com")
    assert found.verdict == DELEGATED and found.parent == "com"


def test_when_the_parent_s_servers_do_not_answer_the_resolver_s_view_stands_in() -> None:
    with world().serving() as tiny:
        tiny.records[(ZONE, "NS")] = list(ROUTE53)  # what the resolver answers, having asked the zone itself
        closed = _closed_port()
        found = check_delegation(ZONE, ROUTE53, resolver=Server("127.0.0.1", tiny.port), authority_port=closed,
                                 timeout=0.2)
    assert found.verdict == DELEGATED and f"resolver 127.0.0.1:{tiny.port} answers" in found.detail


def test_a_lame_parent_server_is_passed_over_not_taken_for_no_delegation(tiny: TinyDns) -> None:
    # NOERROR without the AA bit and without a referral: this server does not serve the parent zone.
    tiny.lame.add(ZONE)
    tiny.records[(ZONE, "NS")] = list(ROUTE53)  # what the resolver answers, having found the real parent
    found = check(tiny)
    assert found.verdict == DELEGATED and "answers" in found.detail and "delegates it to no" not in found.detail


def test_a_resolver_that_does_not_answer_is_unknown_not_undelegated() -> None:
    with world().serving() as tiny:
        tiny.silent = True
        started = time.monotonic()
        found = check(tiny, timeout=0.2)
    assert found.verdict == UNKNOWN and "could not be checked" in found.detail
    assert time.monotonic() - started < 3


# ----------------------------------------------------------------------------------------------- the client


def test_a_reply_with_compressed_names_is_decoded() -> None:
    # example.com NS -> ns1.example.com (the target points back into the question's name).
    question = b"\x07example\x03com\x00" + struct.pack("!HH", dns.NS, 1)
    target = b"\x03ns1\xc0\x0c"  # "ns1" + a pointer to offset 12 (example.com)
    answer = b"\xc0\x0c" + struct.pack("!HHIH", dns.NS, 1, 300, len(target)) + target
    glue = b"\x03ns1\xc0\x0c" + struct.pack("!HHIH", dns.A, 1, 300, 4) + bytes([192, 0, 2, 7])
    packet = struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 1) + question + answer + glue
    reply = dns.decode_reply(packet)
    assert reply.rcode == dns.NOERROR and not reply.authoritative
    assert reply.names(reply.answers, dns.NS, "example.com.") == ["ns1.example.com"]
    assert reply.names(reply.additional, dns.A, "NS1.example.com") == ["192.0.2.7"]


def test_a_compression_loop_is_refused() -> None:
    packet = struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)
    with pytest.raises(dns.DnsError, match="loop"):
        dns.decode_reply(packet)


def test_a_query_is_one_question_with_edns0() -> None:
    message = dns.encode_query(0x1234, "Example.COM.", dns.NS, recursion=False)
    ident, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", message[:12])
    assert (ident, flags, qd, an, ns, ar) == (0x1234, 0, 1, 0, 0, 1)
    assert message[12:25] == b"\x07example\x03com\x00"


def test_the_resolver_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(dns.RESOLVER_ENV, "127.0.0.1:5353")
    assert dns.system_resolver() == Server("127.0.0.1", 5353)
    assert dns.parse_server("[::1]:53") == Server("::1", 53)
    assert str(dns.parse_server("192.0.2.53")) == "192.0.2.53"


@pytest.mark.parametrize("bad", ["localhost", "1.2.3.4:", "[::1]x", "127.0.0.1:70000", "dns.example:53"])
def test_a_resolver_setting_that_is_not_an_address_is_a_dns_error_naming_it(bad: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(dns.DnsError, match=dns.RESOLVER_ENV):
        dns.parse_server(bad)
    monkeypatch.setenv(dns.RESOLVER_ENV, bad)  # the check then says it could not check, and why
    found = check_delegation(ZONE, ROUTE53)
    assert found.verdict == UNKNOWN and dns.RESOLVER_ENV in found.detail


def test_a_name_longer_than_255_octets_is_malformed_but_many_labels_are_not_a_loop() -> None:
    def packet(labels: int) -> bytes:
        name = b"".join(b"\x01a" for _ in range(labels)) + b"\x00"
        return struct.pack("!HHHHHH", 7, 0x8180, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)

    dns.decode_reply(packet(100))  # 100 labels, 201 octets: a name, not a compression loop
    with pytest.raises(dns.DnsError, match="longer than 255"):
        dns.decode_reply(packet(130))


def test_a_truncated_reply_is_asked_again_over_tcp_and_a_short_tcp_reply_is_a_dns_error() -> None:
    question = b"\x07example\x03com\x00" + struct.pack("!HH", dns.NS, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))  # one port for both, as a DNS server has (UDP ports are rarely taken)

        def serve() -> None:
            query, client = udp.recvfrom(512)
            # TC set, and the answer count promises a record the datagram does not hold
            udp.sendto(query[:2] + struct.pack("!HHHHH", 0x8380, 1, 1, 0, 0) + question, client)
            conn, _ = tcp.accept()
            with conn:
                conn.recv(512)
                conn.sendall(struct.pack("!H", 3) + b"abc")  # a length shorter than any DNS header

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with pytest.raises(dns.DnsError, match="shorter than a DNS header"):
            dns.ask(Server("127.0.0.1", port), "example.com", dns.NS, timeout=2.0, tries=1)
        thread.join(5)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------------- up on "AWS"


@pytest.fixture
def on_aws(write_config: Any, sandbox: Any, tiny: TinyDns, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """The CLI with `endpoint: aws`, as against a real account, its AWS calls sent to the sandbox
    (AWS_ENDPOINT_URL) and its DNS questions to the tiny server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.url)
    monkeypatch.setenv(dns.RESOLVER_ENV, tiny.address)
    monkeypatch.setattr(zones, "AUTHORITY_PORT", tiny.port)
    return Cli(write_config(endpoint="aws"))


def zone_name_servers(aws: Any) -> list[str]:
    r53 = aws("route53")
    zone = r53.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"][0]
    return [n.rstrip(".") for n in r53.get_hosted_zone(Id=zone["Id"])["DelegationSet"]["NameServers"]]


def test_an_undelegated_zone_stops_up_before_the_certificate_wait(
        on_aws: Cli, aws: Any, tiny: TinyDns, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sandbox's ACM reads the record from its own zone; AWS's would find nothing while undelegated.
    monkeypatch.setattr(sandbox.options, "acm_validation_delay", 3600.0)
    started = time.monotonic()
    code, doc = on_aws.json("up", "--only", "certificates", "--yes")
    assert code == 1
    errors = {(e["stage"], e["region"]): e for e in doc["errors"]}
    assert set(errors) == {("certificates", "eu-west-1"), ("certificates", "us-east-1")}
    error = errors[("certificates", "eu-west-1")]
    assert "not delegated" in error["error"] and "has no such name as multiregion-demo.example.com" in error["error"]
    name_servers = zone_name_servers(aws)  # the zone `up` created (domain.create_zone: true)
    assert f"to: {', '.join(name_servers)}" in error["hint"]
    assert time.monotonic() - started < 60  # told at once, not after the 75-minute wait
    # The record is there already: ACM validates by itself once the registrar delegates the zone.
    assert (ZONE, "NS", False) in tiny.queries
    certificate = aws("acm", "eu-west-1").list_certificates()["CertificateSummaryList"]
    assert [c["Status"] for c in certificate] == ["PENDING_VALIDATION"]

    # A second run, still undelegated: the waiting certificate is checked again, before any wait.
    code, doc = on_aws.json("up", "--only", "certificates", "--yes")
    assert code == 1 and {e["stage"] for e in doc["errors"]} == {"certificates"}

    # Delegated at the parent: `up` waits for the certificate, which is issued.
    tiny.delegations[ZONE] = name_servers
    monkeypatch.setattr(sandbox.options, "acm_validation_delay", 0.3)
    code, doc = on_aws.json("up", "--only", "certificates", "--yes")
    assert code == 0, doc["errors"]
    assert [c["Status"] for c in aws("acm", "eu-west-1").list_certificates()["CertificateSummaryList"]] == ["ISSUED"]


def test_a_local_endpoint_never_asks_the_dns(cli: Cli, tiny: TinyDns, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sandbox's zones exist only inside it: no public parent delegates to them, and it validates itself.
    monkeypatch.setenv(dns.RESOLVER_ENV, tiny.address)
    code, doc = cli.json("up", "--only", "certificates")
    assert code == 0, doc["errors"]
    assert tiny.queries == []
