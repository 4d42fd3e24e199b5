// Confines vhost-user-fs to the shared directory before it serves, on top of the seccomp filter:
//   namespace: new mount, network, IPC and UTS namespaces (and a user namespace mapping our
//     uid to root when not started as root), the shared directory made the root with
//     pivot_root and the old root detached, then every capability dropped but the few a file
//     server needs (chown, dac_override, fowner, fsetid, setuid/setgid for fsuid, mknod);
//   chroot: chroot() into it (root only), same capabilities;
//   none: nothing beyond seccomp (for hosts where neither is possible).
// Must run single-threaded, after the vhost-user socket is listening.
#ifndef VHOST_USER_FS_FS_SANDBOX_H_
#define VHOST_USER_FS_FS_SANDBOX_H_

#include <string>

#include "absl/status/statusor.h"

namespace vhost {

enum class FsSandbox { kNamespace, kChroot, kNone };

absl::StatusOr<FsSandbox> ParseFsSandbox(const std::string& text);
absl::Status EnterFsSandbox(FsSandbox kind, const std::string& shared_dir);

}  // namespace vhost

#endif  // VHOST_USER_FS_FS_SANDBOX_H_
