// Disks made from descriptors a client sends (scsi's hot-added LUNs): only a regular file or a
// block device, opened as the disk needs, is accepted.
#include "common/block/file_disk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::StatusIs;

class FileDiskFromFdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* dir = getenv("TEST_TMPDIR");
    dir_ = dir != nullptr ? dir : "/tmp";
    path_ = dir_ + "/disk_XXXXXX";
    UniqueFd fd(mkstemp(path_.data()));
    ASSERT_TRUE(fd);
    ASSERT_EQ(ftruncate(fd.get(), 1 << 20), 0);
  }
  void TearDown() override { unlink(path_.c_str()); }
  UniqueFd Open(int flags) { return UniqueFd(open(path_.c_str(), flags | O_CLOEXEC)); }

  std::string dir_;
  std::string path_;
};

TEST_F(FileDiskFromFdsTest, ServesTheFileItWasGiven) {
  absl::StatusOr<std::unique_ptr<Disk>> disk =
      FileDiskFromFds(Open(O_RDWR), UniqueFd(), "lun", FileDiskOptions());
  ASSERT_OK(disk);
  EXPECT_EQ((*disk)->size_bytes(), 1u << 20);
  ASSERT_OK((*disk)->WriteZeroes(0, 4096, /*unmap=*/false));
  FileDiskOptions read_only;
  read_only.read_only = true;
  EXPECT_OK(FileDiskFromFds(Open(O_RDONLY), UniqueFd(), "lun", read_only));
}

TEST_F(FileDiskFromFdsTest, RefusesWhatIsNotADiskOrNotOpenAsNeeded) {
  // Read-only descriptor for a writable disk.
  EXPECT_THAT(FileDiskFromFds(Open(O_RDONLY), UniqueFd(), "lun", FileDiskOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A directory, a pipe, nothing.
  EXPECT_THAT(FileDiskFromFds(UniqueFd(open(dir_.c_str(), O_RDONLY | O_DIRECTORY)), UniqueFd(),
                              "lun", FileDiskOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  UniqueFd write_end(pipe_fds[1]);
  EXPECT_THAT(FileDiskFromFds(UniqueFd(pipe_fds[0]), UniqueFd(), "lun", FileDiskOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(FileDiskFromFds(UniqueFd(), UniqueFd(), "lun", FileDiskOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // A second descriptor that is not O_DIRECT, or of another file.
  EXPECT_THAT(FileDiskFromFds(Open(O_RDWR), Open(O_RDWR), "lun", FileDiskOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  std::string other = dir_ + "/other_XXXXXX";
  UniqueFd other_fd(mkstemp(other.data()));
  ASSERT_TRUE(other_fd);
  UniqueFd other_direct(open(other.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC));
  unlink(other.c_str());
  if (other_direct) {  // tmpfs has no O_DIRECT
    EXPECT_THAT(FileDiskFromFds(Open(O_RDWR), std::move(other_direct), "lun", FileDiskOptions()),
                StatusIs(absl::StatusCode::kInvalidArgument));
  }
}

}  // namespace
}  // namespace vhost
