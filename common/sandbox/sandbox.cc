#include "common/sandbox/sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

// Sanitizer runtimes make syscalls of their own (see SanitizerRuntime); sanitizer builds allow
// them so the tests exercise the real policy otherwise.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizerBuild = true;
#else
constexpr bool kSanitizerBuild = false;
#endif

// Names of syscalls by number, filled when the filter is installed: the SIGSYS handler may not
// allocate, so it cannot ask libseccomp then.
constexpr int kNamedSyscalls = 512;
char syscall_names[kNamedSyscalls][32];

void FillSyscallNames() {
  for (int nr = 0; nr < kNamedSyscalls; ++nr) {
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (name == nullptr) continue;
    strncpy(syscall_names[nr], name, sizeof(syscall_names[nr]) - 1);
    free(name);
  }
}

// Appends `text` at `*pos` of `buf` (of `size` bytes), as far as it fits.
void Append(char* buf, size_t size, size_t* pos, const char* text) {
  while (*text != '\0' && *pos < size) buf[(*pos)++] = *text++;
}

// A forbidden syscall in kill mode traps here (SECCOMP_RET_TRAP) instead of killing silently:
// the syscall is named on stderr, then the process dies of SIGSYS as SECCOMP_RET_KILL_PROCESS
// would make it. Only async-signal-safe syscalls the filter allows: write, gettid, tgkill.
void OnForbiddenSyscall(int, siginfo_t* info, void*) {
  char msg[128];
  size_t pos = 0;
  const int nr = info->si_syscall;
  char number[12];
  char* digits = number + sizeof(number);
  *--digits = '\0';
  unsigned value = nr < 0 ? 0 : nr;
  do {
    *--digits = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  Append(msg, sizeof(msg), &pos, "seccomp: forbidden syscall ");
  Append(msg, sizeof(msg), &pos, digits);
  Append(msg, sizeof(msg), &pos, " (");
  Append(msg, sizeof(msg), &pos,
         nr >= 0 && nr < kNamedSyscalls && syscall_names[nr][0] ? syscall_names[nr] : "?");
  Append(msg, sizeof(msg), &pos, "); the daemon is killed\n");
  [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, msg, pos);
  // SA_RESETHAND made SIGSYS's action the default again and SA_NODEFER left it unblocked.
  syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGSYS);
  syscall(SYS_exit_group, 128 + SIGSYS);  // not reached
}

absl::Status AddRule(scmp_filter_ctx ctx, const SyscallRule& rule) {
  const int nr = seccomp_syscall_resolve_name(rule.name.c_str());
  if (nr == __NR_SCMP_ERROR) return absl::InvalidArgumentError("unknown syscall " + rule.name);
  std::vector<scmp_arg_cmp> compare;
  for (const ArgCondition& c : rule.conditions) {
    if (c.index > 5) return absl::InvalidArgumentError("no syscall argument " + rule.name);
    compare.push_back(c.mask == ~uint64_t{0}
                          ? scmp_arg_cmp{c.index, SCMP_CMP_EQ, c.value, 0}
                          : scmp_arg_cmp{c.index, SCMP_CMP_MASKED_EQ, c.mask, c.value});
  }
  const uint32_t action =
      rule.refuse_errno != 0 ? SCMP_ACT_ERRNO(rule.refuse_errno) : SCMP_ACT_ALLOW;
  if (seccomp_rule_add_array(ctx, action, nr, compare.size(), compare.data()) != 0) {
    return absl::InternalError("seccomp_rule_add failed for " + rule.name);
  }
  return absl::OkStatus();
}

bool SameConditions(const SyscallRule& a, const SyscallRule& b) {
  return a.refuse_errno == b.refuse_errno &&
         std::equal(a.conditions.begin(), a.conditions.end(), b.conditions.begin(),
                    b.conditions.end(), [](const ArgCondition& x, const ArgCondition& y) {
                      return x.index == y.index && x.mask == y.mask && x.value == y.value;
                    });
}

// "ioctl(arg1 == 0x5401)", for error messages.
std::string Describe(const SyscallRule& rule) {
  std::string text = rule.name;
  for (size_t i = 0; i < rule.conditions.size(); ++i) {
    const ArgCondition& c = rule.conditions[i];
    absl::StrAppend(&text, i == 0 ? "(" : ", ", "arg", c.index);
    if (c.mask != ~uint64_t{0}) absl::StrAppend(&text, " & 0x", absl::Hex(c.mask));
    absl::StrAppend(&text, " == 0x", absl::Hex(c.value),
                    i + 1 == rule.conditions.size() ? ")" : "");
  }
  return text;
}

}  // namespace

absl::StatusOr<SeccompMode> ParseSeccompMode(absl::string_view text) {
  if (text == "kill") return SeccompMode::kKill;
  if (text == "log") return SeccompMode::kLog;
  if (text == "off") return SeccompMode::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat("--seccomp must be kill, log or off, not '", text, "'"));
}

absl::Status DropCapabilities(const std::vector<int>& keep) {
  uint64_t mask = 0;
  for (int cap : keep) mask |= uint64_t{1} << cap;
  // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next. EINVAL is a
  // capability this kernel does not know; EPERM means we never had CAP_SETPCAP to give up.
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (!(mask & (uint64_t{1} << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
        errno != EINVAL && errno != EPERM) {
      return absl::ErrnoToStatus(errno, "PR_CAPBSET_DROP");
    }
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return absl::ErrnoToStatus(errno, "PR_CAP_AMBIENT_CLEAR_ALL");
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &header, data) != 0) return absl::ErrnoToStatus(errno, "capget");
  for (int i = 0; i < 2; ++i) {
    const uint32_t word = static_cast<uint32_t>(mask >> (32 * i));
    data[i].effective &= word;
    data[i].permitted &= word;
    data[i].inheritable = 0;
  }
  if (syscall(SYS_capset, &header, data) != 0) return absl::ErrnoToStatus(errno, "capset");
  return absl::OkStatus();
}

SandboxPolicy& SandboxPolicy::Add(const char* group, std::initializer_list<const char*> names) {
  for (const char* name : names) entries_.push_back({{name, {}}, group});
  return *this;
}

SandboxPolicy& SandboxPolicy::Add(const char* group, SyscallRule rule) {
  entries_.push_back({std::move(rule), group});
  return *this;
}

// Guest RAM and thread stacks are mapped, never made executable. madvise: glibc frees thread
// stacks and malloc arenas with it.
SandboxPolicy& SandboxPolicy::Memory() {
  Add("Memory", {"brk", "munmap", "mremap", "madvise"});
  Add("Memory", {"mmap", {(Arg(2) & PROT_EXEC) == 0}});
  return Add("Memory", {"mprotect", {(Arg(2) & PROT_EXEC) == 0}});
}

// Threads yes, new processes no. glibc tries clone3 first (its flags are behind a pointer,
// where seccomp cannot look) and falls back to clone on ENOSYS.
SandboxPolicy& SandboxPolicy::Threads() {
  Add("Threads", {"exit", "futex", "gettid", "getcpu", "rseq", "sched_getaffinity", "sched_yield",
                  "set_robust_list"});
  // absl::Mutex reads a waiting thread's priority (pthread_getschedparam) when it contends: a
  // read of the caller's own scheduling, nothing it could change.
  Add("Threads", {"sched_getparam", "sched_getscheduler"});
  Add("Threads", {"clone", {(Arg(0) & CLONE_THREAD) == CLONE_THREAD}});
  return Add("Threads", {"clone3", {}, ENOSYS});
}

SandboxPolicy& SandboxPolicy::EventLoop() {
  return Add("EventLoop", {"epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_wait", "eventfd2",
                           "poll", "ppoll"});
}

SandboxPolicy& SandboxPolicy::Time() {
  return Add("Time", {"clock_gettime", "clock_nanosleep", "gettimeofday", "nanosleep"});
}

// Signals to its own threads (pthread_kill, raise, abort), never another process's. The filter
// is installed by the process that serves (after any fork into a PID namespace): getpid() now
// is the daemon's.
SandboxPolicy& SandboxPolicy::Signals() {
  Add("Signals",
      {"restart_syscall", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack"});
  return Add("Signals", {"tgkill", {Arg(0) == static_cast<uint64_t>(getpid())}});
}

// newfstatat: glibc's fstat is newfstatat(fd, "", AT_EMPTY_PATH).
SandboxPolicy& SandboxPolicy::DescriptorIo() {
  return Add("DescriptorIo", {"close", "dup", "fcntl", "fstat", "lseek", "newfstatat", "read",
                              "readv", "statx", "write", "writev"});
}

SandboxPolicy& SandboxPolicy::UnixSocketIo() {
  return Add("UnixSocketIo", {"accept", "accept4", "getsockopt", "recvfrom", "recvmsg", "sendmsg",
                              "sendto", "setsockopt", "shutdown"});
}

// Its own resource limits only (getrlimit is prlimit64(0, ...)), as Signals its own pid.
SandboxPolicy& SandboxPolicy::Process() {
  Add("Process", {"exit_group", "getpid", "getuid", "geteuid", "getrandom", "uname"});
  Add("Process", {"prlimit64", {Arg(0) == 0}});
  return Add("Process", {"prlimit64", {Arg(0) == static_cast<uint64_t>(getpid())}});
}

// pipe2 probes whether memory is readable; a report (seen with strace under --seccomp=log)
// also asks whether stderr is a terminal (ioctl TCGETS, for colours); its opens of
// /proc/self/maps and /proc/self/exe get ENOENT like every open, so stacks are printed as
// module+offset, unsymbolized.
SandboxPolicy& SandboxPolicy::SanitizerRuntime() {
  Add("SanitizerRuntime", {"getrlimit", "mincore", "pipe2", "prctl", "readlink"});
  return Add("SanitizerRuntime", {"ioctl", {Arg(1) == TCGETS}});
}

SandboxPolicy& SandboxPolicy::FileIoAt() {
  return Add("FileIoAt", {"faccessat", "faccessat2", "fchmodat", "fchownat", "getdents64", "linkat",
                          "mkdirat", "mknodat", "openat", "readlinkat", "renameat", "renameat2",
                          "symlinkat", "unlinkat", "utimensat"});
}

SandboxPolicy& SandboxPolicy::FileAttributes() {
  return Add("FileAttributes", {"fchmod", "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr",
                                "fstatfs", "ftruncate", "statfs"});
}

SandboxPolicy& SandboxPolicy::FileData() {
  return Add("FileData", {"fallocate", "fdatasync", "fsync", "preadv", "pwrite64", "pwritev"});
}

SandboxPolicy& SandboxPolicy::Allow(absl::string_view name) {
  return Add("Allow", {std::string(name), {}});
}

SandboxPolicy& SandboxPolicy::AllowIf(SyscallRule rule) { return Add("AllowIf", std::move(rule)); }

SandboxPolicy& SandboxPolicy::AllowIoctl(unsigned long request) {
  return Add("AllowIoctl", {"ioctl", {Arg(1) == request}});
}

SandboxPolicy& SandboxPolicy::KeepCapability(int cap) {
  keep_capabilities.push_back(cap);
  return *this;
}

absl::StatusOr<std::vector<SyscallRule>> SandboxPolicy::Build() const {
  SandboxPolicy all;
  all.Memory().Threads().EventLoop().Time().Signals().DescriptorIo().UnixSocketIo().Process();
  if (kSanitizerBuild) all.SanitizerRuntime();
  all.entries_.insert(all.entries_.end(), entries_.begin(), entries_.end());
  std::vector<SyscallRule> rules;
  for (size_t i = 0; i < all.entries_.size(); ++i) {
    const Entry& entry = all.entries_[i];
    for (size_t j = 0; j < i; ++j) {
      const Entry& earlier = all.entries_[j];
      if (earlier.rule.name != entry.rule.name) continue;
      // Forms of one syscall (ioctl requests, socket types) are alternatives, not duplicates.
      const bool alternatives = !entry.rule.conditions.empty() &&
                                !earlier.rule.conditions.empty() &&
                                !SameConditions(entry.rule, earlier.rule);
      if (alternatives) continue;
      return absl::AlreadyExistsError(
          absl::StrCat("seccomp policy: ", Describe(entry.rule), " from ", entry.group,
                       " is already there as ", Describe(earlier.rule), " from ", earlier.group));
    }
    if (seccomp_syscall_resolve_name(entry.rule.name.c_str()) == __NR_SCMP_ERROR) {
      return absl::InvalidArgumentError(
          absl::StrCat("seccomp policy: unknown syscall ", entry.rule.name, " from ", entry.group));
    }
    rules.push_back(entry.rule);
  }
  // Libraries that probe files after setup (time zone data, locale) are told there is none,
  // unless the device opens files itself (vhost-user-fs, relative to its shared directory).
  for (const char* name : {"openat", "open"}) {
    if (std::none_of(rules.begin(), rules.end(),
                     [name](const SyscallRule& rule) { return rule.name == name; })) {
      rules.push_back({name, {}, ENOENT});
    }
  }
  return rules;
}

absl::Status ApplySandbox(SeccompMode mode, const SandboxPolicy& policy) {
  if (mode == SeccompMode::kOff) return absl::OkStatus();
  absl::StatusOr<std::vector<SyscallRule>> rules = policy.Build();
  if (!rules.ok()) return rules.status();
  tzset();  // glog's timestamps need the time zone: load it while files can still be opened
  const uint32_t deny = mode == SeccompMode::kKill ? SCMP_ACT_TRAP : SCMP_ACT_LOG;
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(deny), seccomp_release);
  if (!ctx) return absl::InternalError("seccomp_init failed");
  for (const SyscallRule& rule : *rules) {
    if (absl::Status s = AddRule(ctx.get(), rule); !s.ok()) return s;
  }
  // Every thread, including any a device started during setup, gets the filter.
  if (seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 1) != 0) {
    return absl::InternalError("seccomp TSYNC");
  }
  if (mode == SeccompMode::kKill) {
    FillSyscallNames();
    struct sigaction action = {};
    action.sa_sigaction = OnForbiddenSyscall;
    action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESETHAND;
    if (sigaction(SIGSYS, &action, nullptr) != 0) return absl::InternalError("sigaction SIGSYS");
  }
  if (seccomp_load(ctx.get()) != 0) return absl::InternalError("seccomp_load failed");
  return absl::OkStatus();
}

}  // namespace vhost
