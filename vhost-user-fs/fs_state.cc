// The FUSE session carried by a live migration (VHOST_USER_PROTOCOL_F_DEVICE_STATE): the inodes
// the guest holds and its open files, each named by its path relative to the shared directory,
// so that a daemon on the destination (over the same directory, or a copy of it) opens them
// again and the guest goes on with the same node ids and file handles.
//
// Format, version 1; integers little-endian:
//   "VUFS"  u32 version (1)
//   u64 next node id  u64 next file handle      (ids below them are never given out again)
//   u32 inode count, then per inode (the root, node id 1, is implicit):
//     u64 node id  u64 lookup count  u32 file type (S_IFMT bits)  u32 path length  path
//   u32 handle count, then per handle:
//     u64 file handle  u64 node id  u32 open flags  u32 path length  path
// A path is relative to the shared directory ("dir/file"): no leading '/', no empty, "." or
// ".." component. FUSE generations are always 0 here, so none is carried.
//
// Saving finds each file's current path from its descriptor (/proc/self/fd, the sandbox's
// root being the shared directory) and keeps it only if resolving it again reaches the same
// file: an unlinked file, one moved out of the share, or one whose name now names another file
// has no path and is left out. Loading parses and checks the whole state first (a malformed one
// is refused and nothing changes), then resolves each path one component at a time under the
// shared directory with O_NOFOLLOW, every component before the last a directory: a path that
// would leave the share, pass a symlink, or names nothing (or a file of another type) any more
// is dropped, and the guest's later use of that node id gets ESTALE, of that handle EBADF.
// Handles are opened again with their flags, never with O_CREAT, O_EXCL or O_TRUNC.
//
// Not carried: host POSIX locks (--posix-lock; a session holding any is not saved, so the
// migration fails rather than the guest losing its locks), and a directory stream's position
// (READDIR offsets are the file system's own cookies, valid in the reopened directory).
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"
#include "vhost-user-fs/fuse_server.h"

namespace vhost {
namespace {

constexpr char kMagic[4] = {'V', 'U', 'F', 'S'};
constexpr uint32_t kVersion = 1;
// Open flags carried and accepted; creation and truncation are never repeated.
constexpr int kCarriedFlags =
    O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT | O_NOATIME | O_LARGEFILE;

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutPath(std::string* out, const std::string& path) {
  PutU32(out, static_cast<uint32_t>(path.size()));
  out->append(path);
}

// Reads the state front to back; any read past the end fails it.
class Reader {
 public:
  explicit Reader(absl::string_view data) : data_(data) {}
  bool U32(uint32_t* v) {
    if (data_.size() < 4) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) *v |= uint32_t{static_cast<uint8_t>(data_[i])} << (8 * i);
    data_.remove_prefix(4);
    return true;
  }
  bool U64(uint64_t* v) {
    if (data_.size() < 8) return false;
    *v = 0;
    for (int i = 0; i < 8; ++i) *v |= uint64_t{static_cast<uint8_t>(data_[i])} << (8 * i);
    data_.remove_prefix(8);
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    if (data_.size() < n) return false;
    out->assign(data_.data(), n);
    data_.remove_prefix(n);
    return true;
  }
  size_t remaining() const { return data_.size(); }

 private:
  absl::string_view data_;
};

// A path the format allows (see above), or why not.
bool ValidPath(const std::string& path) {
  if (path.empty() || path.size() >= PATH_MAX || path.find('\0') != std::string::npos) {
    return false;
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == ".." || part.size() > NAME_MAX) return false;
  }
  return true;
}

struct SavedInode {
  uint64_t nodeid, nlookup;
  uint32_t type;
  std::string path;
};
struct SavedHandle {
  uint64_t fh, nodeid;
  uint32_t flags;
  std::string path;
};
struct SavedSession {
  uint64_t next_nodeid = 0, next_fh = 0;
  std::vector<SavedInode> inodes;
  std::vector<SavedHandle> handles;
};

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("fs state: ", what));
}

