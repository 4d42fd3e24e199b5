"""A device daemon: one fully static binary, so it runs in an empty container or chroot."""

# Debian's libunwind.a (needed by libglog.a) is not PIC, and defines _Unwind_Resume as
# libgcc_eh.a does: link without PIE and let gold keep the first definition.
_STATIC_LINKOPTS = [
    "-static",
    "-no-pie",
    "-fuse-ld=gold",
    "-Wl,--allow-multiple-definition",
    "-Wl,--gc-sections",
    "-lunwind",
    "-llzma",
]

def static_binary(name, **kwargs):
    """A cc_binary linked fully statically (dynamically in sanitizer builds)."""
    native.cc_binary(
        name = name,
        # Sanitizer runtimes cannot be linked statically: sanitizer builds link dynamically.
        features = select({
            "//common:sanitizer_build": [],
            "//conditions:default": ["-pie", "fully_static_link"],
        }),
        linkopts = select({
            "//common:sanitizer_build": [],
            "//conditions:default": _STATIC_LINKOPTS,
        }),
        **kwargs
    )

def vhost_user_daemon(name, srcs, deps, **kwargs):
    static_binary(
        name = name,
        srcs = srcs,
        deps = deps + ["//common"],
        **kwargs
    )
