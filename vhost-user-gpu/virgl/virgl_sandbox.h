// What the 3D daemon (vhost-user-gpu-virgl) may do while serving, beyond the engine's base:
// Mesa compiles shaders to machine code at run time (llvmpipe's LLVM, and hardware drivers'
// compilers), so memory may be made executable, and its drivers start threads as contexts come.
// Files are not opened (Mesa's shader cache is turned off before it starts); with a render
// node, its DRM ioctls are allowed.
#ifndef VHOST_USER_GPU_VIRGL_VIRGL_SANDBOX_H_
#define VHOST_USER_GPU_VIRGL_VIRGL_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost::gpu {

SandboxPolicy VirglSandboxPolicy(bool render_node);

}  // namespace vhost::gpu

#endif  // VHOST_USER_GPU_VIRGL_VIRGL_SANDBOX_H_
