#include "vhost-user-fs/fs_sandbox.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
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

// What serving files as the guest's users needs; everything else goes, bounding set included.
absl::Status DropCapabilities() {
  const int keep[] = {CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID,
                      CAP_SETUID, CAP_SETGID,       CAP_MKNOD};
  uint64_t mask = 0;
  for (int cap : keep) mask |= uint64_t{1} << cap;
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (!(mask & (uint64_t{1} << cap))) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return Errno("capget");
  for (auto& d : data) {
    d.effective &= static_cast<uint32_t>(mask);
    d.permitted &= static_cast<uint32_t>(mask);
    d.inheritable = 0;
  }
  data[1].effective &= static_cast<uint32_t>(mask >> 32);
  data[1].permitted &= static_cast<uint32_t>(mask >> 32);
  if (syscall(SYS_capset, &header, data) != 0) return Errno("capset");
  return absl::OkStatus();
}

absl::Status EnterNamespaces(const std::string& shared_dir) {
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
  char resolved[PATH_MAX];
  if (realpath(shared_dir.c_str(), resolved) == nullptr) return Errno("realpath");
  if (std::strcmp(resolved, "/") == 0) return absl::OkStatus();  // already the root
  if (mount(shared_dir.c_str(), shared_dir.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    return Errno("bind-mounting the shared directory");
  }
  if (chdir(shared_dir.c_str()) != 0) return Errno("chdir");
  if (syscall(SYS_pivot_root, ".", ".") != 0) return Errno("pivot_root");
  if (umount2(".", MNT_DETACH) != 0) return Errno("detaching the old root");
  if (chdir("/") != 0) return Errno("chdir /");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<FsSandbox> ParseFsSandbox(const std::string& text) {
  if (text == "namespace") return FsSandbox::kNamespace;
  if (text == "chroot") return FsSandbox::kChroot;
  if (text == "none") return FsSandbox::kNone;
  return absl::InvalidArgumentError("--sandbox must be namespace, chroot or none");
}

absl::Status EnterFsSandbox(FsSandbox kind, const std::string& shared_dir) {
  switch (kind) {
    case FsSandbox::kNone:
      return absl::OkStatus();
    case FsSandbox::kChroot:
      if (chroot(shared_dir.c_str()) != 0) return Errno("chroot (--sandbox=chroot needs root)");
      if (chdir("/") != 0) return Errno("chdir /");
      break;
    case FsSandbox::kNamespace:
      if (absl::Status s = EnterNamespaces(shared_dir); !s.ok()) return s;
      break;
  }
  return DropCapabilities();
}

}  // namespace vhost
