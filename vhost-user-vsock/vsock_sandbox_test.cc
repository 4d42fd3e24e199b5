#include "vhost-user-vsock/vsock_sandbox.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// Every syscall once, every name known: the policy the daemon installs.
TEST(VsockSandboxPolicyTest, Builds) { EXPECT_OK(VsockSandboxPolicy().Build()); }

}  // namespace
}  // namespace vhost
