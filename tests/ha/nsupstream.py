"""Run tests.support.upstream.Upstream inside a namespace; print its port."""

import json
import sys
import time

from tests.support.upstream import Upstream


def main():
    server = Upstream(json.loads(sys.argv[1])).run()
    print(server.port, flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
