// vhost-user-fs: a host directory shared with the guest (virtio-fs).
#include <fcntl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/runtime/daemon.h"
#include "common/sandbox/sandbox.h"
#include "gflags/gflags.h"
#include "vhost-user-fs/fs_device.h"
#include "vhost-user-fs/fs_sandbox.h"

DEFINE_string(shared_dir, "", "The host directory the guest mounts");
DEFINE_string(tag, "myfs",
              "The mount tag in config space (QEMU's vhost-user-fs-pci sets its own tag= and "
              "ignores this)");
DEFINE_string(cache, "auto",
              "never: no client caching (direct I/O, attributes always fresh); auto: caches "
              "trusted for 1 s; always: for a day (the host does not change the directory)");
DEFINE_bool(xattr, false, "Pass extended attributes through");
DEFINE_bool(allow_device_nodes, false,
            "Let the guest make character and block device nodes in the shared directory "
            "(MKNOD; EPERM without). The daemon never opens them (nor FIFOs or sockets)");
DEFINE_bool(announce_submounts, false,
            "Tell the guest which directories are mount points of other file systems, so it "
            "mounts them separately (distinct devices, no inode number clashes)");
DEFINE_string(sandbox, "namespace",
              "Confinement to --shared-dir on top of seccomp: namespace (mount/network/IPC "
              "namespaces and pivot_root into it; a user namespace when not root), chroot "
              "(root only), none");
DEFINE_string(translate_uid, "",
              "Guest user ids shown as other host ids: GUEST:HOST:COUNT[,...] (e.g. 0:1000:1 "
              "makes the guest's root the host's user 1000); others pass unchanged unless that "
              "would alias a mapped id: such guest ids may not create or own files (EPERM), "
              "such host ids show as 65534");
DEFINE_string(translate_gid, "", "The same for group ids");
DEFINE_bool(posix_lock, false,
            "Hold the guest's POSIX record locks on the host (against host processes and other "
            "guests); needs --thread-pool-size of 2 or more, as a waiting lock holds a thread");
DEFINE_int32(thread_pool_size, 0,
             "Threads serving requests of all queues in parallel (0: each queue's own thread "
             "serves its requests in order, the lowest latency for one request at a time)");
DEFINE_int32(num_request_queues, 8, "Request queues offered (the front end uses up to this)");

namespace {

// Every inode the guest holds is an open O_PATH descriptor: take all the descriptors the hard
// limit allows, as virtiofsd does.
void RaiseDescriptorLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// The device is made from the flags before the sandbox; its FUSE server only after it (see
// Confine), so that nothing the server keeps open leads outside.
struct FsDaemon {
  vhost::FsOptions options;
  vhost::FsDevice* device = nullptr;
};

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice(FsDaemon& daemon) {
  using absl::InvalidArgumentError;
  RaiseDescriptorLimit();
  vhost::FsOptions& options = daemon.options;
  if (FLAGS_shared_dir.empty()) return InvalidArgumentError("--shared-dir is required");
  options.shared_dir = FLAGS_shared_dir;
  if (FLAGS_cache == "never" || FLAGS_cache == "none") {
    options.cache = vhost::CacheMode::kNever;
  } else if (FLAGS_cache == "auto") {
    options.cache = vhost::CacheMode::kAuto;
  } else if (FLAGS_cache == "always") {
    options.cache = vhost::CacheMode::kAlways;
  } else {
    return InvalidArgumentError("--cache must be never, auto or always");
  }
  options.xattr = FLAGS_xattr;
  options.allow_device_nodes = FLAGS_allow_device_nodes;
  options.announce_submounts = FLAGS_announce_submounts;
  absl::StatusOr<vhost::IdMap> uids = vhost::IdMap::Parse(FLAGS_translate_uid, "--translate-uid");
  if (!uids.ok()) return uids.status();
  absl::StatusOr<vhost::IdMap> gids = vhost::IdMap::Parse(FLAGS_translate_gid, "--translate-gid");
  if (!gids.ok()) return gids.status();
  options.uids = *uids;
  options.gids = *gids;
  if (FLAGS_tag.empty() || FLAGS_tag.size() > 36) {
    return InvalidArgumentError("--tag must be 1 to 36 bytes");
  }
  if (FLAGS_num_request_queues < 1 || FLAGS_num_request_queues > 64) {
    return InvalidArgumentError("--num-request-queues must be 1 to 64");
  }
  if (!vhost::ParseFsSandbox(FLAGS_sandbox).ok()) {
    return InvalidArgumentError("--sandbox must be namespace, chroot or none");
  }
  if (FLAGS_thread_pool_size < 0 || FLAGS_thread_pool_size > 1024) {
    return InvalidArgumentError("--thread-pool-size must be 0 to 1024");
  }
  if (FLAGS_posix_lock && FLAGS_thread_pool_size < 2) {
    return InvalidArgumentError("--posix-lock needs --thread-pool-size of 2 or more");
  }
  options.posix_lock = FLAGS_posix_lock;
  // Checked now for a usage error; opened for good only inside the sandbox.
  if (!vhost::UniqueFd(open(options.shared_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC))) {
    return InvalidArgumentError(
        absl::StrCat("--shared-dir: ", options.shared_dir, ": ", strerror(errno)));
  }
  auto device = std::make_unique<vhost::FsDevice>(nullptr, FLAGS_tag, FLAGS_num_request_queues,
                                                  FLAGS_thread_pool_size);
  daemon.device = device.get();
  return device;
}

// Enters the sandbox, then opens the shared directory (as the new root) and /proc/self/fd
// for the FUSE server.
absl::Status Confine(FsDaemon& daemon) {
  absl::StatusOr<vhost::FsSandboxFds> fds =
      vhost::EnterFsSandbox(*vhost::ParseFsSandbox(FLAGS_sandbox), FLAGS_shared_dir);
  if (!fds.ok()) return fds.status();
  absl::StatusOr<std::unique_ptr<vhost::FuseServer>> server =
      vhost::FuseServer::Create(daemon.options, std::move(fds->root), std::move(fds->proc_fds));
  if (!server.ok()) return server.status();
  daemon.device->set_server(*std::move(server));
  // Without --allow-device-nodes not even a compromised daemon can make one.
  return vhost::DropCapabilities(vhost::FsCapabilities(FLAGS_allow_device_nodes));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-fs";
  spec.description =
      "Shares a host directory with a guest over vhost-user (virtio-fs): a passthrough FUSE "
      "file system confined to --shared-dir.";
  spec.backend_type = "fs";
  // libvirt (<filesystem> with <binary path=...>) probes this: with it, it passes virtiofsd's
  // separate options (--fd=N --shared-dir DIR --cache never|always --sandbox MODE --xattr
  // --thread-pool-size=N), which are ours; without it, the old `-o source=DIR,...` form.
  spec.capability_features = {"separate-options"};
  spec.short_names = {{'s', "socket_path"}};
  auto daemon = std::make_shared<FsDaemon>();
  spec.create_device = [daemon] { return CreateDevice(*daemon); };
  spec.before_seccomp = [daemon] { return Confine(*daemon); };
  spec.sandbox = vhost::FsSandboxPolicy();
  return vhost::RunDaemon(argc, argv, spec);
}
