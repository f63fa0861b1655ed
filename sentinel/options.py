"""
Command-line options and their environment variables (options win).

Every option is one row in L{OPTIONS}: its name, environment variable,
default, parser and help.  L{SentinelOptions} turns the rows into a twistd
C{usage.Options} subclass; L{build_config} is the pure part (argv values +
environment -> L{Config}) and is what the tests exercise.
"""

import ipaddress
import os
import re
import sys

import attr
from twisted.python import usage

from sentinel.config import Config, ConfigError
from sentinel.dns.upstreamspec import (
    DEFAULT_UPSTREAMS,
    UpstreamSpecError,
    parse_upstream,
)

TRUE_WORDS = frozenset(["1", "true", "yes", "on"])
FALSE_WORDS = frozenset(["0", "false", "no", "off"])


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{text!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def parse_port(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"{text!r} is not a port number (1-65535)")
    return int(text)


def parse_address(text: str) -> str:
    text = text.strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address") from None


def parse_addresses(text: str) -> tuple:
    return tuple(parse_address(part) for part in text.split(",") if part.strip())


def parse_upstreams(values) -> tuple:
    specs = []
    for value in values:
        for part in value.split(","):
            if part.strip():
                try:
                    specs.append(parse_upstream(part).text)
                except UpstreamSpecError as e:
                    raise ValueError(str(e)) from None
    if not specs:
        raise ValueError("at least one upstream is required")
    return tuple(specs)


_HOST_ENTRY = re.compile(r"^(\*|\.?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,62}))*\.?)$")


def parse_http_hosts(text: str) -> tuple:
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    for name in names:
        if not _HOST_ENTRY.match(name):
            raise ValueError(f"{name!r} is not a host name (or .domain, or *)")
    return names


def parse_database(text: str) -> str:
    text = text.strip()
    if text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
        return text
    if text.startswith(("postgresql://", "postgres://")):
        return text
    raise ValueError(
        f"{text!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DBNAME"
    )


def parse_seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not 1 <= value <= 3600:
        raise ValueError(f"{text!r}: use 1 to 3600 seconds")
    return value


def parse_path(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return os.path.abspath(text.strip())


@attr.s(frozen=True, auto_attribs=True)
class Opt:
    name: str  # command-line name, without "--"
    env: str  # environment variable
    default: object  # a string to parse, a callable(partial config) or None
    parse: object  # str -> value (or list[str] -> value when repeatable)
    help: str
    field: str  # Config attribute
    repeatable: bool = False
    flag: bool = False


OPTIONS = (
    Opt("data-dir", "SENTINEL_DATA_DIR", "/var/lib/sentinel", parse_path,
        "Directory for the database, key file and cluster files.", "data_dir"),
    Opt("dns-port", "SENTINEL_DNS_PORT", "53", parse_port,
        "DNS port (UDP and TCP).", "dns_port"),
    Opt("dns-interface", "SENTINEL_DNS_INTERFACE", "", parse_addresses,
        "Addresses to serve DNS on, comma-separated (default: all, IPv4 and IPv6).",
        "dns_interfaces"),
    Opt("http-port", "SENTINEL_HTTP_PORT", "8080", parse_port,
        "Port of the admin API and web UI.", "http_port"),
    Opt("http-interface", "SENTINEL_HTTP_INTERFACE", "",
        lambda t: parse_address(t) if t.strip() else "",
        "Address of the admin API and web UI (default: all).", "http_interface"),
    Opt("http-hosts", "SENTINEL_HTTP_HOSTS", "", parse_http_hosts,
        "Extra host names the admin API and web UI answer to, comma-separated "
        "(.example.com: a whole domain; *: any). IP addresses, localhost, single-label "
        "names, .lan/.home/.home.arpa/.local/.internal names and this machine's "
        "name always work; other names get 421 (DNS rebinding protection).",
        "http_hosts"),
    Opt("database", "SENTINEL_DATABASE",
        lambda c: "sqlite:///" + os.path.join(c["data_dir"], "sentinel.db"),
        parse_database,
        "sqlite:///PATH (default: <data-dir>/sentinel.db) or postgresql://... (txpostgres).",
        "database"),
    Opt("upstream", "SENTINEL_UPSTREAMS", ",".join(DEFAULT_UPSTREAMS),
        parse_upstreams,
        "Upstream resolver, repeatable (env: comma-separated). IP[:port] is "
        "plain DNS; also tcp://, tls://NAME#IP, https://NAME/path#IP.",
        "upstreams", repeatable=True),
    Opt("role-file", "CLUSTER_ROLE_FILE",
        lambda c: os.path.join(c["data_dir"], "sentinel", "cluster_role"),
        parse_path,
        "Role override file written by keepalived (default: <data-dir>/sentinel/cluster_role).",
        "role_file"),
    Opt("sync-freshness", "SENTINEL_SYNC_FRESHNESS", "20", parse_seconds,
        "Seconds since its last successful sync within which a follower is ready "
        "(/api/cluster/ready).", "sync_freshness"),
    Opt("debug", "SENTINEL_DEBUG", "false", parse_bool,
        "Log debug messages.", "debug", flag=True),
)


def build_config(cli: dict, environ) -> Config:
    """
    Build the L{Config} from command-line values (option name -> string, or
    list of strings for repeatable options, or True for a given flag) and
    the environment.  Raises L{ConfigError} with a one-line message naming
    the option (and the variable, when the value came from there).
    """
    values = {}
    for opt in OPTIONS:
        given = cli.get(opt.name)
        source = f"--{opt.name}"
        if opt.flag and given:
            values[opt.field] = True
            continue
        if given in (None, [], False):
            if opt.env in environ:
                given = environ[opt.env]
                source = f"{opt.env} (--{opt.name})"
            elif callable(opt.default):
                values[opt.field] = opt.default(values)
                continue
            else:
                given = opt.default
        if opt.repeatable and isinstance(given, str):
            given = [given]
        try:
            values[opt.field] = opt.parse(given)
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
    return Config(**values)


def _describe(opt):
    default = "" if callable(opt.default) else f" [default: {opt.default or 'all'}]"
    return f"{opt.help} Env: {opt.env}.{default}"


class SentinelOptions(usage.Options):
    optParameters = [
        [o.name, None, None, _describe(o)] for o in OPTIONS if not o.flag and not o.repeatable
    ]
    optFlags = [[o.name, None, _describe(o)] for o in OPTIONS if o.flag]

    longdesc = (
        "Run the Sentinel DNS filtering server: DNS on --dns-port (UDP+TCP) and "
        "the admin API/web UI on --http-port. Every option can also be set "
        "through its environment variable; options win. Booleans accept "
        "true/false, 1/0, yes/no, on/off."
    )

    def __init__(self, environ=None):
        super().__init__()
        self._environ = os.environ if environ is None else environ
        for opt in OPTIONS:
            if opt.repeatable:
                self[opt.name] = []
        self.config = None

    def opt_upstream(self, value):
        """Upstream resolver, repeatable (env SENTINEL_UPSTREAMS, comma-separated).
        IP[:port] is plain DNS; also tcp://IP, tls://NAME#IP, https://NAME/path#IP.
        [default: Quad9 over TLS]"""
        self["upstream"].append(value)

    def postOptions(self):
        self.config = build_config(dict(self), self._environ)

    def parseOptions(self, options=None):
        try:
            super().parseOptions(options)
        except ConfigError as e:
            # One line, no usage dump, no traceback: this is a user mistake.
            sys.stderr.write(f"sentinel: error: {e}\n")
            raise SystemExit(2)
