#include "common/vhost_user/message.h"

#include <sys/eventfd.h>
#include <sys/socket.h>

#include "common/testing/status_matchers.h"
#include "common/vhost_user/channel.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::StatusIs;

Message Request(FrontendRequest r, uint32_t flags = 0) {
  return MakeRequest(static_cast<uint32_t>(r), flags);
}

UniqueFd EventFd() { return UniqueFd(eventfd(0, EFD_CLOEXEC)); }

TEST(ValidateTest, AcceptsWellFormedRequests) {
  Message m = Request(FrontendRequest::kSetFeatures);
  m.Append(uint64_t{1});
  EXPECT_OK(ValidateFrontendMessage(m));
  Message kick = Request(FrontendRequest::kSetVringKick);
  kick.Append(uint64_t{0});
  kick.fds.push_back(EventFd());
  EXPECT_OK(ValidateFrontendMessage(kick));
  Message nofd = Request(FrontendRequest::kSetVringKick);
  nofd.Append(uint64_t{kVringNoFdFlag});
  EXPECT_OK(ValidateFrontendMessage(nofd));
}

TEST(ValidateTest, RejectsWrongPayloadSizes) {
  Message m = Request(FrontendRequest::kSetFeatures);
  m.Append(uint32_t{1});
  EXPECT_THAT(ValidateFrontendMessage(m), StatusIs(absl::StatusCode::kInvalidArgument));
  Message addr = Request(FrontendRequest::kSetVringAddr);
  addr.Append(VringState{0, 0});
  EXPECT_THAT(ValidateFrontendMessage(addr), StatusIs(absl::StatusCode::kInvalidArgument));
  Message config = Request(FrontendRequest::kGetConfig);
  config.Append(ConfigHeader{0, 8, 0});  // claims 8 bytes, carries none
  EXPECT_THAT(ValidateFrontendMessage(config), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ValidateTest, RejectsUnknownAndUnofferedRequests) {
  EXPECT_THAT(ValidateFrontendMessage(MakeRequest(999)),
              StatusIs(absl::StatusCode::kUnimplemented));
  Message postcopy = Request(FrontendRequest::kPostcopyAdvise);
  EXPECT_THAT(ValidateFrontendMessage(postcopy), StatusIs(absl::StatusCode::kUnimplemented));
}

TEST(ValidateTest, LogBaseCarriesItsDescriptionAndOneFd) {
  Message log = Request(FrontendRequest::kSetLogBase);
  log.Append(LogDescription{4096, 0});
  EXPECT_THAT(ValidateFrontendMessage(log), StatusIs(absl::StatusCode::kInvalidArgument));
  log.fds.push_back(EventFd());
  EXPECT_OK(ValidateFrontendMessage(log));
  Message short_log = Request(FrontendRequest::kSetLogBase);
  short_log.Append(uint64_t{4096});
  short_log.fds.push_back(EventFd());
  EXPECT_THAT(ValidateFrontendMessage(short_log), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ValidateTest, RejectsBadVersionAndFdCounts) {
  Message m = MakeRequest(static_cast<uint32_t>(FrontendRequest::kGetFeatures));
  m.header.flags = 2;
  EXPECT_THAT(ValidateFrontendMessage(m), StatusIs(absl::StatusCode::kInvalidArgument));
  Message owner = Request(FrontendRequest::kSetOwner);
  owner.fds.push_back(EventFd());
  EXPECT_THAT(ValidateFrontendMessage(owner), StatusIs(absl::StatusCode::kInvalidArgument));
  Message kick = Request(FrontendRequest::kSetVringKick);
  kick.Append(uint64_t{0});  // promises an fd, carries none
  EXPECT_THAT(ValidateFrontendMessage(kick), StatusIs(absl::StatusCode::kInvalidArgument));
  Message table = Request(FrontendRequest::kSetMemTable);
  table.Append(MemoryTableHeader{2, 0});
  table.Append(MemoryRegion{});
  table.Append(MemoryRegion{});
  table.fds.push_back(EventFd());  // two regions, one fd
  EXPECT_THAT(ValidateFrontendMessage(table), StatusIs(absl::StatusCode::kInvalidArgument));
  Message nine = Request(FrontendRequest::kSetMemTable);
  nine.Append(MemoryTableHeader{9, 0});
  EXPECT_THAT(ValidateFrontendMessage(nine), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Config-space messages carry at most kMaxConfigSize (256) bytes: the daemon never copies more
// for one GET_CONFIG or SET_CONFIG, whatever size the front end claims.
TEST(ValidateTest, ConfigAccessesAreBounded) {
  for (FrontendRequest request : {FrontendRequest::kGetConfig, FrontendRequest::kSetConfig}) {
    for (uint32_t size : {uint32_t{kMaxConfigSize}, uint32_t{kMaxConfigSize + 1}}) {
      Message m = Request(request);
      m.Append(ConfigHeader{0, size, 0});
      m.payload.resize(sizeof(ConfigHeader) + size);
      m.header.size = m.payload.size();
      if (size <= kMaxConfigSize) {
        EXPECT_OK(ValidateFrontendMessage(m)) << size;
      } else {
        EXPECT_THAT(ValidateFrontendMessage(m), StatusIs(absl::StatusCode::kInvalidArgument))
            << size;
      }
    }
  }
}

class ChannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    a_ = std::make_unique<Channel>(UniqueFd(fds[0]));
    b_raw_ = fds[1];
    b_ = std::make_unique<Channel>(UniqueFd(fds[1]));
    ASSERT_OK(SetReceiveTimeout(a_->fd(), 500));
  }
  std::unique_ptr<Channel> a_, b_;
  int b_raw_ = -1;
};

TEST_F(ChannelTest, RoundTripsPayloadAndFds) {
  Message m = Request(FrontendRequest::kSetVringCall);
  m.Append(uint64_t{3});
  m.fds.push_back(EventFd());
  ASSERT_OK(b_->Send(m));
  auto got = a_->Receive();
  ASSERT_OK(got);
  EXPECT_EQ(got->header.request, m.header.request);
  EXPECT_EQ(*got->Read<uint64_t>(), 3u);
  ASSERT_EQ(got->fds.size(), 1u);
  EXPECT_OK(ValidateFrontendMessage(*got));
}

TEST_F(ChannelTest, CleanCloseIsUnavailable) {
  b_.reset();
  EXPECT_THAT(a_->Receive(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(ChannelTest, TruncatedPayloadIsAnError) {
  MessageHeader h{1, kFlagVersion, 16};
  ASSERT_EQ(write(b_raw_, &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
  ASSERT_EQ(write(b_raw_, "abcd", 4), 4);
  b_.reset();
  EXPECT_THAT(a_->Receive(), StatusIs(absl::StatusCode::kDataLoss));
}

TEST_F(ChannelTest, StalledPeerTimesOut) {
  MessageHeader h{1, kFlagVersion, 16};
  ASSERT_EQ(write(b_raw_, &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
  EXPECT_FALSE(a_->Receive().ok());
}

TEST_F(ChannelTest, OversizedPayloadIsRejected) {
  MessageHeader h{1, kFlagVersion, kMaxPayloadSize + 1};
  ASSERT_EQ(write(b_raw_, &h, sizeof(h)), static_cast<ssize_t>(sizeof(h)));
  EXPECT_THAT(a_->Receive(), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(ChannelTest, TooManyFdsAreRejectedAndClosed) {
  std::vector<UniqueFd> fds;
  for (int i = 0; i < 12; ++i) fds.push_back(EventFd());
  MessageHeader h{3, kFlagVersion, 0};
  iovec iov{&h, sizeof(h)};
  alignas(cmsghdr) char control[CMSG_SPACE(12 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(12 * sizeof(int));
  for (int i = 0; i < 12; ++i) std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fds[i], sizeof(int));
  ASSERT_GT(sendmsg(b_raw_, &msg, 0), 0);
  EXPECT_THAT(a_->Receive(), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost
