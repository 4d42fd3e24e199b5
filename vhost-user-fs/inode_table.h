// The inodes the guest knows (FUSE node ids) and the files and directories it has open (FUSE
// file handles), both backed by file descriptors: an inode is an O_PATH descriptor, so a file
// renamed or moved on the host stays the same file for the guest, and no path is ever resolved
// from the top of the shared directory again.
//
// Thread-safe: request queues run on threads of their own.
#ifndef VHOST_USER_FS_INODE_TABLE_H_
#define VHOST_USER_FS_INODE_TABLE_H_

#include <sys/stat.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

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

// An open directory's entries as READDIR hands them out: getdents64 batches read from the open
// descriptor, consumed in order. `pos` is the cookie (d_off) of the last entry consumed, 0 at
// the start: both the descriptor and the batch stand there, so a READDIR at that offset (each
// one after the first, when the guest reads on) goes on without a seek. A seek would drop the
// batch, and on a hashed ext4 directory make the kernel rebuild its hash-ordered entry cache.
struct DirStream {
  static constexpr size_t kBatch = 32 * 1024;  // as glibc's readdir asks for
  std::unique_ptr<char[]> batch;               // kBatch bytes, from the first READDIR on
  size_t at = 0, end = 0;                      // the records not yet consumed: batch[at, end)
  uint64_t pos = 0;
  // Whether getdents64 ran since the open or the last seek: an offset of 0 is then a rewind,
  // which reads the directory afresh (rewinddir), not the batch read before.
  bool read = false;
};

// An open file or directory.
struct OpenFile {
  UniqueFd fd;
  // What it was opened as, for a migration to open it again: the node and the open flags.
  uint64_t nodeid = 0;
  int flags = 0;
  // Directories: the stream READDIR walks (over fd), and the lock that serializes walking it.
  std::mutex mu;
  std::unique_ptr<DirStream> dir;
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
  // Open directories among the handles (each holds a stream with its own buffer).
  size_t dir_count();

  // For migration: what the guest holds, taken while no request runs.
  struct Snapshot {
    uint64_t next_nodeid = 0;
    uint64_t next_fh = 0;
    struct Held {
      std::shared_ptr<Inode> inode;
      uint64_t nlookup = 0;
    };
    std::vector<Held> inodes;  // every inode but the root
    std::vector<std::pair<uint64_t, std::shared_ptr<OpenFile>>> handles;
  };
  Snapshot Take();
  // Restoring one: ids from here on start at (at least) these, so no id the guest held is
  // given to another file.
  void SkipIds(uint64_t next_nodeid, uint64_t next_fh);
  // Adds `inode` under its own node id with `nlookup` lookups; false (nothing added) when the
  // id or the file is already known.
  bool Restore(std::shared_ptr<Inode> inode, uint64_t nlookup);
  bool RestoreHandle(uint64_t fh, std::shared_ptr<OpenFile> handle);

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
  size_t dirs_ = 0;  // handles with a directory stream
  uint64_t next_fh_ = 1;
};

}  // namespace vhost

#endif  // VHOST_USER_FS_INODE_TABLE_H_
