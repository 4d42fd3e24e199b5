#include "vhost-user-fs/fs_sandbox.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// Every syscall once, every name known: the policy the daemon installs.
TEST(FsSandboxPolicyTest, Builds) { EXPECT_OK(FsSandboxPolicy().Build()); }

}  // namespace
}  // namespace vhost