// Parses and checks everything but the paths' files (those are the destination's business).
absl::StatusOr<SavedSession> Parse(absl::string_view data) {
  Reader in(data);
  SavedSession s;
  std::string magic;
  uint32_t version = 0;
  if (!in.Bytes(4, &magic) || std::memcmp(magic.data(), kMagic, 4) != 0) {
    return Malformed("not a vhost-user-fs state");
  }
  if (!in.U32(&version) || version != kVersion) {
    return Malformed(absl::StrCat("version ", version, ", this daemon reads ", kVersion));
  }
  if (!in.U64(&s.next_nodeid) || !in.U64(&s.next_fh)) return Malformed("truncated");
  if (s.next_nodeid <= kRootNodeId || s.next_fh == 0) return Malformed("id counters");
  uint32_t count;
  // Counts are checked against the bytes left (each entry takes at least 28), so a hostile
  // count reserves nothing.
  if (!in.U32(&count) || count > in.remaining() / 28) return Malformed("inode count");
  std::set<uint64_t> ids;
  for (uint32_t i = 0; i < count; ++i) {
    SavedInode node;
    uint32_t length;
    if (!in.U64(&node.nodeid) || !in.U64(&node.nlookup) || !in.U32(&node.type) ||
        !in.U32(&length) || !in.Bytes(length, &node.path)) {
      return Malformed("truncated inode");
    }
    if (node.nodeid <= kRootNodeId || node.nodeid >= s.next_nodeid ||
        !ids.insert(node.nodeid).second) {
      return Malformed(absl::StrCat("node id ", node.nodeid));
    }
    if (node.nlookup == 0 || (node.type & ~static_cast<uint32_t>(S_IFMT)) != 0 || node.type == 0) {
      return Malformed(absl::StrCat("node ", node.nodeid, ": lookups or type"));
    }
    s.inodes.push_back(std::move(node));
  }
  if (!in.U32(&count) || count > in.remaining() / 28) return Malformed("handle count");
  std::set<uint64_t> handles;
  for (uint32_t i = 0; i < count; ++i) {
    SavedHandle handle;
    uint32_t length;
    if (!in.U64(&handle.fh) || !in.U64(&handle.nodeid) || !in.U32(&handle.flags) ||
        !in.U32(&length) || !in.Bytes(length, &handle.path)) {
      return Malformed("truncated handle");
    }
    if (handle.fh == 0 || handle.fh >= s.next_fh || !handles.insert(handle.fh).second ||
        handle.nodeid == 0 || handle.nodeid >= s.next_nodeid) {
      return Malformed(absl::StrCat("file handle ", handle.fh));
    }
    if (handle.flags & ~static_cast<uint32_t>(kCarriedFlags)) {
      return Malformed(
          absl::StrCat("file handle ", handle.fh, ": open flags 0x", absl::Hex(handle.flags)));
    }
    s.handles.push_back(std::move(handle));
  }
  if (in.remaining() != 0) return Malformed("bytes after the end");
  return s;
}

}  // namespace

absl::StatusOr<UniqueFd> FuseServer::ResolvePath(const std::string& path) {
  if (!ValidPath(path)) return absl::InvalidArgumentError("not a path under the share");
  std::shared_ptr<Inode> root = inodes_->Get(kRootNodeId);
  UniqueFd current;
  int at = root->fd.get();
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (current) {
      // Only a directory is walked through: a symlink opened O_NOFOLLOW is not one.
      struct stat st;
      if (fstat(current.get(), &st) != 0) return absl::ErrnoToStatus(errno, "fstat");
      if (!S_ISDIR(st.st_mode)) return absl::NotFoundError("a component is not a directory");
      at = current.get();
    }
    const std::string name(part);
    UniqueFd next(openat(at, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!next) return absl::ErrnoToStatus(errno, "openat");
    current = std::move(next);
  }
  return current;
}

absl::StatusOr<std::string> FuseServer::PathOf(int fd, const std::string& root_link) {
  char link[PATH_MAX];
  const std::string name = std::to_string(fd);
  const ssize_t n = readlinkat(proc_fds_.get(), name.c_str(), link, sizeof(link) - 1);
  if (n < 0) return absl::ErrnoToStatus(errno, "readlink");
  const std::string full(link, n);
  // Inside the sandbox the shared directory is "/"; unsandboxed, its host path.
  const std::string prefix = root_link == "/" ? "/" : root_link + "/";
  if (full.compare(0, prefix.size(), prefix) != 0) {
    return absl::NotFoundError("not under the shared directory");
  }
  std::string path = full.substr(prefix.size());
  // The name may be stale (" (deleted)", a rename racing us): it counts only if it leads back
  // to this very file.
  ASSIGN_OR_RETURN(UniqueFd again, ResolvePath(path));
  struct stat want, got;
  if (fstat(fd, &want) != 0 || fstat(again.get(), &got) != 0 || want.st_dev != got.st_dev ||
      want.st_ino != got.st_ino) {
    return absl::NotFoundError("its name now leads elsewhere");
  }
  return path;
}

