#include "common/runtime/daemon.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "common/runtime/flags.h"
#include "common/runtime/release_startup_pages.h"
#include "common/runtime/service_notify.h"
#include "common/runtime/socket_activation.h"
#include "common/runtime/stats_socket.h"
#include "common/runtime/unix_listener.h"
#include "common/vhost_user/backend.h"
#include "gflags/gflags.h"
#include "glog/logging.h"

DEFINE_string(socket_path, "", "Unix socket to listen on for the front end (e.g. QEMU)");
DEFINE_int32(fd, -1,
             "An inherited, already listening Unix socket to accept front ends on "
             "(instead of --socket-path)");
DEFINE_bool(print_capabilities, false, "Print the back end's capabilities as JSON and exit");
DEFINE_string(seccomp, "kill",
              "Seccomp sandbox: kill (forbidden syscalls kill the daemon), log "
              "(they are logged by the kernel), off");
DEFINE_bool(exit_on_disconnect, false,
            "Exit when the front end disconnects instead of waiting for the next one");
DEFINE_bool(packed_ring, false,
            "Offer packed virtqueues. Off by default: some QEMU front ends pass the bit on to "
            "the back end without offering it to the guest (vhost-user-input), others force it "
            "on the guest whatever their packed= property says (vhost-user-rng)");
DEFINE_int32(socket_count, 1,
             "Daemons that serve several guests: how many sockets, each its own device; "
             "--socket-path then gets 0, 1, ... appended");
DEFINE_int32(poll_us, 32,
             "Busy-poll each queue this many microseconds after it runs dry before sleeping "
             "(trades CPU for latency, as QEMU's 32 us default does; 0 disables)");
DEFINE_string(stats_socket, "",
              "Unix socket answering \"stats\" with per-queue statistics as JSON "
              "(vhost-user-stat reads it)");

#if defined(__SANITIZE_ADDRESS__)
// LeakSanitizer's exit-time check forks a tracer (clone without CLONE_THREAD, ptrace), which the
// sandbox rightly forbids. Sanitizer builds of the daemons skip it; the engine's leak checking
// happens in the unit tests, which run unsandboxed.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
#endif

namespace vhost {
namespace {

constexpr char kVersion[] = "0.1.0";

bool HasArg(int argc, char** argv, absl::string_view flag) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == absl::StrCat("--", flag) || arg == absl::StrCat("-", flag)) return true;
  }
  return false;
}

// --help: this program's own flags and the logging ones, not every library's.
void PrintHelp(const DaemonSpec& spec) {
  std::printf("Usage: %s --socket-path=PATH [options]\n%s\n\nOptions:\n", spec.program.c_str(),
              spec.description.c_str());
  std::vector<gflags::CommandLineFlagInfo> flags;
  gflags::GetAllFlags(&flags);
  const char* kLoggingFlags[] = {"v", "minloglevel", "logtostderr", "vmodule"};
  for (const auto& f : flags) {
    const bool ours =
        absl::StrContains(f.filename, "common/") || absl::StrContains(f.filename, "vhost-user-");
    bool logging = false;
    for (const char* name : kLoggingFlags) logging |= f.name == name;
    if (!ours && !logging) continue;
    std::string name = f.name;
    std::replace(name.begin(), name.end(), '_', '-');
    std::printf("  --%s (%s, default \"%s\")\n      %s\n", name.c_str(), f.type.c_str(),
                f.default_value.c_str(), f.description.c_str());
  }
  std::printf(
      "  --print-capabilities\n      Print capabilities as JSON and exit\n"
      "  --version\n      Print the version and exit\n  --help\n      This text\n");
}

// Set when the listener came from socket activation (LISTEN_FDS), so errors name that.
bool socket_activated = false;

// Set when --fd is a connected socket (libvirt's vhost-user-gpu hands one end of a socketpair):
// that one front end is served, and the daemon exits when it goes away.
bool inherited_connection = false;

