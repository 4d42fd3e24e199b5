"""Tests of a daemon across its process boundary: its command line, and its socket."""

def daemon_cli_test(name, device, backend_type, args = [], needs_proc = False):
    """daemon_cli_test.sh on //vhost-user-<device>; `args` are what it needs to start."""
    daemon = "//vhost-user-%s:vhost-user-%s" % (device, device)
    native.sh_test(
        name = name,
        srcs = ["daemon_cli_test.sh"],
        args = ["$(location %s)" % daemon, backend_type] + args,
        data = [daemon],
        env = {"NEEDS_PROC": "1" if needs_proc else "0"},
        tags = [
            "local",
            "no-asan",  # the chroot check needs the static binary
        ],
    )

def daemon_integration_test(name, device, extra_deps = []):
    """<name>.cc driving //vhost-user-<device> through tests/frontend."""
    native.cc_test(
        name = name,
        size = "medium",
        srcs = [name + ".cc"],
        data = ["//vhost-user-%s:vhost-user-%s" % (device, device)],
        tags = ["local"],
        deps = [
            ":runfiles",
            "//common:message",
            "//common:status",
            "//common/testing",
            "//tests/frontend",
            "@system//:gtest_main",
        ] + extra_deps,
    )
