"""A device daemon: one fully static binary, so it runs in an empty container or chroot."""

def vhost_user_daemon(name, srcs, deps, **kwargs):
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps + ["//common"],
        # Debian's libunwind.a (needed by libglog.a) is not PIC, and defines _Unwind_Resume as
        # libgcc_eh.a does: link without PIE and let gold keep the first definition.
        features = ["-pie", "fully_static_link"],
        linkopts = [
            "-static",
            "-no-pie",
            "-fuse-ld=gold",
            "-Wl,--allow-multiple-definition",
            "-Wl,--gc-sections",
            "-lunwind",
            "-llzma",
        ],
        **kwargs
    )