absl::StatusOr<UniqueFd> InheritedListener(int fd) {
  int accepting = 1, domain = 0, type = 0;
  socklen_t len = sizeof(int);
  if (!socket_activated && getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 &&
      !accepting && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 &&
      domain == AF_UNIX && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
      type == SOCK_STREAM) {
    inherited_connection = true;
    return UniqueFd(fd);
  }
  if (absl::Status s = CheckListeningUnixSocket(fd, socket_activated ? "LISTEN_FDS" : "--fd");
      !s.ok()) {
    return s;
  }
  return UniqueFd(fd);
}

// Socket activation: the listener passed as fd 3 is served as --fd=3 would be. Exits with a
// usage error when the variables are wrong or a socket is also given on the command line.
void TakeSocketActivation(const DaemonSpec& spec) {
  absl::StatusOr<int> fd = TakeActivatedListener();
  if (!fd.ok()) ExitWithUsageError(spec.program, std::string(fd.status().message()));
  if (*fd < 0) return;
  if (!FLAGS_socket_path.empty() || FLAGS_fd >= 0) {
    ExitWithUsageError(spec.program,
                       absl::StrCat(FLAGS_socket_path.empty() ? "--fd" : "--socket-path",
                                    " conflicts with the socket passed by socket activation "
                                    "(LISTEN_FDS): give neither"));
  }
  FLAGS_fd = *fd;
  socket_activated = true;
}

// Blocks the termination signals in every thread and returns a signalfd for them.
absl::StatusOr<UniqueFd> TerminationSignals() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return absl::InternalError("sigmask");
  UniqueFd fd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) return absl::ErrnoToStatus(errno, "signalfd");
  return fd;
}

// Reads a pending signal. SIGHUP asks the device to reload host state; the others terminate.
bool HandleSignal(int signal_fd, VirtioDevice* device) {
  signalfd_siginfo info;
  if (read(signal_fd, &info, sizeof(info)) != sizeof(info)) return false;
  if (info.ssi_signo == SIGHUP) {
    LOG(INFO) << "SIGHUP: reloading";
    device->Reload();
    return false;
  }
  return true;
}

// How long a daemon waits without a front end before it gives its start-up pages back again.
constexpr int kSettleMs = 1000;

