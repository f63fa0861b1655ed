"""
In-process DNS-over-TLS and DNS-over-HTTPS servers on loopback for
transport tests, with a throwaway CA made at test time.  They answer from
a tests.support.upstream.Upstream's zone (its answering logic, no sockets).
"""

import datetime
import ipaddress

import dns.message
import dns.rdatatype
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import ssl
from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int16StringReceiver
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_server(names=("dns.test",), ips=("127.0.0.1",)):
    """(trust_root, server_options): a CA and a leaf for ``names`` and ``ips``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Sentinel test CA"))
          .issuer_name(_name("Sentinel test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i))
                                                 for i in ips]
    leaf = (x509.CertificateBuilder().subject_name(_name(names[0] if names else "x"))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    trust = ssl.Certificate.loadPEM(ca.public_bytes(pem))
    server = ssl.PrivateCertificate.loadPEM(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()) + leaf.public_bytes(pem))
    return trust, server.options()


def answer_wire(upstream, wire):
    query = dns.message.from_wire(wire)
    upstream.queries.append(("tls", query.question[0].name.to_text().rstrip(".").lower(),
                             dns.rdatatype.to_text(query.question[0].rdtype)))
    return upstream._answer(query, upstream.mode).to_wire()


class _DotProtocol(Int16StringReceiver):
    def stringReceived(self, data):
        if self.factory.upstream.mode == "dead":
            return
        reply = answer_wire(self.factory.upstream, data)
        self.sendString(reply)


def listen_dot(reactor, upstream, options):
    factory = Factory.forProtocol(_DotProtocol)
    factory.upstream = upstream
    return reactor.listenSSL(0, factory, options, interface="127.0.0.1")


class _DohResource(Resource):
    isLeaf = True

    def __init__(self, upstream):
        super().__init__()
        self.upstream = upstream
        self.requests = []

    def render_POST(self, request):
        self.requests.append(request.requestHeaders)
        if self.upstream.mode == "endless":
            return self._endless(request)
        if request.getHeader(b"content-type") != b"application/dns-message":
            request.setResponseCode(415)
            return b""
        reply = answer_wire(self.upstream, request.content.read())
        request.setHeader(b"content-type", b"application/dns-message")
        return reply


    written = 0

    def _endless(self, request):
        """A chunked body that goes on until the client goes away."""
        from twisted.internet import reactor

        request.setHeader(b"content-type", b"application/dns-message")
        gone = []
        request.notifyFinish().addBoth(gone.append)

        def more():
            if not gone:
                request.write(b"\x00" * 16384)
                self.written += 16384
                reactor.callLater(0, more)

        more()
        return NOT_DONE_YET


def listen_doh(reactor, upstream, options):
    resource = _DohResource(upstream)
    root = Resource()
    root.putChild(b"dns-query", resource)
    port = reactor.listenSSL(0, Site(root), options, interface="127.0.0.1")
    return port, resource


