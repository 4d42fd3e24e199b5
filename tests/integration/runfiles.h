// Where a test finds the binaries it depends on (Bazel `data`).
#ifndef TESTS_INTEGRATION_RUNFILES_H_
#define TESTS_INTEGRATION_RUNFILES_H_

#include <cstdlib>
#include <string>

namespace vhost {

// Path of `workspace_relative` (e.g. "vhost-user-rng/vhost-user-rng") in the test's runfiles,
// or the path itself when not run by Bazel.
inline std::string RunfilePath(const std::string& workspace_relative) {
  const char* root = std::getenv("TEST_SRCDIR");
  if (root == nullptr) return workspace_relative;
  return std::string(root) + "/vhost_user_suite/" + workspace_relative;
}

}  // namespace vhost

#endif  // TESTS_INTEGRATION_RUNFILES_H_