// Accepts front ends on `listener` one at a time until `wake_fd` fires and `on_wake` says stop.
// `status` hears of it as front ends come and go. `startup_pages` (may be null): released just
// before the first wait, and again once no front end came for kSettleMs (what a front end that
// came and went, or a late start-up task, faulted back in). Code run after a release faults its
// pages back 64 KiB at a time, so each is followed by nothing but the wait.
int Serve(const DaemonSpec& spec, const std::string& name, UniqueFd listener, VirtioDevice* device,
          int wake_fd, const std::function<bool()>& on_wake, ServiceStatus* status,
          StatsRegistry* stats, const std::string& listener_name,
          const StartupPages* startup_pages = nullptr) {
  BackendOptions options;
  options.busy_poll = absl::Microseconds(FLAGS_poll_us);
  options.offer_packed_ring = FLAGS_packed_ring;
  Backend backend(device, options);
  const ScopedStats counted(stats, listener_name, &backend);
  LOG(INFO) << spec.program << " " << kVersion << " ready for a front end" << name;
  status->ListenerReady();
  // After the log line and the notification, whose code would fault pages back in.
  if (startup_pages != nullptr) startup_pages->Release();
  if (inherited_connection) {
    LOG(INFO) << "front end connected" << name;
    status->FrontEndConnected();
    absl::Status served = backend.Serve(std::move(listener), wake_fd, on_wake);
    if (!served.ok() && !absl::IsCancelled(served)) {
      LOG(ERROR) << "connection dropped" << name << ": " << served << "; nothing more to serve";
      return 1;
    }
    LOG(INFO) << "front end disconnected" << name << "; nothing more to serve";
    return 0;
  }
  int timeout_ms = startup_pages != nullptr ? kSettleMs : -1;
  for (;;) {
    pollfd fds[2] = {{listener.get(), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int ready = poll(fds, 2, timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "poll";
      return 1;
    }
    if (ready == 0) {
      // Logged before: glog's code, run after the release, would fault about 1.5 MB of the
      // executable back in (measured on rng). The poll comes next, with no code in between.
      LOG(INFO) << "idle: giving start-up pages back" << name;
      startup_pages->Release();
      timeout_ms = -1;
      continue;
    }
    if ((fds[1].revents & POLLIN) && on_wake()) break;
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd connection(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!connection) {
      PLOG(WARNING) << "accept";
      continue;
    }
    LOG(INFO) << "front end connected" << name;
    status->FrontEndConnected();
    absl::Status served = backend.Serve(std::move(connection), wake_fd, on_wake);
    if (absl::IsCancelled(served)) break;
    if (served.ok()) {
      LOG(INFO) << "front end disconnected" << name << "; device reset";
    } else {
      LOG(ERROR) << "connection dropped" << name << ": " << served << "; device reset";
    }
    if (FLAGS_exit_on_disconnect) return 0;  // the caller tells the supervisor it stops
    status->FrontEndDisconnected();
  }
  return 0;
}

// --socket-count=N (or vsock's --vm): instance i serves its own socket on a thread of its own.
// The main thread owns the signalfd and wakes every instance through its own eventfd: to stop,
// or (SIGHUP) to reload its device on the instance's thread, where a single-socket daemon's
// Reload() runs too.
int ServeInstances(const DaemonSpec& spec, std::vector<UniqueFd> listeners,
                   std::vector<std::unique_ptr<VirtioDevice>>& devices, int signal_fd,
                   ServiceStatus* service_status, StatsRegistry* stats,
                   const std::vector<std::string>& listener_names) {
  struct Instance {
    UniqueFd wake;
    std::atomic<bool> reload{false};
  };
  std::vector<Instance> instances(devices.size());
  for (Instance& instance : instances) {
    instance.wake = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!instance.wake) {
      PLOG(ERROR) << "eventfd";
      return 1;
    }
  }
  UniqueFd all_gone(eventfd(0, EFD_CLOEXEC));
  if (!all_gone) {
    PLOG(ERROR) << "eventfd";
    return 1;
  }
  std::atomic<bool> stopping{false};
  std::atomic<int> running{static_cast<int>(devices.size())};
  std::atomic<int> status{0};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < devices.size(); ++i) {
    threads.emplace_back([&, i] {
      Instance& instance = instances[i];
      auto on_wake = [&] {
        eventfd_t ignored;
        eventfd_read(instance.wake.get(), &ignored);
        if (stopping) return true;
        if (instance.reload.exchange(false)) devices[i]->Reload();
        return false;
      };
      const int s =
          Serve(spec, absl::StrCat(" on socket ", i), std::move(listeners[i]), devices[i].get(),
                instance.wake.get(), on_wake, service_status, stats, listener_names[i]);
      if (s != 0) status = s;
      if (--running == 0) eventfd_write(all_gone.get(), 1);  // --exit-on-disconnect
    });
  }
  for (;;) {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {all_gone.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[1].revents) break;
    signalfd_siginfo info;
    if (!(fds[0].revents & POLLIN) || read(signal_fd, &info, sizeof(info)) != sizeof(info)) {
      continue;
    }
    if (info.ssi_signo != SIGHUP) {
      LOG(INFO) << "terminating on signal";
      break;
    }
    LOG(INFO) << "SIGHUP: reloading every instance";
    for (Instance& instance : instances) {
      instance.reload = true;
      eventfd_write(instance.wake.get(), 1);
    }
  }
  service_status->Stopping();
  stopping = true;
  for (Instance& instance : instances) eventfd_write(instance.wake.get(), 1);
  for (std::thread& t : threads) t.join();
  return status;
}

