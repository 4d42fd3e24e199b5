// A passthrough FUSE file system over a shared directory, as the Linux virtiofs client speaks it
// (linux/fuse.h): each request is one descriptor chain, fuse_in_header and arguments readable,
// fuse_out_header and results writable; READ and WRITE data move between guest buffers and files
// with preadv/pwritev, no copy in between.
//
// Nothing outside the shared directory is reachable: every inode is an O_PATH descriptor, every
// operation takes one path component relative to its parent's descriptor with *at() calls and
// O_NOFOLLOW, names with '/' are refused, ".." of the root is the root, and files are (re)opened
// through /proc/self/fd, held open from start-up, so a symlink is never followed.
#ifndef VHOST_USER_FS_FUSE_SERVER_H_
#define VHOST_USER_FS_FUSE_SERVER_H_

#include <linux/fuse.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/virtio/descriptor_chain.h"
#include "vhost-user-fs/id_map.h"
#include "vhost-user-fs/inode_table.h"
#include "vhost-user-fs/request_waits.h"

namespace vhost {

enum class CacheMode { kNever, kAuto, kAlways };

struct FsOptions {
  std::string shared_dir;
  CacheMode cache = CacheMode::kAuto;
  bool xattr = false;
  // MKNOD may make character and block device nodes (never opened through the server anyway).
  bool allow_device_nodes = false;
  // Directories on another file system than their parent are marked as submounts, so the guest
  // mounts them separately (their own st_dev, no inode number clashes).
  bool announce_submounts = false;
  // POSIX record locks held on the host (OFD locks, one open file per lock owner), so they
  // hold against host processes and other guests. SETLKW blocks the thread serving it until
  // the lock is granted, FUSE_INTERRUPT names it, or its queue stops (EINTR).
  bool posix_lock = false;
  // At most this many (file, lock owner) pairs hold host locks at a time; more get ENOLCK.
  size_t max_lock_files = 4096;
  // At most this many directories open at a time (each holds a descriptor and a 32 KiB batch
  // of entries); OPENDIR past it gets EMFILE until the guest closes some.
  size_t max_open_dirs = 4096;
  IdMap uids, gids;  // guest ids shown as other host ids
};

class FuseServer {
 public:
  static constexpr uint32_t kMaxWrite = 1 << 20;
  // The oldest FUSE minor served (EPROTO below it): from 7.12 on, every request a client sends
  // has the layout it has today (later fields took the place of padding, or come only with an
  // INIT flag we do not agree to), and replies are today's but for fuse_init_out before 7.23.
  // Linux's virtiofs client started at 7.31 (5.4).
  static constexpr uint32_t kMinMinor = 12;

  // Opens the shared directory and /proc/self/fd itself (unsandboxed: tests, --sandbox=none).
  static absl::StatusOr<std::unique_ptr<FuseServer>> Create(const FsOptions& options);
  // Serves `root` (the shared directory) reopening files through `proc_fds` (/proc/self/fd), as
  // EnterFsSandbox opened them inside the sandbox.
  static absl::StatusOr<std::unique_ptr<FuseServer>> Create(const FsOptions& options, UniqueFd root,
                                                            UniqueFd proc_fds);

  // Serves one request; returns how many bytes it wrote into the chain's writable part (0 when
  // the request has no reply: FORGET, BATCH_FORGET, INTERRUPT, or no room for a header).
  uint32_t Handle(const DescriptorChain& chain);

  InodeTable& inodes() { return *inodes_; }

  // A session ends (DESTROY, a new INIT, the device reset): every inode but the root, every open
  // file and every lock file goes, and with them the host locks of the guest that was.
  void Reset();
  // Live migration (fs_state.cc), while no request runs: the session (the inodes the guest
  // holds and its open files) as bytes, and those bytes taken in place of the session.
  absl::StatusOr<std::string> SaveState();
  absl::Status LoadState(absl::string_view state);
  // The waiting requests (SETLKW), for stopping queues.
  RequestWaits& waits() { return waits_; }

 private:
  FuseServer(const FsOptions& options, UniqueFd root, UniqueFd proc_fds);
  class Request;

  int Dispatch(Request& r);
  // The operations: each returns 0 (reply written into r) or a positive errno.
  int Init(Request& r);
  int Lookup(Request& r);
  int Forget(Request& r);
  int BatchForget(Request& r);
  int GetAttr(Request& r);
  int SetAttr(Request& r);
  int ReadLink(Request& r);
  int MakeNode(Request& r);  // MKNOD, MKDIR, SYMLINK
  int Link(Request& r);
  int Remove(Request& r);  // UNLINK, RMDIR
  int Rename(Request& r);  // RENAME, RENAME2
  int Open(Request& r);    // OPEN, OPENDIR
  int Create(Request& r);
  int Read(Request& r);
  int Write(Request& r);
  int Release(Request& r);  // RELEASE, RELEASEDIR
  int Flush(Request& r);
  int Fsync(Request& r);    // FSYNC, FSYNCDIR
  int ReadDir(Request& r);  // READDIR, READDIRPLUS
  int StatFs(Request& r);
  int Access(Request& r);
  int Xattr(Request& r);  // GET/SET/LIST/REMOVEXATTR
  int Fallocate(Request& r);
  int Lseek(Request& r);
  int CopyFileRange(Request& r);
  int SyncFs(Request& r);
  int Lock(Request& r);  // GETLK, SETLK, SETLKW

  // Entry for `name` in `parent`: looked up, counted, written as fuse_entry_out.
  int LookupEntry(const Inode& parent, const char* name, fuse_entry_out* out);
  int StatInode(const Inode& inode, struct stat* st);
  // A real descriptor for the inode, opened with `flags` through /proc/self/fd.
  int Reopen(const Inode& inode, int flags);
  void FillEntry(uint64_t nodeid, const struct stat& st, fuse_entry_out* out) const;
  void FillAttr(const struct stat& st, fuse_attr* attr) const;
  uint64_t Timeout() const;
  // Migration: `path` (relative to the shared directory) opened O_PATH one component at a
  // time, never through a symlink or out of the share; and the path of an open descriptor.
  absl::StatusOr<UniqueFd> ResolvePath(const std::string& path);
  absl::StatusOr<std::string> PathOf(int fd, const std::string& root_link);

  const FsOptions options_;
  UniqueFd proc_fds_;  // /proc/self/fd
  std::unique_ptr<InodeTable> inodes_;
  // --posix-lock: the open file carrying each (node, lock owner)'s locks; closing it (FLUSH of
  // that owner) releases them, as close() does for a process.
  std::mutex locks_mu_;
  std::map<std::pair<uint64_t, uint64_t>, std::shared_ptr<OpenFile>> lock_files_;
  RequestWaits waits_;
  // What the last FUSE_INIT agreed: replies carry no bit the client does not know. Before any
  // INIT (and after a migration, which does not carry them) our own minor and every flag.
  std::atomic<uint32_t> session_minor_{FUSE_KERNEL_MINOR_VERSION};
  std::atomic<uint64_t> session_flags_{~uint64_t{0}};
};

}  // namespace vhost

#endif  // VHOST_USER_FS_FUSE_SERVER_H_
