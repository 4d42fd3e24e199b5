#include "vhost-user-snd/snd_sandbox.h"

namespace vhost::snd {

// The tx and rx timerfds are made before the filter and re-armed at each period. The WAV sink
// is opened at start and rewritten from the start by each Open with new parameters (ftruncate
// on that descriptor; no file is opened after the filter) and kept true with pwrite; the WAV
// source is read with pread.
SandboxPolicy SndSandboxPolicy() {
  SandboxPolicy policy;
  policy.Allow("timerfd_settime");
  policy.Allow("ftruncate").Allow("pwrite64").Allow("pread64");
  return policy;
}

}  // namespace vhost::snd