// The devices to serve and their sockets: --socket-path (or --fd), or with --socket-count
// several numbered sockets, or what the daemon's create_instances says.
absl::StatusOr<std::vector<DaemonInstance>> CreateInstances(const DaemonSpec& spec) {
  std::vector<DaemonInstance> instances;
  if (spec.create_instances) {
    absl::StatusOr<std::vector<DaemonInstance>> made = spec.create_instances();
    if (made.ok() && made->empty()) return absl::InvalidArgumentError("no device to serve");
    return made;
  }
  if (FLAGS_socket_path.empty() == (FLAGS_fd < 0)) {
    return absl::InvalidArgumentError("exactly one of --socket-path and --fd is required");
  }
  const int count = FLAGS_socket_count;
  if (count < 1 || count > 64) {
    return absl::InvalidArgumentError("--socket-count must be 1 to 64");
  }
  if (count > 1 && !spec.create_instance) {
    return absl::InvalidArgumentError("--socket-count: this daemon serves one front end");
  }
  if (count > 1 && FLAGS_fd >= 0) {
    return absl::InvalidArgumentError("--socket-count needs --socket-path, not --fd");
  }
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<std::unique_ptr<VirtioDevice>> device =
        spec.create_instance ? spec.create_instance(i, count) : spec.create_device();
    if (!device.ok()) return device.status();
    DaemonInstance instance;
    instance.socket_path = FLAGS_fd >= 0 ? ""
                           : count == 1  ? FLAGS_socket_path
                                         : absl::StrCat(FLAGS_socket_path, i);
    instance.device = *std::move(device);
    instances.push_back(std::move(instance));
  }
  return instances;
}

}  // namespace

std::string CapabilitiesJson(const DaemonSpec& spec) {
  std::vector<std::string> quoted;
  for (const std::string& f : spec.capability_features)
    quoted.push_back(absl::StrCat("\"", f, "\""));
  return absl::StrCat("{\n  \"type\": \"", spec.backend_type, "\",\n  \"features\": [",
                      absl::StrJoin(quoted, ", "), "]\n}\n");
}

