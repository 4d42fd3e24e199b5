// gtest matchers for absl::Status / StatusOr (Debian's Abseil ships none).
#ifndef COMMON_TESTING_STATUS_MATCHERS_H_
#define COMMON_TESTING_STATUS_MATCHERS_H_

#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace vhost {
namespace testing {

inline const absl::Status& GetStatus(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  if (!status.ok()) *result_listener << "status is " << status;
  return status.ok();
}

MATCHER_P(StatusIs, code, "has status code " + ::testing::PrintToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code;
}

}  // namespace testing
}  // namespace vhost

// `ASSERT_OK_AND_ASSIGN(auto x, Foo());` asserts Foo() is OK and binds its value.
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL(VHOST_TESTING_CONCAT(statusor_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  ASSERT_OK(statusor);                                 \
  lhs = std::move(statusor).value()
#define VHOST_TESTING_CONCAT_INNER(a, b) a##b
#define VHOST_TESTING_CONCAT(a, b) VHOST_TESTING_CONCAT_INNER(a, b)

#define ASSERT_OK(expr) ASSERT_THAT(expr, ::vhost::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT(expr, ::vhost::testing::IsOk())

#endif  // COMMON_TESTING_STATUS_MATCHERS_H_
