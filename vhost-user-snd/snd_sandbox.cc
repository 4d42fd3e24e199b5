#include "vhost-user-snd/snd_sandbox.h"

namespace vhost::snd {

// The tx and rx timerfds are made before the filter and re-armed at each period; the WAV sink is
// (re)created by each Open with new parameters (openat) and kept true with pwrite; the WAV
// source is read with pread.
SandboxPolicy SndSandboxPolicy() {
  SandboxPolicy policy;
  policy.Allow("timerfd_settime");
  policy.Allow("openat").Allow("pwrite64").Allow("pread64");
  return policy;
}

}  // namespace vhost::snd
