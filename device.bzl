"""One device's build, declared in its own folder: vhost_user_device() and device_unit_test().

A device folder vhost-user-<name>/ holds main.cc, the device library and its unit tests; its
integration test, CLI arguments and guest test are registered here too, from sources kept under
tests/ (tests/integration/<name>_integration_test.cc, tests/e2e/<name>_e2e_test.py and an
optional tests/e2e/<name>_guest_tool.cc). Every test gets one of the tags the suites select on:
unit, integration, e2e; those that cannot run under the sanitizers also get no-asan.
"""

load("//common:daemon.bzl", "static_binary")

_TEST_MAIN = "@system//:gtest_main"

def device_unit_test(name, deps = [], tags = [], **kwargs):
    """<name>.cc, a unit test of the device (or of one of its parts)."""
    native.cc_test(
        name = name,
        srcs = [name + ".cc"],
        deps = deps + ["//common/testing", _TEST_MAIN],
        tags = tags + ["unit"],
        **kwargs
    )

def vhost_user_device(
        name,
        srcs,
        hdrs,
        deps = [],
        linkopts = [],
        daemon_deps = [],
        unit_tests = [],
        unit_test_deps = [],
        unit_test_tags = [],
        backend_type = None,
        cli_args = [],
        cli_needs_proc = False,
        integration_deps = [],
        guest_test = True,
        guest_tool = False,
        guest_tool_deps = [],
        guest_test_deps = []):
    """Everything of device `name` (in folder vhost-user-<name>).

    Args:
      name: the device ("rng").
      srcs, hdrs, deps, linkopts: the device library, :<name>_device.
      daemon_deps: what main.cc needs beyond the library (e.g. its sandbox policy).
      unit_tests: names of unit tests in this folder (<test>.cc), each on the library plus
        common/testing (TestQueue, FakeGuestMemory) and `unit_test_deps`.
      backend_type: the vhost-user backend type (vhost-user.json); with it, the CLI test
        (tests/integration/daemon_cli_test.sh) runs the daemon with `cli_args`.
      integration_deps: extra deps of tests/integration/<name>_integration_test.cc.
      guest_test: whether tests/e2e/<name>_e2e_test.py boots a guest against the daemon.
      guest_tool: whether tests/e2e/<name>_guest_tool.cc is built (static) into the guest.
      guest_test_deps: py_libraries the guest test needs beyond qemu_guest.
    """
    library = name + "_device"
    daemon = "vhost-user-" + name
    native.cc_library(
        name = library,
        srcs = srcs,
        hdrs = hdrs,
        linkopts = linkopts,
        deps = deps,
    )
    static_binary(
        name = daemon,
        srcs = ["main.cc"],
        deps = [":" + library] + daemon_deps + ["//common"],
    )
    for test in unit_tests:
        device_unit_test(
            name = test,
            deps = [":" + library, "//common/testing:test_queue"] + unit_test_deps,
            tags = unit_test_tags,
        )

    if backend_type:
        native.sh_test(
            name = name + "_cli_test",
            srcs = ["//tests/integration:daemon_cli_test.sh"],
            args = ["$(location :%s)" % daemon, backend_type] + cli_args,
            data = [":" + daemon],
            env = {"NEEDS_PROC": "1" if cli_needs_proc else "0"},
            tags = [
                "integration",
                "local",
                "no-asan",  # the chroot check needs the static binary
            ],
        )

    native.cc_test(
        name = name + "_integration_test",
        size = "medium",
        srcs = ["//tests/integration:%s_integration_test.cc" % name],
        data = [":" + daemon],
        tags = ["integration", "local"],
        deps = [
            "//common/testing",
            "//tests/frontend",
            "//tests/integration:runfiles",
            _TEST_MAIN,
        ] + integration_deps,
    )

    if guest_test:
        data = [":" + daemon]
        if guest_tool:
            tool = name + "_guest_tool"
            static_binary(
                name = tool,
                testonly = True,
                srcs = ["//tests/e2e:%s.cc" % tool],
                deps = guest_tool_deps,
            )
            data.append(":" + tool)
        e2e_test(name = name + "_e2e_test", binaries = data, deps = guest_test_deps)

    # This folder's tests by kind; the root package gathers them.
    native.test_suite(name = "unit", tags = ["unit"])
    native.test_suite(name = "integration", tags = ["integration"])
    native.test_suite(name = "e2e", tags = ["e2e"])
    native.test_suite(name = "asan_safe", tags = ["-e2e", "-no-asan"])

def e2e_test(name, binaries, extra_srcs = [], extra_data = [], deps = [], tags = []):
    """tests/e2e/<name>.py, a guest test: it gets the paths of `binaries` (labels of daemons and
    guest tools), in that order, as its arguments. `extra_srcs`: other tests/e2e scripts it
    imports; `extra_data`: files they read; `deps`: py_libraries beyond qemu_guest (e.g. the
    aarch64 guest); `tags`: beyond e2e and local (e.g. exclusive, to run alone)."""
    native.py_test(
        name = name,
        size = "large",
        srcs = ["//tests/e2e:%s.py" % name] + extra_srcs,
        main = "//tests/e2e:%s.py" % name,
        args = ["$(location %s)" % b for b in binaries],
        data = binaries + extra_data,
        python_version = "PY3",
        tags = ["e2e", "local"] + tags,
        deps = ["//tests/e2e:qemu_guest"] + deps,
    )
