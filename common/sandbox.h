// The seccomp sandbox: a common allow-list (what the engine, glibc, glog and Abseil need once
// setup is done) plus the syscalls each device adds. Applied after the socket is listening and
// the device is open, before any front end is served.
#ifndef COMMON_SANDBOX_H_
#define COMMON_SANDBOX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vhost {

enum class SeccompMode {
  kKill,  // a forbidden syscall kills the process with SIGSYS, named on stderr first (default)
  kLog,   // a forbidden syscall is allowed and logged by the kernel (audit log)
  kOff,   // no filter
};

absl::StatusOr<SeccompMode> ParseSeccompMode(absl::string_view text);

// A condition on a syscall argument, written as `Arg(0) == AF_UNIX` or, comparing only some
// bits, `(Arg(1) & kSocketTypeMask) == SOCK_STREAM`.
struct ArgCondition {
  unsigned index;  // 0..5
  uint64_t mask;   // the bits compared
  uint64_t value;
};

struct MaskedArg {
  unsigned index;
  uint64_t mask;
  ArgCondition operator==(uint64_t value) const { return {index, mask, value}; }
};

struct Arg {
  explicit constexpr Arg(unsigned i) : index(i) {}
  ArgCondition operator==(uint64_t value) const { return {index, ~uint64_t{0}, value}; }
  MaskedArg operator&(uint64_t mask) const { return {index, mask}; }
  unsigned index;
};

// socket()'s type argument without SOCK_NONBLOCK and SOCK_CLOEXEC.
constexpr uint64_t kSocketTypeMask = 0xf;

// A syscall allowed only when all its conditions hold. Several rules for one syscall allow it
// when any of them holds: {"socket", {Arg(0) == AF_UNIX}}.
struct SyscallRule {
  std::string name;
  std::vector<ArgCondition> conditions;
};

struct SandboxPolicy {
  // Syscall names a device needs beyond the common list (e.g. "getrandom", "pread64").
  std::vector<std::string> extra_syscalls;
  // Syscalls a device needs only in some forms.
  std::vector<SyscallRule> conditional_syscalls;
  // ioctl request numbers the device may issue (ioctl is otherwise forbidden).
  std::vector<unsigned long> ioctl_requests;
  // Capabilities (CAP_*) the device still needs while serving; every other one is dropped.
  std::vector<int> keep_capabilities;
};

// Drops every capability but `keep`: effective, permitted, inheritable, ambient and the
// bounding set, so a daemon started as root keeps only what its device needs while serving.
absl::Status DropCapabilities(const std::vector<int>& keep);

// Installs the filter for the whole process (all threads created later inherit it).
absl::Status ApplySandbox(SeccompMode mode, const SandboxPolicy& policy);

}  // namespace vhost

#endif  // COMMON_SANDBOX_H_
