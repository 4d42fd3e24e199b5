// Confines vhost-user-fs to the shared directory before it serves, on top of the seccomp filter:
//   namespace: new mount, network, IPC and UTS namespaces (and a user namespace mapping our
//     uid to root when not started as root), the shared directory made the root with
//     pivot_root and the old root detached;
//   chroot: chroot() into it (root only);
//   none: nothing beyond seccomp (for hosts where neither is possible).
// What the FUSE server keeps open is opened here, after confinement, so that no descriptor
// leads out of it: the root as "/" once the shared directory is the root, and /proc/self/fd
// as a bind mount of just that directory, detached at once (".." of a detached mount's root is
// that root: the descriptor reaches our own open files and nothing else of procfs). A bind
// mount, not a fresh proc in a PID namespace: it works unprivileged too (a user namespace may
// only mount a new proc where the host's /proc is fully visible, which containers that mask
// parts of it deny), needs no fork, and shows less than a fresh proc (no /proc/sys).
// Must run single-threaded, after the vhost-user socket is listening.
#ifndef VHOST_USER_FS_FS_SANDBOX_H_
#define VHOST_USER_FS_FS_SANDBOX_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "common/sandbox/sandbox.h"

namespace vhost {

enum class FsSandbox { kNamespace, kChroot, kNone };

absl::StatusOr<FsSandbox> ParseFsSandbox(const std::string& text);

// The descriptors the FUSE server keeps.
struct FsSandboxFds {
  UniqueFd root;      // the shared directory (O_PATH)
  UniqueFd proc_fds;  // our /proc/self/fd (O_PATH)
};

// The capabilities serving files as the guest's users needs (chown, dac_override, fowner,
// fsetid, setuid/setgid for fsuid; mknod only when the guest may make device nodes). The
// daemon drops every other one once the sandbox is entered (common DropCapabilities).
std::vector<int> FsCapabilities(bool device_nodes);

// The seccomp additions to the engine's base: file calls relative to the shared directory's
// descriptors, and the most capabilities Confine keeps (FsCapabilities with device nodes: it
// drops CAP_MKNOD itself without --allow-device-nodes).
SandboxPolicy FsSandboxPolicy();

absl::StatusOr<FsSandboxFds> EnterFsSandbox(FsSandbox kind, const std::string& shared_dir);

}  // namespace vhost

#endif  // VHOST_USER_FS_FS_SANDBOX_H_
