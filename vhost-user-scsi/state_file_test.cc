#include "vhost-user-scsi/state_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost::scsi {
namespace {

class StateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = getenv("TEST_TMPDIR");
    path_ = std::string(dir != nullptr ? dir : "/tmp") + "/state_XXXXXX";
    close(mkstemp(path_.data()));
  }
  void TearDown() override { unlink(path_.c_str()); }
  std::unique_ptr<StateFile> Open() {
    absl::StatusOr<std::unique_ptr<StateFile>> file = StateFile::Open(path_);
    EXPECT_OK(file);
    return file.ok() ? *std::move(file) : nullptr;
  }
  std::string path_;
};

TEST_F(StateFileTest, EmptyUntilSavedThenTheLatestSurvivesReopening) {
  std::unique_ptr<StateFile> file = Open();
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> state, file->Load());
  EXPECT_TRUE(state.empty());
  for (uint8_t i = 1; i <= 5; ++i) ASSERT_OK(file->Save(std::vector<uint8_t>(i * 10, i)));
  file = Open();
  ASSERT_OK_AND_ASSIGN(state, file->Load());
  EXPECT_EQ(state, std::vector<uint8_t>(50, 5));
}

TEST_F(StateFileTest, ATornSaveLeavesThePreviousState) {
  std::unique_ptr<StateFile> file = Open();
  ASSERT_OK(file->Load().status());
  ASSERT_OK(file->Save(std::vector<uint8_t>(100, 1)));  // slot 0
  ASSERT_OK(file->Save(std::vector<uint8_t>(100, 2)));  // slot 1
  // A crash in the middle of the next save (slot 0): its bytes half written.
  const int fd = open(path_.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "garbage", 7, 40), 7);
  close(fd);
  file = Open();
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> state, file->Load());
  EXPECT_EQ(state, std::vector<uint8_t>(100, 2));
  // And saving goes on from there, into the damaged slot.
  ASSERT_OK(file->Save(std::vector<uint8_t>(3, 3)));
  file = Open();
  ASSERT_OK_AND_ASSIGN(state, file->Load());
  EXPECT_EQ(state, std::vector<uint8_t>(3, 3));
}

TEST_F(StateFileTest, RefusesStateLargerThanASlot) {
  std::unique_ptr<StateFile> file = Open();
  ASSERT_OK(file->Load().status());
  EXPECT_FALSE(file->Save(std::vector<uint8_t>(StateFile::kMaxState + 1)).ok());
}

}  // namespace
}  // namespace vhost::scsi
