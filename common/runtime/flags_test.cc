#include "common/runtime/flags.h"

#include "common/testing/status_matchers.h"
#include "gflags/gflags.h"
#include "gtest/gtest.h"

DEFINE_string(test_path, "", "a string flag");
DEFINE_int32(test_count, 1, "an int flag");
DEFINE_bool(test_switch, false, "a bool flag");

namespace vhost {
namespace {

using ::vhost::testing::StatusIs;

absl::Status Parse(std::vector<std::string> args,
                   const std::map<char, std::string>& short_names = {},
                   const std::set<std::string>& repeatable = {}) {
  std::vector<char*> argv = {const_cast<char*>("prog")};
  for (std::string& a : args) argv.push_back(a.data());
  return ParseFlags(argv.size(), argv.data(), short_names, repeatable);
}

TEST(FlagsTest, AcceptsTheUsualSpellings) {
  ASSERT_OK(Parse({"--test-path=/a", "--test_count", "7", "--test-switch"}));
  EXPECT_EQ(FLAGS_test_path, "/a");
  EXPECT_EQ(FLAGS_test_count, 7);
  EXPECT_TRUE(FLAGS_test_switch);
  ASSERT_OK(Parse({"-test-path", "/b", "--notest-switch"}));
  EXPECT_EQ(FLAGS_test_path, "/b");
  EXPECT_FALSE(FLAGS_test_switch);
  ASSERT_OK(Parse({"-p", "/c"}, {{'p', "test_path"}}));
  EXPECT_EQ(FLAGS_test_path, "/c");
}

TEST(FlagsTest, RepeatableFlagKeepsEveryValue) {
  ASSERT_OK(Parse({"--test-path=/a", "--test_path", "/b", "--test-path=/c"}, {}, {"test_path"}));
  EXPECT_EQ(FLAGS_test_path, "/a;/b;/c");
  // A new parse starts from the value given, not the previous parse's.
  ASSERT_OK(Parse({"--test-path=/d"}, {}, {"test_path"}));
  EXPECT_EQ(FLAGS_test_path, "/d");
  // Not repeatable: the last one wins, as in gflags.
  ASSERT_OK(Parse({"--test-path=/a", "--test-path=/b"}));
  EXPECT_EQ(FLAGS_test_path, "/b");
}

TEST(FlagsTest, RejectsBadInputNamingTheFlag) {
  absl::Status unknown = Parse({"--nope=1"});
  EXPECT_THAT(unknown, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_NE(unknown.message().find("--nope"), absl::string_view::npos);
  absl::Status bad_value = Parse({"--test-count=many"});
  EXPECT_NE(bad_value.message().find("--test-count"), absl::string_view::npos);
  absl::Status missing = Parse({"--test-count"});
  EXPECT_NE(missing.message().find("needs a value"), absl::string_view::npos);
  EXPECT_THAT(Parse({"stray"}), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Parse({"--", "stray"}), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost
