#include "common/sandbox.h"

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

// What every daemon does after setup: socket I/O with fds, guest memory maps, eventfds and
// epoll, threads, time, signals, logging to stderr.
constexpr const char* kCommonSyscalls[] = {
    "accept",
    "accept4",
    "brk",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "dup",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "eventfd2",
    "exit",
    "exit_group",
    "fcntl",
    "fstat",
    "futex",
    "getpid",
    "getrandom",
    "gettid",
    "gettimeofday",
    "getuid",
    "geteuid",
    "lseek",
    "madvise",
    "munmap",
    "nanosleep",
    "newfstatat",
    "poll",
    "ppoll",
    "read",
    "readv",
    "recvfrom",
    "recvmsg",
    "restart_syscall",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_yield",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "setsockopt",
    "getsockopt",
    "shutdown",
    "sigaltstack",
    "write",
    "writev",
    "mremap",
    "getcpu",
    "uname",
    "statx",
};

// Sanitizer runtimes make syscalls of their own (e.g. pipe2 to probe whether memory is
// readable); sanitizer builds allow them so the tests exercise the real policy otherwise.
// A report (seen with strace under --seccomp=log) also asks whether stderr is a terminal
// (ioctl TCGETS, for colours); its opens of /proc/self/maps and /proc/self/exe get ENOENT like
// every open, so stacks are printed as module+offset, unsymbolized.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr const char* kSanitizerSyscalls[] = {
    "pipe2", "readlink", "getrlimit", "prctl", "sched_getaffinity", "munmap", "mincore"};
constexpr bool kSanitizerBuild = true;
#else
constexpr const char* kSanitizerSyscalls[] = {"getpid"};  // nothing extra
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
  if (seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, compare.size(), compare.data()) != 0) {
    return absl::InternalError("seccomp_rule_add failed for " + rule.name);
  }
  return absl::OkStatus();
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

absl::Status ApplySandbox(SeccompMode mode, const SandboxPolicy& policy) {
  if (mode == SeccompMode::kOff) return absl::OkStatus();
  tzset();  // glog's timestamps need the time zone: load it while files can still be opened
  const uint32_t deny = mode == SeccompMode::kKill ? SCMP_ACT_TRAP : SCMP_ACT_LOG;
  std::unique_ptr<void, void (*)(scmp_filter_ctx)> ctx(seccomp_init(deny), seccomp_release);
  if (!ctx) return absl::InternalError("seccomp_init failed");

  auto allow = [&](const std::string& name) -> absl::Status {
    const int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) return absl::InvalidArgumentError("unknown syscall " + name);
    if (seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 0) != 0) {
      return absl::InternalError("seccomp_rule_add failed for " + name);
    }
    return absl::OkStatus();
  };
  for (const char* name : kCommonSyscalls) {
    if (absl::Status s = allow(name); !s.ok()) return s;
  }
  for (const char* name : kSanitizerSyscalls) {
    if (absl::Status s = allow(name); !s.ok()) return s;
  }
  for (const std::string& name : policy.extra_syscalls) {
    if (absl::Status s = allow(name); !s.ok()) return s;
  }
  // Signals to its own threads (pthread_kill, raise, abort) and its own resource limits
  // (getrlimit is prlimit64(0, ...)), never another process's. The filter is installed by the
  // process that serves (after any fork into a PID namespace): getpid() now is the daemon's.
  const uint64_t self = getpid();
  std::vector<SyscallRule> rules = {
      {"tgkill", {Arg(0) == self}}, {"prlimit64", {Arg(0) == 0}}, {"prlimit64", {Arg(0) == self}}};
  rules.insert(rules.end(), policy.conditional_syscalls.begin(), policy.conditional_syscalls.end());
  for (const SyscallRule& rule : rules) {
    if (absl::Status s = AddRule(ctx.get(), rule); !s.ok()) return s;
  }
  std::vector<unsigned long> ioctls = policy.ioctl_requests;
  if (kSanitizerBuild) ioctls.push_back(TCGETS);
  for (unsigned long request : ioctls) {
    if (seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_EQ, request)) != 0) {
      return absl::InternalError("seccomp rule for ioctl");
    }
  }
  // Memory may be mapped (guest RAM, thread stacks) but never made executable.
  for (int nr : {SCMP_SYS(mmap), SCMP_SYS(mprotect)}) {
    if (seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, nr, 1,
                         SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)) != 0) {
      return absl::InternalError("seccomp rule for mmap/mprotect");
    }
  }
  // Threads yes, new processes no. glibc tries clone3 first and falls back to clone on ENOSYS.
  if (seccomp_rule_add(ctx.get(), SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                       SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)) != 0 ||
      seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) != 0) {
    return absl::InternalError("seccomp rule for clone");
  }
  // Libraries that probe files after setup (time zone data, locale) are told there is none,
  // unless the device opens files itself (vhost-user-fs, relative to its shared directory).
  const auto& extra = policy.extra_syscalls;
  for (const char* name : {"openat", "open"}) {
    if (std::find(extra.begin(), extra.end(), name) != extra.end()) continue;
    if (seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOENT), seccomp_syscall_resolve_name(name),
                         0) != 0) {
      return absl::InternalError("seccomp rule for open");
    }
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
