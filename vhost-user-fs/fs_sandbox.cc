#include "vhost-user-fs/fs_sandbox.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

absl::Status Errno(const std::string& what) { return absl::ErrnoToStatus(errno, what); }

absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  f.flush();
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Our /proc/self/fd, reachable through nothing else: bound over /proc in our private mount
// namespace, opened, and detached again (the mount lives on through the descriptor, and ".."
// from a detached mount's root stays there). Needs /proc to be a private mount point.
absl::StatusOr<UniqueFd> OpenDetachedProcFds() {
  if (mount("/proc/self/fd", "/proc", nullptr, MS_BIND, nullptr) != 0) {
    return Errno("bind-mounting /proc/self/fd");
  }
  UniqueFd fd(open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC));
  const int open_errno = errno;
  if (umount2("/proc", MNT_DETACH) != 0) return Errno("detaching /proc/self/fd");
  if (!fd) return absl::ErrnoToStatus(open_errno, "opening /proc/self/fd");
  return fd;
}

UniqueFd OpenRoot() { return UniqueFd(open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)); }

// The shared directory becomes a mount point, then the root; the old root is detached.
absl::Status PivotRoot(const std::string& shared_dir) {
  if (mount(shared_dir.c_str(), shared_dir.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return Errno("bind-mounting the shared directory");
  }
  if (chdir(shared_dir.c_str()) != 0) return Errno("chdir");
  if (syscall(SYS_pivot_root, ".", ".") != 0) return Errno("pivot_root");
  if (umount2(".", MNT_DETACH) != 0) return Errno("detaching the old root");
  if (chdir("/") != 0) return Errno("chdir /");
  return absl::OkStatus();
}

absl::StatusOr<FsSandboxFds> EnterNamespaces(const std::string& shared_dir) {
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  int flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
  if (uid != 0) flags |= CLONE_NEWUSER;  // unprivileged: become root of our own namespace
  if (unshare(flags) != 0) return Errno("unshare (--sandbox=namespace)");
  if (uid != 0) {
    if (absl::Status s = WriteFile("/proc/self/setgroups", "deny"); !s.ok()) return s;
    if (absl::Status s = WriteFile("/proc/self/uid_map", absl::StrCat("0 ", uid, " 1")); !s.ok()) {
      return s;
    }
    if (absl::Status s = WriteFile("/proc/self/gid_map", absl::StrCat("0 ", gid, " 1")); !s.ok()) {
      return s;
    }
  }
  // Our mounts stay ours; the shared directory becomes a mount point, then the root.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    // E.g. inside a plain chroot, whose root is no mount point.
    return Errno("making mounts private (use --sandbox=chroot or none where / is no mount point)");
  }
  FsSandboxFds fds;
  absl::StatusOr<UniqueFd> proc_fds = OpenDetachedProcFds();
  if (!proc_fds.ok()) return proc_fds.status();
  fds.proc_fds = *std::move(proc_fds);
  char resolved[PATH_MAX];
  if (realpath(shared_dir.c_str(), resolved) == nullptr) return Errno("realpath");
  if (std::strcmp(resolved, "/") != 0) {  // else already the root
    if (absl::Status s = PivotRoot(shared_dir); !s.ok()) return s;
  }
  fds.root = OpenRoot();
  if (!fds.root) return Errno("opening the new root");
  return fds;
}

absl::StatusOr<FsSandboxFds> EnterChroot(const std::string& shared_dir) {
  // A mount namespace of our own only for the detached /proc/self/fd: the host's mounts stay
  // as they are (no pivot_root, which needs / to be a mount point).
  if (unshare(CLONE_NEWNS) != 0) return Errno("unshare (--sandbox=chroot needs root)");
  if (mount(nullptr, "/proc", nullptr, MS_PRIVATE, nullptr) != 0) {
    return Errno("making /proc private (is /proc mounted?)");
  }
  FsSandboxFds fds;
  absl::StatusOr<UniqueFd> proc_fds = OpenDetachedProcFds();
  if (!proc_fds.ok()) return proc_fds.status();
  fds.proc_fds = *std::move(proc_fds);
  if (chroot(shared_dir.c_str()) != 0) return Errno("chroot (--sandbox=chroot needs root)");
  if (chdir("/") != 0) return Errno("chdir /");
  fds.root = OpenRoot();
  if (!fds.root) return Errno("opening the new root");
  return fds;
}

}  // namespace

absl::StatusOr<FsSandbox> ParseFsSandbox(const std::string& text) {
  if (text == "namespace") return FsSandbox::kNamespace;
  if (text == "chroot") return FsSandbox::kChroot;
  if (text == "none") return FsSandbox::kNone;
  return absl::InvalidArgumentError("--sandbox must be namespace, chroot or none");
}

std::vector<int> FsCapabilities(bool device_nodes) {
  std::vector<int> keep = {CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER,
                           CAP_FSETID, CAP_SETUID,       CAP_SETGID};
  if (device_nodes) keep.push_back(CAP_MKNOD);
  return keep;
}

SandboxPolicy FsSandboxPolicy() {
  SandboxPolicy policy;
  policy.FileIoAt()
      .FileAttributes()
      .FileData()
      .Allow("pread64")
      .Allow("copy_file_range")
      .Allow("syncfs")
      .Allow("setfsuid")  // requests run as the guest's user and group
      .Allow("setfsgid");
  for (int cap : FsCapabilities(/*device_nodes=*/true)) policy.KeepCapability(cap);
  return policy;
}

absl::StatusOr<FsSandboxFds> EnterFsSandbox(FsSandbox kind, const std::string& shared_dir) {
  absl::StatusOr<FsSandboxFds> fds;
  switch (kind) {
    case FsSandbox::kNone:
      fds.emplace();
      fds->root = UniqueFd(open(shared_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (!fds->root) return Errno(absl::StrCat("--shared-dir: ", shared_dir));
      fds->proc_fds = UniqueFd(open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC));
      if (!fds->proc_fds) return Errno("/proc/self/fd (is /proc mounted?)");
      return fds;
    case FsSandbox::kChroot:
      fds = EnterChroot(shared_dir);
      break;
    case FsSandbox::kNamespace:
      fds = EnterNamespaces(shared_dir);
      break;
  }
  return fds;
}

}  // namespace vhost
