#include "vhost-user-gpio/gpio_sandbox.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// Every syscall once, every name known: the policy the daemon installs.
TEST(GpioSandboxPolicyTest, Builds) { EXPECT_OK(GpioSandboxPolicy().Build()); }

}  // namespace
}  // namespace vhost
