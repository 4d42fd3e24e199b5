// The seccomp sandbox: a common allow-list (what the engine, glibc, glog and Abseil need once
// setup is done) plus the syscalls each device adds. Applied after the socket is listening and
// the device is open, before any front end is served.
#ifndef COMMON_SANDBOX_H_
#define COMMON_SANDBOX_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vhost {

enum class SeccompMode {
  kKill,  // a forbidden syscall kills the process (default)
  kLog,   // a forbidden syscall is allowed and logged by the kernel (audit log)
  kOff,   // no filter
};

absl::StatusOr<SeccompMode> ParseSeccompMode(absl::string_view text);

struct SandboxPolicy {
  // Syscall names a device needs beyond the common list (e.g. "getrandom", "pread64").
  std::vector<std::string> extra_syscalls;
  // ioctl request numbers the device may issue (ioctl is otherwise forbidden).
  std::vector<unsigned long> ioctl_requests;
};

// Installs the filter for the whole process (all threads created later inherit it).
absl::Status ApplySandbox(SeccompMode mode, const SandboxPolicy& policy);

}  // namespace vhost

#endif  // COMMON_SANDBOX_H_
