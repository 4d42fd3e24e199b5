"""A guest end-to-end test of one daemon (see qemu_guest.py)."""

def guest_test(name, device):
    """<name>.py booting a guest against //vhost-user-<device>."""
    daemon = "//vhost-user-%s:vhost-user-%s" % (device, device)
    native.py_test(
        name = name,
        size = "large",
        srcs = [name + ".py"],
        args = ["$(location %s)" % daemon],
        data = [daemon],
        python_version = "PY3",
        tags = [
            "e2e",
            "local",
        ],
        deps = [":qemu_guest"],
    )