int RunDaemon(int argc, char** argv, const DaemonSpec& spec) {
  // The conventions say --print-capabilities ignores every other argument.
  if (HasArg(argc, argv, "print-capabilities") || HasArg(argc, argv, "print_capabilities")) {
    std::fputs(CapabilitiesJson(spec).c_str(), stdout);
    return 0;
  }
  if (HasArg(argc, argv, "help") || HasArg(argc, argv, "h")) {
    PrintHelp(spec);
    return 0;
  }
  if (HasArg(argc, argv, "version")) {
    std::printf("%s %s\n", spec.program.c_str(), kVersion);
    return 0;
  }
  FLAGS_logtostderr = true;  // daemons log to stderr; the supervisor keeps the log
  if (absl::Status s = ParseFlags(argc, argv, spec.short_names, spec.repeatable_flags); !s.ok()) {
    ExitWithUsageError(spec.program, std::string(s.message()));
  }
  absl::StatusOr<SeccompMode> seccomp = ParseSeccompMode(FLAGS_seccomp);
  if (!seccomp.ok()) ExitWithUsageError(spec.program, std::string(seccomp.status().message()));
  if (FLAGS_poll_us < 0) ExitWithUsageError(spec.program, "--poll-us must not be negative");
  TakeSocketActivation(spec);  // before the instances: some check --fd themselves (vsock)
  google::InitGoogleLogging(argv[0]);
  // Connected now, before a device's confinement (network namespace, chroot) and the sandbox.
  const ServiceNotifier notifier = ServiceNotifier::FromEnvironment();
  // Blocked before the socket appears: a supervisor that sees it may signal at once.
  absl::StatusOr<UniqueFd> signals = TerminationSignals();
  if (!signals.ok()) {
    LOG(ERROR) << signals.status();
    return 1;
  }

  absl::StatusOr<std::vector<DaemonInstance>> instances = CreateInstances(spec);
  if (!instances.ok()) {
    if (absl::IsInvalidArgument(instances.status())) {
      ExitWithUsageError(spec.program, std::string(instances.status().message()));
    }
    LOG(ERROR) << "cannot create the device: " << instances.status();
    return 1;
  }
  std::vector<UniqueFd> listeners;
  std::vector<std::string> listener_names;  // for the service manager's status line
  std::vector<std::unique_ptr<VirtioDevice>> devices;
  // Declared after the devices (in `instances`, then `devices`): runs before they are destroyed.
  absl::Cleanup stop_callers = [&spec] {
    if (spec.before_devices_destroyed) spec.before_devices_destroyed();
  };
  for (DaemonInstance& instance : *instances) {
    absl::StatusOr<UniqueFd> listener =
        instance.socket_path.empty() ? InheritedListener(FLAGS_fd)
                                     : ListenOnUnixSocket(instance.socket_path, "--socket-path");
    if (!listener.ok()) {
      if (absl::IsInvalidArgument(listener.status())) {
        ExitWithUsageError(spec.program, std::string(listener.status().message()));
      }
      LOG(ERROR) << listener.status();
      return 1;
    }
    listener_names.push_back(DescribeListener(listener->get()));
    listeners.push_back(*std::move(listener));
    devices.push_back(std::move(instance.device));
  }
  ServiceStatus service_status(&notifier, listener_names);
  // Bound now, before a device's confinement hides the path; served once the sandbox is on.
  StatsRegistry stats(spec.program, kVersion);
  UniqueFd stats_listener;
  if (!FLAGS_stats_socket.empty()) {
    absl::StatusOr<UniqueFd> listener = ControlSocket::Listen(FLAGS_stats_socket, "--stats-socket");
    if (!listener.ok()) {
      if (absl::IsInvalidArgument(listener.status())) {
        ExitWithUsageError(spec.program, std::string(listener.status().message()));
      }
      LOG(ERROR) << listener.status();
      return 1;
    }
    stats_listener = *std::move(listener);
  }
  const StartupPages startup_pages = StartupPages::Find();  // before a chroot hides /proc
  if (spec.before_seccomp) {
    if (absl::Status s = spec.before_seccomp(); !s.ok()) {
      LOG(ERROR) << "cannot confine the daemon: " << s;
      return 1;
    }
  }
  // Whatever the seccomp mode: a daemon started as root serves with only what its device needs.
  if (absl::Status s = DropCapabilities(spec.sandbox.keep_capabilities); !s.ok()) {
    LOG(ERROR) << "cannot drop capabilities: " << s;
    return 1;
  }
  if (absl::Status s = ApplySandbox(*seccomp, spec.sandbox); !s.ok()) {
    LOG(ERROR) << "cannot apply the seccomp sandbox: " << s;
    return 1;
  }
  // Stopped (its thread joined) before the registry and the back ends it reads go away.
  std::unique_ptr<ControlSocket> stats_socket;
  if (stats_listener) stats_socket = ServeStats(std::move(stats_listener), &stats);
  if (devices.size() > 1) {
    startup_pages.Release();  // one daemon, several threads serving: here, and not again
    return ServeInstances(spec, std::move(listeners), devices, signals->get(), &service_status,
                          &stats, listener_names);
  }
  VirtioDevice* device = devices[0].get();
  const int signal_fd = signals->get();
  const int status = Serve(
      spec, "", std::move(listeners[0]), device, signal_fd,
      [&] {
        if (!HandleSignal(signal_fd, device)) return false;
        service_status.Stopping();
        return true;
      },
      &service_status, &stats, listener_names[0], &startup_pages);
  service_status.Stopping();  // --exit-on-disconnect, or an error (after a signal: sent already)
  if (status == 0) LOG(INFO) << "terminating";
  return status;
}

}  // namespace vhost
