"""
The HA compose file (deploy/compose/docker-compose.ha.yml) turned into the
processes it would run, for the namespace tests (there is no Docker engine
here): each service's command (its ``command``, else its image's
Dockerfile ``CMD``) and environment (the image's ``ENV`` and the service's
``environment``), with the container paths mapped into a node's temporary
directory.  Nothing is added but the upstream DNS server (the default is a
public resolver, which tests never use).
"""

import os
import re
import shlex
import sys

import yaml

from tests.support.daemon import REPO_ROOT, TWISTD

HA_COMPOSE = os.path.join(REPO_ROOT, "deploy", "compose", "docker-compose.ha.yml")


def load(path=HA_COMPOSE):
    with open(path) as f:
        return yaml.safe_load(f)


def dockerfile(service, compose_path=HA_COMPOSE):
    build = service["build"]
    context = os.path.join(os.path.dirname(compose_path), build["context"])
    with open(os.path.join(context, build["dockerfile"])) as f:
        return f.read()


def image_cmd(text):
    """The exec-form CMD of a Dockerfile."""
    match = re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M)
    return yaml.safe_load(match.group(1))


def image_env(text):
    """ENV lines of a Dockerfile (KEY=VALUE form, continuation lines joined)."""
    env = {}
    joined = text.replace("\\\n", " ")
    for line in joined.splitlines():
        if line.startswith("ENV "):
            for item in shlex.split(line[4:]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def service_process(name, mapping, doc=None):
    """
    (argv, env) the container of service ``name`` runs, container paths
    replaced by ``mapping`` ({container path: host path}); every path in
    the environment must be mapped.
    """
    doc = doc or load()
    service = doc["services"][name]
    text = dockerfile(service)
    argv = list(service.get("command") or image_cmd(text))
    env = image_env(text)
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    for key, value in env.items():
        if value.startswith("/"):
            for container, host in sorted(mapping.items(), key=lambda kv: -len(kv[0])):
                if value == container or value.startswith(container + "/"):
                    env[key] = host + value[len(container):]
                    break
            else:
                raise AssertionError(f"{name}: {key}={value} is not a mapped path")
    return argv, env


def program(argv):
    """The compose command as this checkout runs it: the same programs."""
    if argv[0] == "twistd":
        return TWISTD + argv[1:]
    # A console script of this package: the one installed next to our Python.
    script = os.path.join(os.path.dirname(sys.executable), argv[0])
    if not os.path.exists(script):
        raise AssertionError(f"{argv[0]} is not installed next to {sys.executable}")
    return [sys.executable, script] + argv[1:]
