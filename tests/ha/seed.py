"""
Store HA settings in a node's database the way PUT /api/cluster/ha/config
does (same validation, node_state, sealed password), before its daemon
starts; the daemon publishes config.json at start.  Also lets the test
LAN's addresses query DNS (the DNS settings entity).

    python -m tests.ha.seed DATA_DIR HTTP_INTERFACE HTTP_PORT '{"enabled": true, ...}'
"""

import json
import os
import sys

from twisted.internet import defer, task

from sentinel.config import Config
from sentinel.crypto import SecretBox, load_or_create_key
from sentinel.ha.state import HaState
from sentinel.startup import prepare_data_dir
from sentinel.store import Store


# The test LAN (198.18.0.0/15) is not a private range, which Sentinel
# answers by default: allow it, as a user with such a LAN would.
DNS_SETTINGS = {"allowed_networks": ["198.18.0.0/15"]}


async def seed(reactor, data_dir, interface, port, body):
    prepare_data_dir(data_dir)
    config = Config(data_dir=data_dir, http_interface=interface, http_port=port,
                    database="sqlite:///" + os.path.join(data_dir, "sentinel.db"),
                    role_file=os.path.join(data_dir, "sentinel", "cluster_role"))
    store = Store.from_url(config.database, reactor)
    await store.start()
    try:
        box = SecretBox(load_or_create_key(config.key_file))
        await HaState(store, box, config, reactor).save(body)
        await store.put("setting", "dns", DNS_SETTINGS)
    finally:
        await store.stop()


def main(reactor):
    data_dir, interface, port, body = sys.argv[1:5]
    return defer.ensureDeferred(seed(reactor, data_dir, interface, int(port), json.loads(body)))


if __name__ == "__main__":
    task.react(main)
