// The seccomp sandbox: the engine's base (what the engine, glibc, glog and Abseil need once
// setup is done) plus the groups and syscalls each device adds. Applied after the socket is
// listening and the device is open, before any front end is served.
#ifndef COMMON_SANDBOX_SANDBOX_H_
#define COMMON_SANDBOX_SANDBOX_H_

#include <cstdint>
#include <initializer_list>
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
  int refuse_errno = 0;  // non-zero: the call fails with this errno instead of being allowed
};

// What a daemon may do while serving, made of named groups of syscalls. The engine's base
// (the groups listed first below) is added by Build(); a device adds the groups and single
// syscalls it needs on top, in its own folder (vhost-user-blk/blk_sandbox.cc, ...):
//   SandboxPolicy().FileData().Allow("io_uring_enter").AllowIoctl(BLKGETSIZE64)
// Groups partition the syscalls: a syscall added twice (by two groups, by a group and Allow,
// or twice alike) is an error that Build() reports, so no list grows duplicates.
class SandboxPolicy {
 public:
  // The base, which every daemon gets.
  SandboxPolicy& Memory();        // brk, mmap/mprotect never executable, munmap, mremap, madvise
  SandboxPolicy& Threads();       // clone of threads only, futex, rseq, exit, affinity, ...
  SandboxPolicy& EventLoop();     // epoll, eventfd, poll
  SandboxPolicy& Time();          // clocks and sleeps
  SandboxPolicy& Signals();       // handlers, masks, tgkill to our own threads
  SandboxPolicy& DescriptorIo();  // read/write/close/dup/fcntl/lseek/fstat on open fds
  SandboxPolicy& UnixSocketIo();  // accept, messages with fds, socket options, shutdown
  SandboxPolicy& Process();       // exit_group, ids, uname, getrandom, our own rlimits
  // Sanitizer runtimes' own syscalls (added to the base in sanitizer builds only).
  SandboxPolicy& SanitizerRuntime();

  // For devices.
  SandboxPolicy& FileIoAt();        // *at() calls relative to a directory fd, getdents64
  SandboxPolicy& FileAttributes();  // f*() metadata calls on open files, xattrs, statfs
  SandboxPolicy& FileData();        // positioned writes, vectored reads, fallocate, syncs

  // One syscall, unconditionally or in some forms only.
  SandboxPolicy& Allow(absl::string_view name);
  SandboxPolicy& AllowIf(SyscallRule rule);
  // ioctl with this request number (ioctl is otherwise forbidden).
  SandboxPolicy& AllowIoctl(unsigned long request);
  // A capability (CAP_*) the device still needs while serving; every other one is dropped.
  SandboxPolicy& KeepCapability(int cap);

  // The base and these additions as the rules to install; an error names a syscall added
  // twice and both groups that added it, or a name libseccomp does not know. Run by the
  // process that serves: the base's rules name its pid. open and openat fail with ENOENT unless
  // allowed (libraries probing files).
  absl::StatusOr<std::vector<SyscallRule>> Build() const;

  // Read by DropCapabilities before the filter is applied.
  std::vector<int> keep_capabilities;

 private:
  struct Entry {
    SyscallRule rule;
    std::string group;
  };
  SandboxPolicy& Add(const char* group, std::initializer_list<const char*> names);
  SandboxPolicy& Add(const char* group, SyscallRule rule);

  std::vector<Entry> entries_;
};

// Drops every capability but `keep`: effective, permitted, inheritable, ambient and the
// bounding set, so a daemon started as root keeps only what its device needs while serving.
absl::Status DropCapabilities(const std::vector<int>& keep);

// Installs the filter for the whole process (all threads created later inherit it).
absl::Status ApplySandbox(SeccompMode mode, const SandboxPolicy& policy);

}  // namespace vhost

#endif  // COMMON_SANDBOX_SANDBOX_H_
