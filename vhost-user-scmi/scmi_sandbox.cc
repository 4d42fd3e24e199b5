#include "vhost-user-scmi/scmi_sandbox.h"

namespace vhost::scmi {

// Nothing beyond the base: the platform is simulated in memory, its config is read before the
// filter, the control socket accepts and reads and writes (base), and the event queue's
// periodic sensor updates are the worker's timeouts. No queue is tracked in an inflight region
// (commands have effects), so no memfd_create.
SandboxPolicy ScmiSandboxPolicy() { return SandboxPolicy(); }

}  // namespace vhost::scmi
