"""A C++ toolchain config for aarch64-linux-gnu with Debian's cross compiler (gcc-12-aarch64-linux-gnu).

Only the flags are declared here; everything else (include paths, libraries to link, user copts
and linkopts, -static for fully_static_link, ...) comes from Bazel's legacy features, as on the
host's auto-configured toolchain. The arm64 libraries are Debian's multiarch packages in
/usr/lib/aarch64-linux-gnu, which the cross compiler searches by itself, plus gflags and glog,
whose -dev packages are not Multi-Arch: same and so are unpacked into a private directory
(scripts/setup.sh) added with -L.
"""

load("@bazel_tools//tools/build_defs/cc:action_names.bzl", "ACTION_NAMES")
load(
    "@bazel_tools//tools/cpp:cc_toolchain_config_lib.bzl",
    "feature",
    "flag_group",
    "flag_set",
    "tool_path",
    "with_feature_set",
)

# Where scripts/setup.sh unpacks libgflags-dev:arm64 and libgoogle-glog-dev:arm64.
PRIVATE_LIBDIR = "/var/cache/vhost-user-arm64/sysroot/usr/lib/aarch64-linux-gnu"

_COMPILE_ACTIONS = [
    ACTION_NAMES.assemble,
    ACTION_NAMES.preprocess_assemble,
    ACTION_NAMES.c_compile,
    ACTION_NAMES.cpp_compile,
    ACTION_NAMES.cpp_header_parsing,
    ACTION_NAMES.cpp_module_compile,
    ACTION_NAMES.linkstamp_compile,
]

_LINK_ACTIONS = [
    ACTION_NAMES.cpp_link_executable,
    ACTION_NAMES.cpp_link_dynamic_library,
    ACTION_NAMES.cpp_link_nodeps_dynamic_library,
]

def _impl(ctx):
    prefix = "/usr/bin/aarch64-linux-gnu-"
    tools = {
        "gcc": prefix + "gcc-12",
        "cpp": prefix + "cpp-12",
        "ar": prefix + "ar",
        "ld": prefix + "ld",
        "nm": prefix + "nm",
        "objcopy": prefix + "objcopy",
        "objdump": prefix + "objdump",
        "strip": prefix + "strip",
        "dwp": prefix + "dwp",
        "gcov": prefix + "gcov-12",
        "llvm-cov": "/bin/false",
    }

    # The same defaults as the host's toolchain (see bazel-main/external/local_config_cc/BUILD).
    default_compile_flags = feature(
        name = "default_compile_flags",
        enabled = True,
        flag_sets = [
            flag_set(
                actions = _COMPILE_ACTIONS,
                flag_groups = [flag_group(flags = [
                    "-U_FORTIFY_SOURCE",
                    "-fstack-protector",
                    "-Wall",
                    "-Wunused-but-set-parameter",
                    "-Wno-free-nonheap-object",
                    "-fno-omit-frame-pointer",
                ])],
            ),
            flag_set(
                actions = _COMPILE_ACTIONS,
                flag_groups = [flag_group(flags = ["-g"])],
                with_features = [with_feature_set(features = ["dbg"])],
            ),
            flag_set(
                actions = _COMPILE_ACTIONS,
                flag_groups = [flag_group(flags = [
                    "-g0",
                    "-O2",
                    "-D_FORTIFY_SOURCE=1",
                    "-DNDEBUG",
                    "-ffunction-sections",
                    "-fdata-sections",
                ])],
                with_features = [with_feature_set(features = ["opt"])],
            ),
        ],
    )

    default_link_flags = feature(
        name = "default_link_flags",
        enabled = True,
        flag_sets = [
            flag_set(
                actions = _LINK_ACTIONS,
                flag_groups = [flag_group(flags = [
                    # GNU ld, not gold: gold's static aarch64 glibc binaries abort at startup
                    # (glog's static initializers, right after getpwuid_r, under qemu-aarch64).
                    # These flags come after the targets' linkopts, so this overrides the
                    # daemons' -fuse-ld=gold (common/daemon.bzl).
                    "-fuse-ld=bfd",
                    "-Wl,-no-as-needed",
                    "-Wl,-z,relro,-z,now",
                    "-pass-exit-codes",
                    "-L" + PRIVATE_LIBDIR,
                    "-lstdc++",
                    "-lm",
                ])],
            ),
            flag_set(
                actions = _LINK_ACTIONS,
                flag_groups = [flag_group(flags = ["-Wl,--gc-sections"])],
                with_features = [with_feature_set(features = ["opt"])],
            ),
        ],
    )

    # Reproducible output, as on the host.
    unfiltered_compile_flags = feature(
        name = "unfiltered_compile_flags",
        enabled = True,
        flag_sets = [flag_set(
            actions = _COMPILE_ACTIONS,
            flag_groups = [flag_group(flags = [
                "-fno-canonical-system-headers",
                "-Wno-builtin-macro-redefined",
                "-D__DATE__=\"redacted\"",
                "-D__TIMESTAMP__=\"redacted\"",
                "-D__TIME__=\"redacted\"",
            ])],
        )],
    )

    features = [
        feature(name = "supports_pic", enabled = True),
        feature(name = "supports_dynamic_linker", enabled = True),
        feature(name = "dbg"),
        feature(name = "opt"),
        default_compile_flags,
        default_link_flags,
        unfiltered_compile_flags,
    ]

    return cc_common.create_cc_toolchain_config_info(
        ctx = ctx,
        features = features,
        # The cross compiler's own search list (aarch64-linux-gnu-g++-12 -xc++ -E -v -),
        # normalized: libstdc++ and glibc of the cross packages, then the multiarch -dev headers.
        cxx_builtin_include_directories = [
            "/usr/aarch64-linux-gnu/include",
            "/usr/lib/gcc-cross/aarch64-linux-gnu/12/include",
            "/usr/include/aarch64-linux-gnu",
            "/usr/include",
        ],
        toolchain_identifier = "aarch64-linux-gnu-gcc-12",
        host_system_name = "x86_64-linux-gnu",
        target_system_name = "aarch64-linux-gnu",
        target_cpu = "aarch64",
        target_libc = "glibc",
        compiler = "gcc",
        abi_version = "gcc",
        abi_libc_version = "glibc",
        tool_paths = [tool_path(name = n, path = p) for n, p in tools.items()],
    )

aarch64_cc_toolchain_config = rule(
    implementation = _impl,
    attrs = {},
    provides = [CcToolchainConfigInfo],
)
