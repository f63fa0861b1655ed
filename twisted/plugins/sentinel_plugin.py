from twisted.application.service import ServiceMaker

sentinel = ServiceMaker(
    "Sentinel",
    "sentinel.tap",
    "DNS filtering server with leader/follower cluster sync (see --help)",
    "sentinel",
)
