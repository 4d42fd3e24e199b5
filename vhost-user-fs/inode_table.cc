#include "vhost-user-fs/inode_table.h"

#include <algorithm>

namespace vhost {

InodeTable::InodeTable(UniqueFd root) {
  struct stat st {};
  fstat(root.get(), &st);
  auto inode = std::make_shared<Inode>();
  inode->nodeid = kRootNodeId;
  inode->fd = std::move(root);
  inode->dev = st.st_dev;
  inode->ino = st.st_ino;
  inode->type = st.st_mode & S_IFMT;
  by_file_[{st.st_dev, st.st_ino}] = kRootNodeId;
  by_id_[kRootNodeId] = {std::move(inode), 1};
}

std::shared_ptr<Inode> InodeTable::Get(uint64_t nodeid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(nodeid);
  return it == by_id_.end() ? nullptr : it->second.inode;
}

std::shared_ptr<Inode> InodeTable::Ref(UniqueFd fd, const struct stat& st) {
  std::lock_guard<std::mutex> lock(mu_);
  auto known = by_file_.find({st.st_dev, st.st_ino});
  if (known != by_file_.end()) {
    Entry& e = by_id_[known->second];
    ++e.nlookup;
    return e.inode;
  }
  auto inode = std::make_shared<Inode>();
  inode->nodeid = next_id_++;
  inode->fd = std::move(fd);
  inode->dev = st.st_dev;
  inode->ino = st.st_ino;
  inode->type = st.st_mode & S_IFMT;
  by_file_[{st.st_dev, st.st_ino}] = inode->nodeid;
  by_id_[inode->nodeid] = {inode, 1};
  return inode;
}

void InodeTable::Forget(uint64_t nodeid, uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_id_.find(nodeid);
  if (it == by_id_.end() || nodeid == kRootNodeId) return;
  Entry& e = it->second;
  e.nlookup = n >= e.nlookup ? 0 : e.nlookup - n;
  if (e.nlookup > 0) return;
  by_file_.erase({e.inode->dev, e.inode->ino});
  by_id_.erase(it);  // the descriptor closes when the last request using it is done
}

size_t InodeTable::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return by_id_.size();
}

void InodeTable::Reset() {
  std::map<uint64_t, Entry> by_id;
  std::map<uint64_t, std::shared_ptr<OpenFile>> handles;
  {
    std::lock_guard<std::mutex> lock(mu_);
    by_id.swap(by_id_);
    handles.swap(handles_);
    dirs_ = 0;
    auto root = by_id.find(kRootNodeId);
    by_id_.insert(by_id.extract(root));
    by_file_.clear();
    const Inode& r = *by_id_.at(kRootNodeId).inode;
    by_file_[{r.dev, r.ino}] = kRootNodeId;
  }
  // The descriptors close here, outside the lock (those a request still uses when it is done).
}

uint64_t InodeTable::AddHandle(std::shared_ptr<OpenFile> handle) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t fh = next_fh_++;
  if (handle->dir != nullptr) ++dirs_;
  handles_[fh] = std::move(handle);
  return fh;
}

std::shared_ptr<OpenFile> InodeTable::GetHandle(uint64_t fh) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = handles_.find(fh);
  return it == handles_.end() ? nullptr : it->second;
}

void InodeTable::ReleaseHandle(uint64_t fh) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end()) return;
  if (it->second->dir != nullptr) --dirs_;
  handles_.erase(it);
}

size_t InodeTable::dir_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return dirs_;
}

size_t InodeTable::handle_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return handles_.size();
}

InodeTable::Snapshot InodeTable::Take() {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot snapshot;
  snapshot.next_nodeid = next_id_;
  snapshot.next_fh = next_fh_;
  for (const auto& [nodeid, entry] : by_id_) {
    if (nodeid != kRootNodeId) snapshot.inodes.push_back({entry.inode, entry.nlookup});
  }
  snapshot.handles.assign(handles_.begin(), handles_.end());
  return snapshot;
}

void InodeTable::SkipIds(uint64_t next_nodeid, uint64_t next_fh) {
  std::lock_guard<std::mutex> lock(mu_);
  next_id_ = std::max(next_id_, next_nodeid);
  next_fh_ = std::max(next_fh_, next_fh);
}

bool InodeTable::Restore(std::shared_ptr<Inode> inode, uint64_t nlookup) {
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t nodeid = inode->nodeid;
  if (by_id_.count(nodeid) != 0 || by_file_.count({inode->dev, inode->ino}) != 0) return false;
  by_file_[{inode->dev, inode->ino}] = nodeid;
  by_id_[nodeid] = {std::move(inode), nlookup};
  return true;
}

bool InodeTable::RestoreHandle(uint64_t fh, std::shared_ptr<OpenFile> handle) {
  std::lock_guard<std::mutex> lock(mu_);
  const bool dir = handle->dir != nullptr;
  if (!handles_.emplace(fh, std::move(handle)).second) return false;
  if (dir) ++dirs_;
  return true;
}

}  // namespace vhost
