#include "vhost-user-fs/fuse_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "common/virtio/chain_cursor.h"
#include "glog/logging.h"

namespace vhost {
namespace {

constexpr size_t kOutHeader = sizeof(fuse_out_header);
// Arguments are copied out of guest memory once; no request but WRITE (whose data is not
// copied) and SETXATTR has more than names and fixed structures.
constexpr size_t kMaxArgs = 64 * 1024 + 2 * 256;
// FUSE_INIT's body before 7.36: major, minor, max_readahead, flags.
constexpr size_t kInitInShort = offsetof(fuse_init_in, flags2);

// The caller's fsuid/fsgid while a request creates a file, when we run as root, so the file
// belongs to the guest's user. (Permission checks are the guest kernel's: virtiofs mounts with
// default_permissions.) Switching costs two credential commits each way, so only when needed.
bool CreatesFiles(uint32_t opcode) {
  return opcode == FUSE_CREATE || opcode == FUSE_MKNOD || opcode == FUSE_MKDIR ||
         opcode == FUSE_SYMLINK || opcode == FUSE_LINK;
}

// FUSE_HANDLE_KILLPRIV: before data or size of the open file `fd` changes, what the kernel does
// for a writer without CAP_FSETID (we keep CAP_FSETID, so the host kernel does not): setuid
// goes, and setgid with group execute (without it, setgid marks mandatory locking). Returns 0 or
// the errno of a failure, which fails the request rather than leaving the bits.
int KillSuidGid(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return errno;
  mode_t kill = st.st_mode & S_ISUID;
  if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) kill |= S_ISGID;
  if (kill == 0 || !S_ISREG(st.st_mode)) return 0;
  return fchmod(fd, st.st_mode & 07777 & ~kill) == 0 ? 0 : errno;
}

bool Writes(int flags) { return (flags & O_ACCMODE) != O_RDONLY; }

class ScopedCredentials {
 public:
  ScopedCredentials(uint32_t opcode, uid_t uid, gid_t gid)  // host ids
      : active_(CreatesFiles(opcode) && (uid != 0 || gid != 0) && geteuid() == 0) {
    if (!active_) return;
    setfsgid(gid);
    setfsuid(uid);
    // setfsuid reports no errors: read the values back (an id our user namespace does not map
    // cannot be taken, and the file must then not be created as root).
    ok_ = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1))) == uid &&
          static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1))) == gid;
  }
  ~ScopedCredentials() {
    if (!active_) return;
    setfsuid(0);
    setfsgid(0);
  }
  bool ok() const { return ok_; }

 private:
  const bool active_;
  bool ok_ = true;
};

// A single path component: not empty, no '/', not "." (".." is the caller's business).
bool ValidName(const char* name) {
  return name != nullptr && name[0] != '\0' && std::strchr(name, '/') == nullptr &&
         std::strcmp(name, ".") != 0;
}

// Why an inode of type `type` (S_IFMT bits) is never opened, or 0 for regular files and
// directories. A device node would reach the host's device, a FIFO blocks the serving thread
// until a peer comes, a socket cannot be opened, a symlink would be followed.
int UnopenableType(mode_t type) {
  switch (type) {
    case S_IFREG:
    case S_IFDIR:
      return 0;
    case S_IFLNK:
      return ELOOP;
    case S_IFCHR:
    case S_IFBLK:
      return EACCES;  // as on a nodev mount
    default:
      return ENXIO;  // FIFOs, sockets: nothing on the host's side serves them to the guest
  }
}

}  // namespace

class FuseServer::Request {
 public:
  explicit Request(const DescriptorChain& chain) : chain(chain), reader(chain), reply(chain) {
    // The reply's body follows its header; a chain without room for the header gets none.
    if (!reply.Skip(kOutHeader)) reply.Skip(reply.remaining());
  }

  // Reads the header and the arguments; `reader` is left at what follows (WRITE's data).
  bool Parse() {
    if (!reader.Read(&in)) return false;
    uint64_t want = std::min<uint64_t>(reader.remaining(), kMaxArgs);
    if (in.opcode == FUSE_WRITE) want = std::min<uint64_t>(want, sizeof(fuse_write_in));
    args.resize(want);
    return reader.ReadBytes(args.data(), want);
  }
  template <typename T>
  const T* Arg(size_t offset = 0) const {
    return offset + sizeof(T) <= args.size() ? reinterpret_cast<const T*>(&args[offset]) : nullptr;
  }
  // The NUL-terminated string at `offset` of the arguments, or nullptr.
  const char* Name(size_t offset) const {
    if (offset >= args.size()) return nullptr;
    const void* end = std::memchr(&args[offset], '\0', args.size() - offset);
    return end == nullptr ? nullptr : &args[offset];
  }
  // A fixed-size reply, written straight after the header (no allocation); one that does not
  // fit goes to `payload`, which Handle then answers with ERANGE.
  template <typename T>
  void Reply(const T& value) {
    if (direct == 0 && payload.empty() && reply.Write(value)) {
      direct = sizeof(value);
    } else {
      payload.assign(reinterpret_cast<const char*>(&value), sizeof(value));
    }
  }
  // Room for reply bytes after the header.
  uint64_t room() const { return reply.remaining(); }

  const DescriptorChain& chain;
  ChainReader reader;
  ChainWriter reply;  // at the reply's body
  fuse_in_header in{};
  // Most requests' arguments are a structure and a name or two: kept inline, no allocation.
  // (Its inline storage shares a union with a pointer: 8-aligned, as Arg<T> needs.)
  absl::InlinedVector<char, 320> args;
  std::string payload;  // reply after the header
  uint32_t direct = 0;  // READ, Reply(): bytes already placed after the header
  bool no_reply = false;
};