absl::StatusOr<std::string> FuseServer::SaveState() {
  {
    std::lock_guard<std::mutex> lock(locks_mu_);
    if (!lock_files_.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          lock_files_.size(), " lock owners hold host POSIX locks, which cannot migrate"));
    }
  }
  std::shared_ptr<Inode> root = inodes_->Get(kRootNodeId);
  char link[PATH_MAX];
  const std::string root_name = std::to_string(root->fd.get());
  const ssize_t n = readlinkat(proc_fds_.get(), root_name.c_str(), link, sizeof(link) - 1);
  if (n < 0) return absl::ErrnoToStatus(errno, "readlink of the shared directory");
  const std::string root_link(link, n);

  InodeTable::Snapshot snapshot = inodes_->Take();
  std::string out(kMagic, sizeof(kMagic));
  PutU32(&out, kVersion);
  PutU64(&out, snapshot.next_nodeid);
  PutU64(&out, snapshot.next_fh);
  std::string entries;
  uint32_t count = 0;
  size_t left_out = 0;
  for (const InodeTable::Snapshot::Held& held : snapshot.inodes) {
    absl::StatusOr<std::string> path = PathOf(held.inode->fd.get(), root_link);
    if (!path.ok()) {
      ++left_out;
      continue;
    }
    PutU64(&entries, held.inode->nodeid);
    PutU64(&entries, held.nlookup);
    PutU32(&entries, held.inode->type);
    PutPath(&entries, *path);
    ++count;
  }
  PutU32(&out, count);
  out += entries;
  entries.clear();
  count = 0;
  for (const auto& [fh, handle] : snapshot.handles) {
    absl::StatusOr<std::string> path = PathOf(handle->fd.get(), root_link);
    if (!path.ok()) {
      ++left_out;
      continue;
    }
    PutU64(&entries, fh);
    PutU64(&entries, handle->nodeid);
    PutU32(&entries, static_cast<uint32_t>(handle->flags & kCarriedFlags));
    PutPath(&entries, *path);
    ++count;
  }
  PutU32(&out, count);
  out += entries;
  LOG(INFO) << "fs state: " << snapshot.inodes.size() << " inodes, " << snapshot.handles.size()
            << " open files, " << left_out << " of them without a path (not carried)";
  return out;
}

absl::Status FuseServer::LoadState(absl::string_view state) {
  ASSIGN_OR_RETURN(SavedSession saved, Parse(state));
  Reset();  // the loaded session replaces whatever there was
  inodes_->SkipIds(saved.next_nodeid, saved.next_fh);
  size_t dropped = 0;
  auto drop = [&](absl::string_view what, const std::string& path, absl::string_view why) {
    ++dropped;
    LOG_EVERY_N(WARNING, 100) << "fs state: " << what << " \"" << path
                              << "\" not restored: " << why;
  };
  for (SavedInode& node : saved.inodes) {
    absl::StatusOr<UniqueFd> fd = ResolvePath(node.path);
    struct stat st;
    if (!fd.ok()) {
      drop("inode", node.path, fd.status().message());
      continue;
    }
    if (fstat(fd->get(), &st) != 0 || (st.st_mode & S_IFMT) != node.type) {
      drop("inode", node.path, "another type of file");
      continue;
    }
    auto inode = std::make_shared<Inode>();
    inode->nodeid = node.nodeid;
    inode->fd = *std::move(fd);
    inode->dev = st.st_dev;
    inode->ino = st.st_ino;
    inode->type = st.st_mode & S_IFMT;
    if (!inodes_->Restore(std::move(inode), node.nlookup)) {
      drop("inode", node.path, "the same file as another node");
    }
  }
  for (SavedHandle& saved_handle : saved.handles) {
    absl::StatusOr<UniqueFd> fd = ResolvePath(saved_handle.path);
    if (!fd.ok()) {
      drop("open file", saved_handle.path, fd.status().message());
      continue;
    }
    Inode file;
    struct stat st;
    if (fstat(fd->get(), &st) != 0) {
      drop("open file", saved_handle.path, "fstat");
      continue;
    }
    file.fd = *std::move(fd);
    file.type = st.st_mode & S_IFMT;
    // Its node, when restored, must be this file (a name reused meanwhile is another file).
    std::shared_ptr<Inode> node = inodes_->Get(saved_handle.nodeid);
    if (node != nullptr && (node->dev != st.st_dev || node->ino != st.st_ino)) {
      drop("open file", saved_handle.path, "not the file of its node");
      continue;
    }
    auto handle = std::make_shared<OpenFile>();
    handle->nodeid = saved_handle.nodeid;
    handle->flags = static_cast<int>(saved_handle.flags);
    const bool dir = file.type == S_IFDIR;
    // Reopen refuses what is neither a regular file nor a directory.
    handle->fd = UniqueFd(Reopen(file, dir ? O_RDONLY | O_DIRECTORY : handle->flags));
    if (!handle->fd) {
      drop("open file", saved_handle.path, strerror(errno));
      continue;
    }
    if (dir) handle->dir = std::make_unique<DirStream>();
    inodes_->RestoreHandle(saved_handle.fh, std::move(handle));  // ids are unique: parsed so
  }
  LOG(INFO) << "fs state loaded: " << saved.inodes.size() << " inodes, " << saved.handles.size()
            << " open files, " << dropped << " of them gone (their ids answer ESTALE/EBADF)";
  return absl::OkStatus();
}

}  // namespace vhost
