#include "common/testing/kernel_locks.h"

#include <fstream>
#include <string>

namespace vhost {
namespace testing {

int LockWaiters(ino_t ino) {
  std::ifstream locks("/proc/locks");
  const std::string inode = ":" + std::to_string(ino) + " ";
  int n = 0;
  for (std::string line; std::getline(locks, line);) {
    if (line.find("->") != std::string::npos && line.find(inode) != std::string::npos) ++n;
  }
  return n;
}

bool AwaitLockWaiters(ino_t ino, int count, absl::Duration timeout) {
  for (const absl::Time deadline = absl::Now() + timeout; LockWaiters(ino) < count;
       absl::SleepFor(absl::Milliseconds(1))) {
    if (absl::Now() >= deadline) return false;
  }
  return LockWaiters(ino) == count;
}

}  // namespace testing
}  // namespace vhost