absl::StatusOr<std::unique_ptr<FuseServer>> FuseServer::Create(const FsOptions& options) {
  UniqueFd root(open(options.shared_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shared-dir: ", options.shared_dir, ": ", strerror(errno)));
  }
  UniqueFd proc(open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!proc) return absl::ErrnoToStatus(errno, "/proc/self/fd (is /proc mounted?)");
  return Create(options, std::move(root), std::move(proc));
}

absl::StatusOr<std::unique_ptr<FuseServer>> FuseServer::Create(const FsOptions& options,
                                                               UniqueFd root, UniqueFd proc_fds) {
  if (!root || !proc_fds) return absl::InvalidArgumentError("no shared directory or /proc");
  return std::unique_ptr<FuseServer>(new FuseServer(options, std::move(root), std::move(proc_fds)));
}

FuseServer::FuseServer(const FsOptions& options, UniqueFd root, UniqueFd proc_fds)
    : options_(options),
      proc_fds_(std::move(proc_fds)),
      inodes_(std::make_unique<InodeTable>(std::move(root))) {}

uint32_t FuseServer::Handle(const DescriptorChain& chain) {
  Request r(chain);
  int err;
  if (!r.Parse()) {
    LOG_EVERY_N(WARNING, 100) << "FUSE request of " << chain.readable_bytes << " bytes";
    err = EINVAL;
  } else if (r.in.len > chain.readable_bytes) {
    LOG_EVERY_N(WARNING, 100) << "FUSE request claims " << r.in.len << " bytes, has "
                              << chain.readable_bytes;
    err = EINVAL;
  } else {
    const std::optional<uint32_t> uid = options_.uids.GuestToHost(r.in.uid);
    const std::optional<uint32_t> gid = options_.gids.GuestToHost(r.in.gid);
    if (CreatesFiles(r.in.opcode) && !(uid && gid)) {
      err = EPERM;  // the caller has no host id: its files would alias another user's
    } else {
      ScopedCredentials as_caller(r.in.opcode, uid.value_or(0), gid.value_or(0));
      err = as_caller.ok() ? Dispatch(r) : EPERM;
    }
  }
  if (err == EMFILE || err == ENFILE) {
    // Every inode and open file the guest holds is a descriptor: the limit is its bound.
    LOG_EVERY_N(WARNING, 100) << "out of descriptors with " << inodes_->size() << " inodes and "
                              << inodes_->handle_count() << " open files held by the guest";
  }
  if (r.no_reply || chain.writable_bytes < kOutHeader) {
    if (!r.no_reply) {
      LOG_EVERY_N(WARNING, 100) << "FUSE request without room for a reply";
    }
    return 0;
  }
  if (err == 0 && r.payload.size() > r.room()) err = ERANGE;  // the guest's buffer is too small
  fuse_out_header out{};
  out.unique = r.in.unique;
  out.error = -err;
  out.len = static_cast<uint32_t>(kOutHeader + (err ? 0 : r.payload.size() + r.direct));
  r.reply.WriteAt(0, out);
  if (err == 0) r.reply.WriteBytes(r.payload.data(), r.payload.size());  // fits: checked above
  return out.len;
}

int FuseServer::Dispatch(Request& r) {
  switch (r.in.opcode) {
    case FUSE_INIT:
      Reset();  // a new session: nothing of an earlier one stays held
      return Init(r);
    case FUSE_DESTROY:
      Reset();
      return 0;
    case FUSE_LOOKUP:
      return Lookup(r);
    case FUSE_FORGET:
      return Forget(r);
    case FUSE_BATCH_FORGET:
      return BatchForget(r);
    case FUSE_GETATTR:
      return GetAttr(r);
    case FUSE_SETATTR:
      return SetAttr(r);
    case FUSE_READLINK:
      return ReadLink(r);
    case FUSE_MKNOD:
    case FUSE_MKDIR:
    case FUSE_SYMLINK:
      return MakeNode(r);
    case FUSE_LINK:
      return Link(r);
    case FUSE_UNLINK:
    case FUSE_RMDIR:
      return Remove(r);
    case FUSE_RENAME:
    case FUSE_RENAME2:
      return Rename(r);
    case FUSE_OPEN:
    case FUSE_OPENDIR:
      return Open(r);
    case FUSE_CREATE:
      return Create(r);
    case FUSE_READ:
      return Read(r);
    case FUSE_WRITE:
      return Write(r);
    case FUSE_RELEASE:
    case FUSE_RELEASEDIR:
      return Release(r);
    case FUSE_FLUSH:
      return Flush(r);
    case FUSE_FSYNC:
    case FUSE_FSYNCDIR:
      return Fsync(r);
    case FUSE_READDIR:
    case FUSE_READDIRPLUS:
      return ReadDir(r);
    case FUSE_STATFS:
      return StatFs(r);
    case FUSE_ACCESS:
      return Access(r);
    case FUSE_GETXATTR:
    case FUSE_SETXATTR:
    case FUSE_LISTXATTR:
    case FUSE_REMOVEXATTR:
      return Xattr(r);
    case FUSE_FALLOCATE:
      return Fallocate(r);
    case FUSE_LSEEK:
      return Lseek(r);
    case FUSE_COPY_FILE_RANGE:
      return CopyFileRange(r);
    case FUSE_SYNCFS:
      return SyncFs(r);
    case FUSE_GETLK:
    case FUSE_SETLK:
    case FUSE_SETLKW:
      return options_.posix_lock ? Lock(r) : ENOSYS;
    case FUSE_INTERRUPT:
      // Only a waiting SETLKW can be interrupted; other requests finish quickly.
      r.no_reply = true;
      if (const fuse_interrupt_in* in = r.Arg<fuse_interrupt_in>()) waits_.Interrupt(in->unique);
      return 0;
    default:
      // STATX, locks, TMPFILE, DAX mappings...: the client falls back or does without.
      return ENOSYS;
  }
}

// ---- helpers

uint64_t FuseServer::Timeout() const {
  switch (options_.cache) {
    case CacheMode::kNever:
      return 0;
    case CacheMode::kAuto:
      return 1;
    case CacheMode::kAlways:
      return 86400;
  }
  return 1;
}

void FuseServer::FillAttr(const struct stat& st, fuse_attr* a) const {
  *a = fuse_attr{};
  a->ino = st.st_ino;
  a->size = st.st_size;
  a->blocks = st.st_blocks;
  a->atime = st.st_atim.tv_sec;
  a->mtime = st.st_mtim.tv_sec;
  a->ctime = st.st_ctim.tv_sec;
  a->atimensec = st.st_atim.tv_nsec;
  a->mtimensec = st.st_mtim.tv_nsec;
  a->ctimensec = st.st_ctim.tv_nsec;
  a->mode = st.st_mode;
  a->nlink = st.st_nlink;
  a->uid = options_.uids.HostToGuest(st.st_uid);
  a->gid = options_.gids.HostToGuest(st.st_gid);
  a->rdev = st.st_rdev;
  a->blksize = st.st_blksize;
}

void FuseServer::FillEntry(uint64_t nodeid, const struct stat& st, fuse_entry_out* out) const {
  *out = fuse_entry_out{};
  out->nodeid = nodeid;
  out->entry_valid = out->attr_valid = Timeout();
  FillAttr(st, &out->attr);
}

int FuseServer::StatInode(const Inode& inode, struct stat* st) {
  return fstatat(inode.fd.get(), "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 ? 0 : errno;
}

int FuseServer::Reopen(const Inode& inode, int flags) {
  // The type is the inode's own (fstat of its O_PATH descriptor when it was looked up; a file's
  // type never changes and the descriptor pins the file), so nothing can swap in another file.
  if (const int err = UnopenableType(inode.type)) {
    errno = err;
    return -1;
  }
  const std::string name = std::to_string(inode.fd.get());
  return openat(proc_fds_.get(), name.c_str(), (flags & ~(O_NOFOLLOW | O_CREAT)) | O_CLOEXEC);
}

int FuseServer::LookupEntry(const Inode& parent, const char* name, fuse_entry_out* out) {
  UniqueFd fd;
  if (std::strcmp(name, "..") == 0 && parent.nodeid == kRootNodeId) {
    fd = UniqueFd(openat(parent.fd.get(), ".", O_PATH | O_CLOEXEC));  // the root's parent is itself
  } else {
    fd = UniqueFd(openat(parent.fd.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  }
  if (!fd) return errno;
  struct stat st;
  if (fstatat(fd.get(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return errno;
  std::shared_ptr<Inode> inode = inodes_->Ref(std::move(fd), st);
  FillEntry(inode->nodeid, st, out);
  if ((session_flags_ & FUSE_SUBMOUNTS) && options_.announce_submounts && S_ISDIR(st.st_mode) &&
      st.st_dev != parent.dev) {
    out->attr.flags |= FUSE_ATTR_SUBMOUNT;
  }
  return 0;
}

// ---- operations

// FUSE_INIT as every Linux client from 7.12 on sends it: 16 bytes (major, minor, max_readahead,
// flags) before 7.36, 64 after (flags2 and reserved words). We speak the smaller of both minors,
// reply in the size of that minor's fuse_init_out (the client reads no more), and agree only to
// flags the client offered, flags2 only to a client that said it reads them (FUSE_INIT_EXT).
int FuseServer::Init(Request& r) {
  // The body as the client sent it, not whatever else the chain's readable part holds.
  const size_t size = std::min<size_t>(
      r.args.size(), r.in.len > sizeof(fuse_in_header) ? r.in.len - sizeof(fuse_in_header) : 0);
  fuse_init_in in{};
  if (size > 0) std::memcpy(&in, r.args.data(), std::min(size, sizeof(in)));  // no args: null
  if (size >= offsetof(fuse_init_in, max_readahead) && in.major > FUSE_KERNEL_VERSION) {
    // A client of a later major: our major alone, and it sends a new INIT in ours (fuse.h).
    fuse_init_out out{};
    out.major = FUSE_KERNEL_VERSION;
    out.minor = FUSE_KERNEL_MINOR_VERSION;
    r.payload.assign(reinterpret_cast<const char*>(&out), FUSE_COMPAT_INIT_OUT_SIZE);
    return 0;
  }
  if (size < kInitInShort || in.major != FUSE_KERNEL_VERSION || in.minor < kMinMinor) {
    LOG_EVERY_N(WARNING, 100) << "FUSE_INIT of " << size << " bytes, protocol " << in.major << "."
                              << in.minor << ": refused (EPROTO)";
    return EPROTO;
  }
  uint64_t offered = in.flags & ~uint64_t{FUSE_INIT_EXT};
  if ((in.flags & FUSE_INIT_EXT) && size >= sizeof(fuse_init_in)) {
    offered |= uint64_t{in.flags2} << 32;
  }
  uint64_t wanted = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ATOMIC_O_TRUNC | FUSE_DO_READDIRPLUS |
                    FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES |
                    FUSE_HANDLE_KILLPRIV;
  if (options_.announce_submounts) wanted |= FUSE_SUBMOUNTS;
  if (options_.posix_lock) wanted |= FUSE_POSIX_LOCKS;
  const uint64_t agreed = offered & wanted;
  fuse_init_out out{};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = std::min<uint32_t>(in.minor, FUSE_KERNEL_MINOR_VERSION);
  out.max_readahead = in.max_readahead;
  out.flags = static_cast<uint32_t>(agreed);
  if (agreed >> 32) {
    out.flags |= FUSE_INIT_EXT;
    out.flags2 = static_cast<uint32_t>(agreed >> 32);
  }
  out.max_background = 64;
  out.congestion_threshold = 48;
  out.max_write = kMaxWrite;
  out.time_gran = 1;
  if (agreed & FUSE_MAX_PAGES) out.max_pages = kMaxWrite / 4096;
  r.payload.assign(reinterpret_cast<const char*>(&out),
                   out.minor < 23 ? FUSE_COMPAT_22_INIT_OUT_SIZE : sizeof(out));
  session_minor_ = out.minor;
  session_flags_ = agreed;
  return 0;
}

int FuseServer::Lookup(Request& r) {
  std::shared_ptr<Inode> parent = inodes_->Get(r.in.nodeid);
  const char* name = r.Name(0);
  if (parent == nullptr) return ESTALE;
  if (!ValidName(name)) return EINVAL;
  fuse_entry_out out;
  if (int err = LookupEntry(*parent, name, &out)) return err;
  r.Reply(out);
  return 0;
}

int FuseServer::Forget(Request& r) {
  r.no_reply = true;
  if (const fuse_forget_in* in = r.Arg<fuse_forget_in>()) inodes_->Forget(r.in.nodeid, in->nlookup);
  return 0;
}

int FuseServer::BatchForget(Request& r) {
  r.no_reply = true;
  const fuse_batch_forget_in* in = r.Arg<fuse_batch_forget_in>();
  if (in == nullptr) return 0;
  for (uint32_t i = 0; i < in->count; ++i) {
    const fuse_forget_one* one =
        r.Arg<fuse_forget_one>(sizeof(fuse_batch_forget_in) + i * sizeof(fuse_forget_one));
    if (one == nullptr) break;  // count beyond the arguments: take what is there
    inodes_->Forget(one->nodeid, one->nlookup);
  }
  return 0;
}

int FuseServer::GetAttr(Request& r) {
  std::shared_ptr<Inode> inode = inodes_->Get(r.in.nodeid);
  if (inode == nullptr) return ESTALE;
  struct stat st;
  if (int err = StatInode(*inode, &st)) return err;
  fuse_attr_out out{};
  out.attr_valid = Timeout();
  FillAttr(st, &out.attr);
  r.Reply(out);
  return 0;
}

int FuseServer::SetAttr(Request& r) {
  std::shared_ptr<Inode> inode = inodes_->Get(r.in.nodeid);
  const fuse_setattr_in* in = r.Arg<fuse_setattr_in>();
  if (inode == nullptr) return ESTALE;
  if (in == nullptr) return EINVAL;
  std::shared_ptr<OpenFile> handle = (in->valid & FATTR_FH) ? inodes_->GetHandle(in->fh) : nullptr;
  if ((in->valid & FATTR_FH) && handle == nullptr) return EBADF;
  const std::string proc_name = std::to_string(inode->fd.get());
  if (in->valid & FATTR_MODE) {
    if (inode->type == S_IFLNK) return EOPNOTSUPP;
    if (fchmodat(proc_fds_.get(), proc_name.c_str(), in->mode & 07777, 0) != 0) return errno;
  }
  if (in->valid & (FATTR_UID | FATTR_GID)) {
    // -1: unchanged. An id without a host id of its own is refused.
    const std::optional<uint32_t> uid =
        (in->valid & FATTR_UID) ? options_.uids.GuestToHost(in->uid) : static_cast<uid_t>(-1);
    const std::optional<uint32_t> gid =
        (in->valid & FATTR_GID) ? options_.gids.GuestToHost(in->gid) : static_cast<gid_t>(-1);
    if (!uid || !gid) return EPERM;
    if (fchownat(inode->fd.get(), "", *uid, *gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) {
      return errno;
    }
  }
  if (in->valid & FATTR_SIZE) {
    // As truncate(2): only regular files have a size to set (and opening others could block).
    if (inode->type == S_IFDIR) return EISDIR;
    if (inode->type != S_IFREG) return EINVAL;
    UniqueFd opened;
    if (handle == nullptr) {
      opened = UniqueFd(Reopen(*inode, O_WRONLY));
      if (!opened) return errno;
    }
    const int fd = handle != nullptr ? handle->fd.get() : opened.get();
    // A mode set in the same request is the caller's explicit choice.
    if (!(in->valid & FATTR_MODE)) {
      if (const int err = KillSuidGid(fd)) return err;
    }
    if (ftruncate(fd, in->size) != 0) return errno;
  }
  if (in->valid & (FATTR_ATIME | FATTR_MTIME)) {
    timespec times[2];
    times[0].tv_nsec = UTIME_OMIT;
    times[1].tv_nsec = UTIME_OMIT;
    if (in->valid & FATTR_ATIME_NOW) {
      times[0].tv_nsec = UTIME_NOW;
    } else if (in->valid & FATTR_ATIME) {
      times[0] = {static_cast<time_t>(in->atime), static_cast<long>(in->atimensec)};
    }
    if (in->valid & FATTR_MTIME_NOW) {
      times[1].tv_nsec = UTIME_NOW;
    } else if (in->valid & FATTR_MTIME) {
      times[1] = {static_cast<time_t>(in->mtime), static_cast<long>(in->mtimensec)};
    }
    if (inode->type == S_IFLNK) return EOPNOTSUPP;
    if (utimensat(proc_fds_.get(), proc_name.c_str(), times, 0) != 0) return errno;
  }
  return GetAttr(r);
}

int FuseServer::ReadLink(Request& r) {
  std::shared_ptr<Inode> inode = inodes_->Get(r.in.nodeid);
  if (inode == nullptr) return ESTALE;
  char target[PATH_MAX];
  const ssize_t n = readlinkat(inode->fd.get(), "", target, sizeof(target));
  if (n < 0) return errno;
  r.payload.assign(target, n);
  return 0;
}

int FuseServer::MakeNode(Request& r) {
  std::shared_ptr<Inode> parent = inodes_->Get(r.in.nodeid);
  if (parent == nullptr) return ESTALE;
  const char* name = nullptr;
  int rc;
  if (r.in.opcode == FUSE_MKDIR) {
    const fuse_mkdir_in* in = r.Arg<fuse_mkdir_in>();
    name = r.Name(sizeof(fuse_mkdir_in));
    if (in == nullptr || !ValidName(name) || !std::strcmp(name, "..")) return EINVAL;
    rc = mkdirat(parent->fd.get(), name, in->mode & ~in->umask & 07777);
  } else if (r.in.opcode == FUSE_MKNOD) {
    const fuse_mknod_in* in = r.Arg<fuse_mknod_in>();
    name = r.Name(sizeof(fuse_mknod_in));
    if (in == nullptr || !ValidName(name) || !std::strcmp(name, "..")) return EINVAL;
    const mode_t type = in->mode & S_IFMT;
    if ((type == S_IFCHR || type == S_IFBLK) && !options_.allow_device_nodes) {
      LOG_EVERY_N(WARNING, 100) << "MKNOD of a device node refused (see --allow-device-nodes)";
      return EPERM;
    }
    rc = mknodat(parent->fd.get(), name, in->mode & ~(in->umask & 07777), in->rdev);
  } else {  // SYMLINK: name, then target
    name = r.Name(0);
    const char* target = name ? r.Name(std::strlen(name) + 1) : nullptr;
    if (!ValidName(name) || !std::strcmp(name, "..") || target == nullptr) return EINVAL;
    rc = symlinkat(target, parent->fd.get(), name);
  }
  if (rc != 0) return errno;
  fuse_entry_out out;
  if (int err = LookupEntry(*parent, name, &out)) return err;
  r.Reply(out);
  return 0;
}

int FuseServer::Link(Request& r) {
  std::shared_ptr<Inode> parent = inodes_->Get(r.in.nodeid);
  const fuse_link_in* in = r.Arg<fuse_link_in>();
  const char* name = r.Name(sizeof(fuse_link_in));
  if (parent == nullptr) return ESTALE;
  if (in == nullptr || !ValidName(name) || !std::strcmp(name, "..")) return EINVAL;
  std::shared_ptr<Inode> old = inodes_->Get(in->oldnodeid);
  if (old == nullptr) return ESTALE;
  // Through /proc/self/fd: linking an O_PATH descriptor itself needs CAP_DAC_READ_SEARCH.
  const std::string proc_name = std::to_string(old->fd.get());
  if (linkat(proc_fds_.get(), proc_name.c_str(), parent->fd.get(), name, AT_SYMLINK_FOLLOW) != 0) {
    if (errno != ENOENT || old->type != S_IFLNK ||
        linkat(old->fd.get(), "", parent->fd.get(), name, AT_EMPTY_PATH) != 0) {
      return errno;
    }
  }
  fuse_entry_out out;
  if (int err = LookupEntry(*parent, name, &out)) return err;
  r.Reply(out);
  return 0;
}

int FuseServer::Remove(Request& r) {
  std::shared_ptr<Inode> parent = inodes_->Get(r.in.nodeid);
  const char* name = r.Name(0);
  if (parent == nullptr) return ESTALE;
  if (!ValidName(name) || !std::strcmp(name, "..")) return EINVAL;
  const int flags = r.in.opcode == FUSE_RMDIR ? AT_REMOVEDIR : 0;
  return unlinkat(parent->fd.get(), name, flags) == 0 ? 0 : errno;
}

int FuseServer::Rename(Request& r) {
  std::shared_ptr<Inode> parent = inodes_->Get(r.in.nodeid);
  uint64_t newdir;
  uint32_t flags = 0;
  size_t names;
  if (r.in.opcode == FUSE_RENAME2) {
    const fuse_rename2_in* in = r.Arg<fuse_rename2_in>();
    if (in == nullptr) return EINVAL;
    newdir = in->newdir;
    flags = in->flags;
    names = sizeof(fuse_rename2_in);
  } else {
    const fuse_rename_in* in = r.Arg<fuse_rename_in>();
    if (in == nullptr) return EINVAL;
    newdir = in->newdir;
    names = sizeof(fuse_rename_in);
  }
  const char* old_name = r.Name(names);
  const char* new_name = old_name ? r.Name(names + std::strlen(old_name) + 1) : nullptr;
  std::shared_ptr<Inode> new_parent = inodes_->Get(newdir);
  if (parent == nullptr || new_parent == nullptr) return ESTALE;
  if (!ValidName(old_name) || !ValidName(new_name) || !std::strcmp(old_name, "..") ||
      !std::strcmp(new_name, "..")) {
    return EINVAL;
  }
  if (renameat2(parent->fd.get(), old_name, new_parent->fd.get(), new_name, flags) != 0) {
    return errno;
  }
  return 0;
}

int FuseServer::Open(Request& r) {
  std::shared_ptr<Inode> inode = inodes_->Get(r.in.nodeid);
  const fuse_open_in* in = r.Arg<fuse_open_in>();
  if (inode == nullptr) return ESTALE;
  if (in == nullptr) return EINVAL;
  const bool dir = r.in.opcode == FUSE_OPENDIR;
  if (dir && inodes_->dir_count() >= options_.max_open_dirs) {
    LOG_EVERY_N(WARNING, 100) << options_.max_open_dirs
                              << " directories open: OPENDIR refused (EMFILE)";
    return EMFILE;
  }
  int flags = dir ? (O_RDONLY | O_DIRECTORY) : static_cast<int>(in->flags);
  auto handle = std::make_shared<OpenFile>();
  handle->fd = UniqueFd(Reopen(*inode, flags & ~O_EXCL));
  if (!handle->fd) return errno;
  if ((flags & O_TRUNC) && Writes(flags)) {
    if (const int err = KillSuidGid(handle->fd.get())) return err;
  }
  if (dir) handle->dir = std::make_unique<DirStream>();
  handle->nodeid = inode->nodeid;
  handle->flags = flags;
  fuse_open_out out{};
  out.fh = inodes_->AddHandle(std::move(handle));
  if (!dir && options_.cache == CacheMode::kNever) out.open_flags |= FOPEN_DIRECT_IO;
  if (!dir && options_.cache == CacheMode::kAlways) out.open_flags |= FOPEN_KEEP_CACHE;
  if (dir && options_.cache == CacheMode::kAlways && session_minor_ >= 28) {
    out.open_flags |= FOPEN_CACHE_DIR;  // 7.28
  }
  r.Reply(out);
  return 0;
}

int FuseServer::Create(Request& r) {
  std::shared_ptr<Inode> parent = inodes_->Get(r.in.nodeid);
  const fuse_create_in* in = r.Arg<fuse_create_in>();
  const char* name = r.Name(sizeof(fuse_create_in));
  if (parent == nullptr) return ESTALE;
  if (in == nullptr || !ValidName(name) || !std::strcmp(name, "..")) return EINVAL;
  auto handle = std::make_shared<OpenFile>();
  const int flags = static_cast<int>(in->flags) | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
  // A new file; or else (without O_EXCL) the existing one, if it may be opened at all: openat
  // would open a device node, FIFO or socket as it is.
  handle->fd =
      UniqueFd(openat(parent->fd.get(), name, flags | O_EXCL, in->mode & ~in->umask & 07777));
  if (!handle->fd && errno == EEXIST && !(in->flags & O_EXCL)) {
    Inode existing;
    existing.fd = UniqueFd(openat(parent->fd.get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!existing.fd) return errno;
    struct stat st;
    if (const int err = StatInode(existing, &st)) return err;
    existing.type = st.st_mode & S_IFMT;
    if (existing.type == S_IFDIR) return EISDIR;
    handle->fd = UniqueFd(Reopen(existing, flags));
    if (handle->fd && (flags & O_TRUNC) && Writes(flags)) {
      if (const int err = KillSuidGid(handle->fd.get())) return err;
    }
  }
  if (!handle->fd) return errno;
  struct {
    fuse_entry_out entry;
    fuse_open_out open;
  } out{};
  if (int err = LookupEntry(*parent, name, &out.entry)) return err;
  handle->nodeid = out.entry.nodeid;
  handle->flags = static_cast<int>(in->flags);
  out.open.fh = inodes_->AddHandle(std::move(handle));
  if (options_.cache == CacheMode::kNever) out.open.open_flags |= FOPEN_DIRECT_IO;
  r.Reply(out);
  return 0;
}

int FuseServer::Read(Request& r) {
  const fuse_read_in* in = r.Arg<fuse_read_in>();
  if (in == nullptr) return EINVAL;
  std::shared_ptr<OpenFile> handle = inodes_->GetHandle(in->fh);
  if (handle == nullptr) return EBADF;
  const uint64_t size = std::min<uint64_t>(in->size, r.room());
  IovecList iov;
  r.reply.Slice(size, &iov);
  const ssize_t n = preadv(handle->fd.get(), iov.data(), static_cast<int>(iov.size()),
                           static_cast<off_t>(in->offset));
  if (n < 0) return errno;
  r.direct = static_cast<uint32_t>(n);
  return 0;
}

int FuseServer::Write(Request& r) {
  const fuse_write_in* in = r.Arg<fuse_write_in>();
  if (in == nullptr) return EINVAL;
  std::shared_ptr<OpenFile> handle = inodes_->GetHandle(in->fh);
  if (handle == nullptr) return EBADF;
  // Parse() left the reader at the data, after fuse_write_in.
  if (in->size > kMaxWrite || in->size > r.reader.remaining()) return EINVAL;
  if (const int err = KillSuidGid(handle->fd.get())) return err;
  IovecList iov;
  r.reader.Slice(in->size, &iov);
  const ssize_t n = pwritev(handle->fd.get(), iov.data(), static_cast<int>(iov.size()),
                            static_cast<off_t>(in->offset));
  if (n < 0) return errno;
  fuse_write_out out{};
  out.size = static_cast<uint32_t>(n);
  r.Reply(out);
  return 0;
}

int FuseServer::Release(Request& r) {
  const fuse_release_in* in = r.Arg<fuse_release_in>();
  if (in == nullptr) return EINVAL;
  if (inodes_->GetHandle(in->fh) == nullptr) return EBADF;
  inodes_->ReleaseHandle(in->fh);
  return 0;
}

int FuseServer::Flush(Request& r) {
  const fuse_flush_in* in = r.Arg<fuse_flush_in>();
  if (in == nullptr) return EINVAL;
  if (options_.posix_lock) {  // the owner closes the file: its locks go
    std::lock_guard<std::mutex> lock(locks_mu_);
    lock_files_.erase({r.in.nodeid, in->lock_owner});
  }
  std::shared_ptr<OpenFile> handle = inodes_->GetHandle(in->fh);
  if (handle == nullptr) return EBADF;
  // What close() would report for this descriptor (a deferred write error), without closing it.
  // Its locks are not this descriptor's but the lock file's, dropped above.
  const int copy = dup(handle->fd.get());
  if (copy < 0) return errno;
  return close(copy) == 0 ? 0 : errno;
}

int FuseServer::Fsync(Request& r) {
  const fuse_fsync_in* in = r.Arg<fuse_fsync_in>();
  if (in == nullptr) return EINVAL;
  std::shared_ptr<OpenFile> handle = inodes_->GetHandle(in->fh);
  if (handle == nullptr) return EBADF;
  const int rc = (in->fsync_flags & 1) ? fdatasync(handle->fd.get()) : fsync(handle->fd.get());
  return rc == 0 ? 0 : errno;
}

int FuseServer::ReadDir(Request& r) {
  const fuse_read_in* in = r.Arg<fuse_read_in>();
  if (in == nullptr) return EINVAL;
  std::shared_ptr<OpenFile> handle = inodes_->GetHandle(in->fh);
  std::shared_ptr<Inode> dir_inode = inodes_->Get(r.in.nodeid);
  if (handle == nullptr || handle->dir == nullptr) return EBADF;
  if (dir_inode == nullptr) return ESTALE;
  const bool plus = r.in.opcode == FUSE_READDIRPLUS;
  // The reply is built in memory, then copied out in one piece: at most max_pages (kMaxWrite)
  // bytes, whatever size the guest asks for and however large its buffer claims to be.
  const size_t limit = std::min<uint64_t>({in->size, r.room(), kMaxWrite});
  std::lock_guard<std::mutex> lock(handle->mu);
  DirStream& s = *handle->dir;
  const int fd = handle->fd.get();
  // A guest reading on asks for the offset of the last entry it got, where the stream stands;
  // it seeks only for another place, or for a rewind to 0 once something was read.
  if (in->offset != s.pos || (in->offset == 0 && s.read)) {
    if (lseek(fd, static_cast<off_t>(in->offset), SEEK_SET) < 0) return errno;
    s.pos = in->offset;
    s.at = s.end = 0;
    s.read = false;
  }
  if (s.batch == nullptr) s.batch.reset(new char[DirStream::kBatch]);
  r.payload.resize(limit);  // zeroed: the padding after each name
  char* const out = r.payload.data();
  size_t written = 0;
  for (;;) {
    if (s.at == s.end) {
      const ssize_t n = getdents64(fd, s.batch.get(), DirStream::kBatch);
      s.read = true;
      if (n < 0 && written == 0) return errno;
      if (n <= 0) break;
      s.at = 0;
      s.end = static_cast<size_t>(n);
    }
    const auto* d = reinterpret_cast<const struct dirent64*>(&s.batch[s.at]);
    const size_t namelen = std::strlen(d->d_name);
    const size_t head = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
    const size_t entry_size = FUSE_DIRENT_ALIGN(head + namelen);
    if (written + entry_size > limit) break;  // stays first in the batch for the next READDIR
    s.at += d->d_reclen;
    s.pos = static_cast<uint64_t>(d->d_off);
    fuse_dirent dirent;
    dirent.ino = d->d_ino;
    dirent.off = s.pos;  // the cookie to go on after this entry
    dirent.namelen = static_cast<uint32_t>(namelen);
    dirent.type = d->d_type;
    char* p = out + written;
    if (plus) {
      fuse_entry_out entry{};
      const bool dots = !std::strcmp(d->d_name, ".") || !std::strcmp(d->d_name, "..");
      // "." and ".." get no entry (node id 0): the client does not instantiate them.
      if (!dots && LookupEntry(*dir_inode, d->d_name, &entry) != 0) continue;
      std::memcpy(p, &entry, sizeof(entry));
      p += sizeof(entry);
    }
    std::memcpy(p, &dirent, FUSE_NAME_OFFSET);
    std::memcpy(p + FUSE_NAME_OFFSET, d->d_name, namelen);
    written += entry_size;
  }
  r.payload.resize(written);
  return 0;
}

int FuseServer::StatFs(Request& r) {
  std::shared_ptr<Inode> inode = inodes_->Get(r.in.nodeid);
  if (inode == nullptr) return ESTALE;
  struct statvfs st;
  if (fstatvfs(inode->fd.get(), &st) != 0) return errno;
  fuse_statfs_out out{};
  out.st.blocks = st.f_blocks;
  out.st.bfree = st.f_bfree;
  out.st.bavail = st.f_bavail;
  out.st.files = st.f_files;
  out.st.ffree = st.f_ffree;
  out.st.bsize = static_cast<uint32_t>(st.f_bsize);
  out.st.namelen = static_cast<uint32_t>(st.f_namemax);
  out.st.frsize = static_cast<uint32_t>(st.f_frsize);
  r.Reply(out);
  return 0;
}

int FuseServer::Access(Request& r) {
  std::shared_ptr<Inode> inode = inodes_->Get(r.in.nodeid);
  const fuse_access_in* in = r.Arg<fuse_access_in>();
  if (inode == nullptr) return ESTALE;
  if (in == nullptr) return EINVAL;
  if (inode->type == S_IFLNK) return 0;  // symlinks have no permissions of their own
  const std::string proc_name = std::to_string(inode->fd.get());
  return faccessat(proc_fds_.get(), proc_name.c_str(), in->mask, 0) == 0 ? 0 : errno;
}

int FuseServer::Xattr(Request& r) {
  if (!options_.xattr) return ENOSYS;  // the client stops asking
  std::shared_ptr<Inode> inode = inodes_->Get(r.in.nodeid);
  if (inode == nullptr) return ESTALE;
  // Through an open descriptor, which only regular files and directories get (opening a FIFO
  // would block): other files have no extended attributes here.
  if (inode->type != S_IFREG && inode->type != S_IFDIR) return ENOTSUP;
  UniqueFd fd(Reopen(*inode, inode->type == S_IFDIR ? O_RDONLY | O_DIRECTORY : O_RDONLY));
  if (!fd) return errno;
  switch (r.in.opcode) {
    case FUSE_GETXATTR:
    case FUSE_LISTXATTR: {
      const fuse_getxattr_in* in = r.Arg<fuse_getxattr_in>();
      const char* name = r.Name(sizeof(fuse_getxattr_in));
      if (in == nullptr || (r.in.opcode == FUSE_GETXATTR && name == nullptr)) return EINVAL;
      const size_t size = std::min<size_t>(in->size, 64 * 1024);
      std::string value(size, '\0');
      const ssize_t n = r.in.opcode == FUSE_GETXATTR
                            ? fgetxattr(fd.get(), name, size ? value.data() : nullptr, size)
                            : flistxattr(fd.get(), size ? value.data() : nullptr, size);
      if (n < 0) return errno;
      if (size == 0) {
        fuse_getxattr_out out{};
        out.size = static_cast<uint32_t>(n);
        r.Reply(out);
      } else {
        r.payload = value.substr(0, n);
      }
      return 0;
    }
    case FUSE_SETXATTR: {
      const fuse_setxattr_in* in = r.Arg<fuse_setxattr_in>();
      // Clients without FUSE_SETXATTR_EXT send the short structure (size, flags).
      const size_t header = FUSE_COMPAT_SETXATTR_IN_SIZE;
      const char* name = r.Name(header);
      if (in == nullptr || name == nullptr) return EINVAL;
      const size_t value_at = header + std::strlen(name) + 1;
      if (value_at + in->size > r.args.size()) return EINVAL;
      return fsetxattr(fd.get(), name, &r.args[value_at], in->size, in->flags) == 0 ? 0 : errno;
    }
    default: {
      const char* name = r.Name(0);
      if (name == nullptr) return EINVAL;
      return fremovexattr(fd.get(), name) == 0 ? 0 : errno;
    }
  }
}

int FuseServer::Fallocate(Request& r) {
  const fuse_fallocate_in* in = r.Arg<fuse_fallocate_in>();
  if (in == nullptr) return EINVAL;
  std::shared_ptr<OpenFile> handle = inodes_->GetHandle(in->fh);
  if (handle == nullptr) return EBADF;
  if (const int err = KillSuidGid(handle->fd.get())) return err;
  return fallocate(handle->fd.get(), static_cast<int>(in->mode), static_cast<off_t>(in->offset),
                   static_cast<off_t>(in->length)) == 0
             ? 0
             : errno;
}

int FuseServer::Lseek(Request& r) {
  const fuse_lseek_in* in = r.Arg<fuse_lseek_in>();
  if (in == nullptr) return EINVAL;
  std::shared_ptr<OpenFile> handle = inodes_->GetHandle(in->fh);
  if (handle == nullptr) return EBADF;
  const off_t pos = lseek(handle->fd.get(), static_cast<off_t>(in->offset), in->whence);
  if (pos < 0) return errno;
  fuse_lseek_out out{};
  out.offset = static_cast<uint64_t>(pos);
  r.Reply(out);
  return 0;
}

int FuseServer::CopyFileRange(Request& r) {
  const fuse_copy_file_range_in* in = r.Arg<fuse_copy_file_range_in>();
  if (in == nullptr) return EINVAL;
  std::shared_ptr<OpenFile> from = inodes_->GetHandle(in->fh_in);
  std::shared_ptr<OpenFile> to = inodes_->GetHandle(in->fh_out);
  if (from == nullptr || to == nullptr) return EBADF;
  if (const int err = KillSuidGid(to->fd.get())) return err;
  loff_t off_in = static_cast<loff_t>(in->off_in), off_out = static_cast<loff_t>(in->off_out);
  const ssize_t n =
      copy_file_range(from->fd.get(), &off_in, to->fd.get(), &off_out,
                      std::min<uint64_t>(in->len, 1u << 30), static_cast<unsigned>(in->flags));
  if (n < 0) return errno;
  fuse_write_out out{};
  out.size = static_cast<uint32_t>(n);
  r.Reply(out);
  return 0;
}

int FuseServer::Lock(Request& r) {
  const fuse_lk_in* in = r.Arg<fuse_lk_in>();
  if (in == nullptr) return EINVAL;
  if (in->lk_flags & FUSE_LK_FLOCK) return ENOSYS;  // flock() stays in the guest
  std::shared_ptr<Inode> inode = inodes_->Get(r.in.nodeid);
  if (inode == nullptr) return ESTALE;
  if (in->lk.start > static_cast<uint64_t>(INT64_MAX) ||
      (in->lk.end != static_cast<uint64_t>(INT64_MAX) && in->lk.end < in->lk.start) ||
      (in->lk.type != F_RDLCK && in->lk.type != F_WRLCK && in->lk.type != F_UNLCK)) {
    return EINVAL;
  }
  std::shared_ptr<OpenFile> file;
  {
    std::lock_guard<std::mutex> lock(locks_mu_);
    const std::pair<uint64_t, uint64_t> key{r.in.nodeid, in->owner};
    if (lock_files_.count(key) == 0 && lock_files_.size() >= options_.max_lock_files) {
      LOG_EVERY_N(WARNING, 100) << "more than " << options_.max_lock_files
                                << " lock owners hold files: ENOLCK";
      return ENOLCK;
    }
    std::shared_ptr<OpenFile>& slot = lock_files_[key];
    if (slot == nullptr) {
      auto opened = std::make_shared<OpenFile>();
      opened->fd = UniqueFd(Reopen(*inode, O_RDWR));
      if (!opened->fd) opened->fd = UniqueFd(Reopen(*inode, O_RDONLY));
      if (!opened->fd) {
        lock_files_.erase({r.in.nodeid, in->owner});
        return errno;
      }
      slot = std::move(opened);
    }
    file = slot;
  }
  struct flock fl {};
  fl.l_type = static_cast<short>(in->lk.type);
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(in->lk.start);
  fl.l_len = in->lk.end == static_cast<uint64_t>(INT64_MAX)
                 ? 0
                 : static_cast<off_t>(in->lk.end - in->lk.start + 1);
  if (r.in.opcode == FUSE_GETLK) {
    if (fcntl(file->fd.get(), F_OFD_GETLK, &fl) != 0) return errno;
    fuse_lk_out out{};
    out.lk.type = static_cast<uint32_t>(fl.l_type);
    out.lk.start = static_cast<uint64_t>(fl.l_start);
    out.lk.end = fl.l_len == 0 ? static_cast<uint64_t>(INT64_MAX)
                               : static_cast<uint64_t>(fl.l_start + fl.l_len - 1);
    r.Reply(out);
    return 0;
  }
  if (r.in.opcode == FUSE_SETLK) return fcntl(file->fd.get(), F_OFD_SETLK, &fl) == 0 ? 0 : errno;
  // Waits as long as the holder likes: interruptible (FUSE_INTERRUPT, the queue stopping).
  const int fd = file->fd.get();
  return waits_.Run(r.in.unique, [&] { return fcntl(fd, F_OFD_SETLKW, &fl); }) == 0 ? 0 : errno;
}

void FuseServer::Reset() {
  inodes_->Reset();
  std::map<std::pair<uint64_t, uint64_t>, std::shared_ptr<OpenFile>> lock_files;
  {
    std::lock_guard<std::mutex> lock(locks_mu_);
    lock_files.swap(lock_files_);
  }
  // The lock files close here (a request still using one closes it when done): their locks go.
}

int FuseServer::SyncFs(Request& r) {
  std::shared_ptr<Inode> root = inodes_->Get(kRootNodeId);
  UniqueFd fd(Reopen(*root, O_RDONLY | O_DIRECTORY));
  if (!fd) return errno;
  return syncfs(fd.get()) == 0 ? 0 : errno;
}

}  // namespace vhost
