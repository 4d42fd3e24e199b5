"""A guest end-to-end test of one daemon (see qemu_guest.py)."""

def guest_test(name, device, guest_tool = None):
    """<name>.py booting a guest against //vhost-user-<device>.

    guest_tool: a static binary target the test puts into the guest; its path is the test's
    second argument.
    """
    daemon = "//vhost-user-%s:vhost-user-%s" % (device, device)
    args = ["$(location %s)" % daemon]
    data = [daemon]
    if guest_tool:
        args.append("$(location %s)" % guest_tool)
        data.append(guest_tool)
    native.py_test(
        name = name,
        size = "large",
        srcs = [name + ".py"],
        args = args,
        data = data,
        python_version = "PY3",
        tags = [
            "e2e",
            "local",
        ],
        deps = [":qemu_guest"],
    )
