// The seccomp additions vhost-user-snd makes to the engine's base policy.
#ifndef VHOST_USER_SND_SND_SANDBOX_H_
#define VHOST_USER_SND_SND_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost::snd {

SandboxPolicy SndSandboxPolicy();

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_SND_SANDBOX_H_
