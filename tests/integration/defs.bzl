"""The engine's own integration test (devices register theirs with //:device.bzl)."""

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
            "//common/vhost_user",
            "//common/base",
            "//common/testing",
            "//tests/frontend",
            "@system//:gtest_main",
        ] + extra_deps,
    )
