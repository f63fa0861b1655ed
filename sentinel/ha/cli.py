"""
``sentinel-keepalived``: the keepalived sidecar's command line.

    sentinel-keepalived run      # the sidecar (default); runs until SIGTERM
    sentinel-keepalived render   # print the keepalived.conf it would use (password masked)
    sentinel-keepalived check --url URL [--peers FILE] [--window S]

Options / environment (options win), shared with ``twistd sentinel``:
  --data-dir DIR      SENTINEL_DATA_DIR        [/var/lib/sentinel]
  --role-file PATH    CLUSTER_ROLE_FILE        [<data-dir>/sentinel/cluster_role]
  --runtime-dir DIR   SENTINEL_HA_RUNTIME_DIR  [/run/sentinel-keepalived]
  --keepalived PATH   SENTINEL_KEEPALIVED      [keepalived on PATH]
  --netinfo-interval S  SENTINEL_NETINFO_INTERVAL  [30]
"""

import os
import shutil
import sys

OPTIONS = (
    # name, env, default
    ("data-dir", "SENTINEL_DATA_DIR", "/var/lib/sentinel"),
    ("role-file", "CLUSTER_ROLE_FILE", None),
    ("runtime-dir", "SENTINEL_HA_RUNTIME_DIR", "/run/sentinel-keepalived"),
    ("keepalived", "SENTINEL_KEEPALIVED", "keepalived"),
    ("netinfo-interval", "SENTINEL_NETINFO_INTERVAL", "30"),
)


class UsageError(Exception):
    pass


class HelpRequested(Exception):
    pass


def parse(argv, environ):
    """-> (command, {option: value}) with defaults and environment applied."""
    argv = list(argv)
    command = "run"
    if argv and not argv[0].startswith("-"):
        command = argv.pop(0)
    if command == "check":
        return command, argv
    if command not in ("run", "render"):
        raise UsageError(f"unknown command {command!r} (use run, render or check)")
    names = {name for name, _, _ in OPTIONS}
    given = {}
    while argv:
        arg = argv.pop(0)
        name, eq, value = arg[2:].partition("=") if arg.startswith("--") else (arg, "", "")
        if name in ("help", "h", "-h"):
            raise HelpRequested()
        if name not in names:
            raise UsageError(f"unknown option {arg!r}")
        if not eq:
            if not argv:
                raise UsageError(f"--{name} needs a value")
            value = argv.pop(0)
        given[name] = value
    opts = {}
    for name, env, default in OPTIONS:
        value = given.get(name, environ.get(env, default))
        opts[name] = value
    if not opts["data-dir"] or not opts["data-dir"].strip():
        raise UsageError("--data-dir must not be empty")
    opts["data-dir"] = os.path.abspath(opts["data-dir"])
    if not opts["role-file"]:
        opts["role-file"] = os.path.join(opts["data-dir"], "sentinel", "cluster_role")
    opts["role-file"] = os.path.abspath(opts["role-file"])
    opts["runtime-dir"] = os.path.abspath(opts["runtime-dir"])
    try:
        opts["netinfo-interval"] = float(opts["netinfo-interval"])
        if not 1 <= opts["netinfo-interval"] <= 3600:
            raise ValueError
    except ValueError:
        raise UsageError("--netinfo-interval must be a number of seconds from 1 to 3600") \
            from None
    binary = opts["keepalived"]
    found = shutil.which(binary) if os.sep not in binary else binary
    opts["keepalived"] = os.path.abspath(found) if found else binary
    return command, opts


def check_command():
    """argv prefix keepalived runs for the readiness check (fast start-up)."""
    from sentinel.ha import check

    return (sys.executable, "-I", "-S", os.path.abspath(check.__file__))


def build(reactor, opts):
    from sentinel.ha.keepalived import Keepalived, Launcher
    from sentinel.ha.liveness import DaemonWatch
    from sentinel.ha.notify import FifoReader
    from sentinel.ha.layout import SidecarPaths
    from sentinel.ha.sidecar import Sidecar
    from sentinel.ha.vrrpwatch import RawVrrpReader

    paths = SidecarPaths(data_dir=opts["data-dir"], role_file=opts["role-file"],
                         runtime_dir=opts["runtime-dir"])
    keepalived = Keepalived(reactor, Launcher(reactor), opts["keepalived"], paths.runtime_dir)

    def run_command(argv):
        return run_output(reactor, (shutil.which(argv[0]) or argv[0],) + tuple(argv[1:]))

    return Sidecar(
        reactor, paths, keepalived,
        check_command=check_command(),
        run_command=run_command,
        make_watch=lambda host, port, cb: DaemonWatch(reactor, host, port, cb),
        make_fifo=lambda path, cb: FifoReader(path, cb, reactor),
        make_raw_reader=lambda cb: RawVrrpReader(cb, reactor),
        netinfo_interval=opts["netinfo-interval"],
    )


def run_output(reactor, argv, env=None):
    """Deferred(stdout bytes) of a command (stderr dropped); fails if it exits
    with a status or a signal.  Cancelling it kills the process (SIGKILL),
    so a caller's timeout leaves no hung process behind."""
    from twisted.internet import defer, error, protocol

    class Collect(protocol.ProcessProtocol):
        def __init__(self):
            self.out = []

        def outReceived(self, data):
            self.out.append(data)

        def processEnded(self, reason):
            if done.called:
                return
            if reason.check(error.ProcessDone):
                done.callback(b"".join(self.out))
            else:
                done.errback(RuntimeError(f"`{' '.join(argv)}` failed: "
                                          f"{reason.getErrorMessage()}"))

    def kill(_d):
        try:
            transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    done = defer.Deferred(kill)
    transport = reactor.spawnProcess(Collect(), argv[0], list(argv),
                                     env=dict(os.environ if env is None else env))
    return done


def render_command(opts, out):
    from sentinel.ha import files
    from sentinel.ha.render import RenderError, render
    from sentinel.ha.layout import ConfigProblem, SidecarPaths, load_config, render_paths

    paths = SidecarPaths(data_dir=opts["data-dir"], role_file=opts["role-file"],
                         runtime_dir=opts["runtime-dir"])
    try:
        loaded = load_config(files.read_bytes(paths.config_file) or b"", paths)
        if loaded is not None:
            settings, _password, daemon = loaded
            text = render(settings, "x" * 8,
                          render_paths(paths, check_command(), settings, daemon))
    except (files.FileFormatError, ConfigProblem) as e:
        out.write(f"error: {e}\n")
        return 1
    except RenderError as e:
        out.write(f"error: cannot render keepalived.conf: {e}\n")
        return 1
    if loaded is None:
        out.write("# HA is disabled (or not configured): keepalived stays stopped\n")
        return 0
    out.write(text.replace("auth_pass xxxxxxxx", "auth_pass <hidden>"))
    return 0


def run(opts):
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    sidecar = build(reactor, opts)
    reactor.callWhenRunning(sidecar.startService)
    reactor.addSystemEventTrigger("before", "shutdown", sidecar.stopService)
    reactor.run()
    return 0


def main(argv=None, environ=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        command, opts = parse(argv, os.environ if environ is None else environ)
    except HelpRequested:
        sys.stdout.write(__doc__.strip() + "\n")
        return 0
    except UsageError as e:
        sys.stderr.write(f"sentinel-keepalived: {e}\n")
        return 2
    if command == "check":
        from sentinel.ha import check

        return check.main(opts)
    if command == "render":
        return render_command(opts, sys.stdout)
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
