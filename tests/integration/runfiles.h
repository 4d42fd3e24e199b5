// Where a test finds the binaries it depends on (Bazel `data`).
#ifndef TESTS_INTEGRATION_RUNFILES_H_
#define TESTS_INTEGRATION_RUNFILES_H_

#include <unistd.h>

#include <cstdlib>
#include <string>

namespace vhost {

// Path of `workspace_relative` (e.g. "vhost-user-rng/vhost-user-rng") in the runfiles of this
// test (bazel test) or binary (bazel run, or run from bazel-bin).
inline std::string RunfilePath(const std::string& workspace_relative) {
  if (const char* root = std::getenv("TEST_SRCDIR")) {
    return std::string(root) + "/vhost_user_suite/" + workspace_relative;
  }
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) return workspace_relative;
  return std::string(self, n) + ".runfiles/vhost_user_suite/" + workspace_relative;
}

}  // namespace vhost

#endif  // TESTS_INTEGRATION_RUNFILES_H_
