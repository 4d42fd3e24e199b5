"""A benchmark driving one daemon through tests/frontend (prints figures, asserts nothing)."""

def bench_binary(name, device):
    """<name>.cc with //vhost-user-<device> in its runfiles."""
    native.cc_binary(
        name = name,
        testonly = True,
        srcs = [
            "bench_util.h",
            name + ".cc",
        ],
        data = ["//vhost-user-%s:vhost-user-%s" % (device, device)],
        deps = [
            "//common/base",
            "//tests/frontend",
            "//tests/integration:runfiles",
            "@system//:absl",
            "@system//:gflags",
        ],
    )
