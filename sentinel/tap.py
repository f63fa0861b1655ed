"""
twistd plugin entry point: options -> Config -> makeService.  Wiring only:
every component gets its dependencies here, explicitly.
"""

from twisted.application.service import MultiService

from sentinel.api.health import HealthApi
from sentinel.api.site import Gate, Site
from sentinel.crypto import KeyFileError, SecretBox, load_or_create_key
from sentinel.options import SentinelOptions as Options  # noqa: F401 (twistd)
from sentinel.secrets import Secrets
from sentinel.services import ListeningService, StoreService
from sentinel.startup import StartupError, fatal, prepare_data_dir
from sentinel.store import Store


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    try:
        return build(options.config, reactor)
    except (StartupError, KeyFileError) as e:
        fatal(str(e))


def build(config, reactor):
    prepare_data_dir(config.data_dir)
    box = SecretBox(load_or_create_key(config.key_file))
    store = Store.from_url(config.database, reactor)
    secrets = Secrets(store, box)  # noqa: F841 (used by the API areas)

    top = MultiService()
    StoreService(store).setServiceParent(top)

    health = HealthApi(store)
    gate = Gate(authenticators={}, guard=None)
    site = Site([health], gate)
    http = ListeningService(
        "HTTP", config.http_port, "tcp",
        lambda: reactor.listenTCP(
            config.http_port, site.site(), interface=config.http_interface or "::"
        ),
    )
    http.setName("http")
    http.setServiceParent(top)
    return top
