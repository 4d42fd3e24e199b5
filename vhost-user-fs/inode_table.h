// The inodes the guest knows (FUSE node ids) and the files and directories it has open (FUSE
// file handles), both backed by file descriptors: an inode is an O_PATH descriptor, so a file
// renamed or moved on the host stays the same file for the guest, and no path is ever resolved
// from the top of the shared directory again.
//
// Thread-safe: request queues run on threads of their own.
#ifndef VHOST_USER_FS_INODE_TABLE_H_
#define VHOST_USER_FS_INODE_TABLE_H_

#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "common/base/unique_fd.h"

namespace vhost {

constexpr uint64_t kRootNodeId = 1;  // FUSE_ROOT_ID

struct Inode {
  uint64_t nodeid = 0;
  UniqueFd fd;  // O_PATH
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t type = 0;  // S_IFMT bits
};

// An open file or directory.
struct OpenFile {
  UniqueFd fd;
  // Directories: the stream READDIR walks, and the lock that serializes walking it.
  std::mutex mu;
  DIR* dir = nullptr;
  ~OpenFile() {
    if (dir != nullptr) closedir(dir);  // closes fd's descriptor too
  }
};

class InodeTable {
 public:
  explicit InodeTable(UniqueFd root);

  std::shared_ptr<Inode> Get(uint64_t nodeid);
  // The inode for `fd` (O_PATH) with attributes `st`, new or already known (then `fd` is
  // dropped: hard links share an inode); its lookup count goes up by one.
  std::shared_ptr<Inode> Ref(UniqueFd fd, const struct stat& st);
  // FORGET: the lookup count goes down by `n`; at zero the inode goes (not the root).
  void Forget(uint64_t nodeid, uint64_t n);
  size_t size();
  // Drops every inode but the root and every handle (node ids and handles are not reused).
  void Reset();

  uint64_t AddHandle(std::shared_ptr<OpenFile> handle);
  std::shared_ptr<OpenFile> GetHandle(uint64_t fh);
  void ReleaseHandle(uint64_t fh);
  size_t handle_count();

 private:
  struct Entry {
    std::shared_ptr<Inode> inode;
    uint64_t nlookup = 0;
  };
  std::mutex mu_;
  std::map<uint64_t, Entry> by_id_;
  std::map<std::pair<dev_t, ino_t>, uint64_t> by_file_;
  uint64_t next_id_ = kRootNodeId + 1;
  std::map<uint64_t, std::shared_ptr<OpenFile>> handles_;
  uint64_t next_fh_ = 1;
};

}  // namespace vhost

#endif  // VHOST_USER_FS_INODE_TABLE_H_
