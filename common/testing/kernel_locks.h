// Lock requests that wait in the host kernel, for tests of servers that take POSIX locks for a
// guest (vhost-user-fs --posix-lock).
#ifndef COMMON_TESTING_KERNEL_LOCKS_H_
#define COMMON_TESTING_KERNEL_LOCKS_H_

#include <sys/types.h>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace vhost {
namespace testing {

// How many lock requests wait for the file with inode `ino` (the "->" lines of /proc/locks).
int LockWaiters(ino_t ino);

// Waits until `count` lock requests wait for `ino`; false if that takes longer than `timeout`.
// A thread blocked in F_OFD_SETLKW raises no event anyone can wait on: /proc/locks is the only
// place it shows, so this reads it again every millisecond until the deadline.
bool AwaitLockWaiters(ino_t ino, int count, absl::Duration timeout);

}  // namespace testing
}  // namespace vhost

#endif  // COMMON_TESTING_KERNEL_LOCKS_H_
