#include "vhost-user-blk/blk_sandbox.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// Every syscall once, every name known: the policy the daemon installs.
TEST(BlkSandboxPolicyTest, Builds) { EXPECT_OK(BlkSandboxPolicy().Build()); }

}  // namespace
}  // namespace vhost
