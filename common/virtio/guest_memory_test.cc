#include "common/virtio/guest_memory.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::StatusIs;

UniqueFd MemFd(size_t size) {
  UniqueFd fd(memfd_create("t", MFD_CLOEXEC));
  EXPECT_EQ(ftruncate(fd.get(), size), 0);
  return fd;
}

TEST(GuestMemoryTest, TranslatesInsideRegionsOnly) {
  FakeGuestMemory ram({{0x0, 0x10000}, {0x100000, 0x10000}});
  const GuestMemory& m = *ram.memory();
  EXPECT_NE(m.TranslateGpa(0x0, 0x10000), nullptr);
  EXPECT_EQ(m.TranslateGpa(0x0, 0x10001), nullptr);
  EXPECT_EQ(m.TranslateGpa(0xffff, 2), nullptr);
  EXPECT_EQ(m.TranslateGpa(0x10000, 1), nullptr);  // the hole between regions
  EXPECT_NE(m.TranslateGpa(0x10ffff, 1), nullptr);
  EXPECT_EQ(m.TranslateGpa(0x110000, 1), nullptr);
  EXPECT_EQ(m.TranslateGpa(~uint64_t{0}, 2), nullptr);        // wraps
  EXPECT_EQ(m.TranslateGpa(0x8, ~uint64_t{0} - 4), nullptr);  // length overflow
  EXPECT_EQ(m.TranslateUva(FakeGuestMemory::Uva(0x100000), 0x10000),
            m.TranslateGpa(0x100000, 0x10000));
  EXPECT_EQ(m.TranslateUva(FakeGuestMemory::Uva(0x100000), 0x10001), nullptr);
}

TEST(GuestMemoryTest, SegmentsSpanAdjacentRegionsButNotHoles) {
  FakeGuestMemory ram({{0x0, 0x1000}, {0x1000, 0x1000}, {0x3000, 0x1000}});
  IovecList out;
  ASSERT_TRUE(ram.memory()->AppendSegments(0x800, 0x1000, 16, &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].iov_len, 0x800u);
  EXPECT_EQ(out[1].iov_len, 0x800u);
  out.clear();
  EXPECT_FALSE(ram.memory()->AppendSegments(0x1800, 0x1000, 16, &out));  // runs into the hole
  out.clear();
  EXPECT_FALSE(ram.memory()->AppendSegments(0x800, 0x1000, 1, &out));  // too many segments
}

TEST(GuestMemoryTest, RejectsOverlappingRegions) {
  UniqueFd a = MemFd(0x2000), b = MemFd(0x2000);
  auto ra = MapGuestRegion({0x0, 0x2000, 0x10000, 0}, a.get());
  auto rb = MapGuestRegion({0x1000, 0x2000, 0x90000, 0}, b.get());
  ASSERT_OK(ra);
  ASSERT_OK(rb);
  EXPECT_THAT(GuestMemory::Create({*ra, *rb}), StatusIs(absl::StatusCode::kInvalidArgument));
  // Overlap in front-end virtual addresses is just as ambiguous.
  auto rc = MapGuestRegion({0x10000, 0x2000, 0x11000, 0}, b.get());
  ASSERT_OK(rc);
  EXPECT_THAT(GuestMemory::Create({*ra, *rc}), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(GuestMemoryTest, RejectsRegionsLargerThanTheirFile) {
  UniqueFd fd = MemFd(0x1000);
  EXPECT_THAT(MapGuestRegion({0x0, 0x2000, 0x0, 0}, fd.get()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MapGuestRegion({0x0, 0x1000, 0x0, 0x1000}, fd.get()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MapGuestRegion({~uint64_t{0} - 0x10, 0x1000, 0x0, 0}, fd.get()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MapGuestRegion({0x0, 0x0, 0x0, 0}, fd.get()),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(GuestMemoryTest, MmapFailureIsAnError) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
  EXPECT_FALSE(MapGuestRegion({0x0, 0x1000, 0x0, 0}, r.get()).ok());
}

TEST(GuestMemoryTest, AddAndRemoveRegions) {
  FakeGuestMemory ram({{0x0, 0x1000}});
  UniqueFd fd = MemFd(0x1000);
  auto region = MapGuestRegion({0x5000, 0x1000, 0x9000000, 0}, fd.get());
  ASSERT_OK(region);
  auto bigger = ram.memory()->WithRegion(*region);
  ASSERT_OK(bigger);
  EXPECT_NE((*bigger)->TranslateGpa(0x5000, 0x1000), nullptr);
  EXPECT_EQ(ram.memory()->TranslateGpa(0x5000, 1), nullptr);  // the old table is unchanged
  auto smaller = (*bigger)->WithoutRegion({0x5000, 0x1000, 0x9000000, 0});
  ASSERT_OK(smaller);
  EXPECT_EQ((*smaller)->TranslateGpa(0x5000, 1), nullptr);
  EXPECT_THAT((*smaller)->WithoutRegion({0x5000, 0x1000, 0, 0}),
              StatusIs(absl::StatusCode::kNotFound));
}

// The front end shrinks its memory file after the table was sent: accesses beyond the new end
// would raise SIGBUS and kill the whole process. They read zeros instead, the pages before the
// new end stay shared with the file, and the table is flagged as faulted.
TEST(GuestMemoryTest, SurvivesItsFileShrinkingUnderTheMapping) {
  UniqueFd fd = MemFd(0x4000);
  auto region = MapGuestRegion({0x0, 0x4000, 0x10000, 0}, fd.get());
  ASSERT_OK(region);
  auto memory = GuestMemory::Create({*region});
  ASSERT_OK(memory);
  volatile uint8_t* tail = (*memory)->TranslateGpa(0x2000, 1);
  *tail = 7;
  ASSERT_EQ(ftruncate(fd.get(), 0x1000), 0);
  EXPECT_EQ(*tail, 0);  // SIGBUS without the handler
  *tail = 9;            // writes land in the zero mapping, harmlessly
  ASSERT_EQ(pwrite(fd.get(), "x", 1, 0), 1);
  EXPECT_EQ(*(*memory)->TranslateGpa(0, 1), 'x');  // still the file
  EXPECT_TRUE((*memory)->faulted());
}

// A SIGBUS outside guest memory is not swallowed: it goes to the previous disposition, so the
// process dies of it as before (killed by the signal, or a sanitizer's report and exit).
TEST(GuestMemoryDeathTest, OtherFaultsStillKill) {
  EXPECT_EXIT(
      {
        UniqueFd fd = MemFd(0x4000);
        auto region = MapGuestRegion({0x0, 0x4000, 0x10000, 0}, fd.get());  // handler installed
        UniqueFd other = MemFd(0x2000);
        void* p = mmap(nullptr, 0x2000, PROT_READ, MAP_SHARED, other.get(), 0);
        // Exit status 0 (survived, or could not set up) fails the test.
        if (!region.ok() || ftruncate(other.get(), 0) != 0 || p == MAP_FAILED) _exit(0);
        _exit(static_cast<volatile uint8_t*>(p)[0x1000]);
      },
      [](int status) { return !(WIFEXITED(status) && WEXITSTATUS(status) == 0); }, "");
}

}  // namespace
}  // namespace vhost
