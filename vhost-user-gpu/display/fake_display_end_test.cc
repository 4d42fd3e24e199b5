// The fake display end checks what it reads and answers like QEMU; these tests feed it bytes
// directly, as a daemon with bugs might.
#include "vhost-user-gpu/display/fake_display_end.h"

#include <poll.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vhost-user-gpu/display/display_protocol.h"

namespace vhost::gpu::display {
namespace {

constexpr absl::Duration kWait = absl::Seconds(30);

std::vector<uint8_t> Words(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> bytes(words.size() * 4);
  memcpy(bytes.data(), std::data(words), bytes.size());
  return bytes;
}

void Put(int fd, const std::vector<uint8_t>& bytes) {
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

// Reads `n` bytes (fewer if none come within 10 s).
std::vector<uint8_t> Take(int fd, size_t n) {
  std::vector<uint8_t> bytes(n);
  size_t done = 0;
  while (done < n) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 10000) != 1) break;
    const ssize_t got = recv(fd, bytes.data() + done, n - done, 0);
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  bytes.resize(done);
  return bytes;
}

class FakeDisplayEndTest : public ::testing::Test {
 protected:
  void Start(FakeDisplayEnd::Options options = {}) {
    absl::StatusOr<std::unique_ptr<FakeDisplayEnd>> display = FakeDisplayEnd::Create(options);
    ASSERT_OK(display);
    display_ = std::move(display).value();
    daemon_ = display_->TakeDaemonEnd();
    ASSERT_TRUE(daemon_.valid());
  }
  // Sends `bytes` and waits until the fake has handled `messages` messages in all.
  void Feed(const std::vector<uint8_t>& bytes, uint64_t messages) {
    Put(daemon_.get(), bytes);
    ASSERT_TRUE(display_->WaitForMessages(messages, kWait));
  }

  std::unique_ptr<FakeDisplayEnd> display_;
  UniqueFd daemon_;
};

TEST_F(FakeDisplayEndTest, AnswersLikeQemu) {
  FakeDisplayEnd::Options options;
  options.protocol_features = kFeatureEdid;
  options.displays = {{true, 640, 480}};
  Start(options);
  Put(daemon_.get(), EncodeGetProtocolFeatures());
  EXPECT_EQ(Take(daemon_.get(), 20), EncodeProtocolFeaturesReply(kFeatureEdid));
  Put(daemon_.get(), EncodeGetDisplayInfo());
  EXPECT_EQ(Take(daemon_.get(), 12 + sizeof(RespDisplayInfo)),
            EncodeDisplayInfoReply(options.displays));
  Put(daemon_.get(), EncodeGetEdid(0));
  EXPECT_EQ(Take(daemon_.get(), 12 + sizeof(RespEdid)), EncodeEdidReply(options.edid));
  Feed(EncodeSetProtocolFeatures(kFeatureEdid), 4);  // no reply to this one
  const FakeDisplayEnd::Stats stats = display_->stats();
  EXPECT_EQ(stats.features_set, kFeatureEdid);
  EXPECT_EQ(stats.bad_messages, 0u);
  uint8_t byte;
  EXPECT_LT(recv(daemon_.get(), &byte, 1, MSG_DONTWAIT), 0);
}

TEST_F(FakeDisplayEndTest, NoEdidReplyPastMaxOutputsNorWhenSilent) {
  FakeDisplayEnd::Options options;
  options.max_outputs = 1;
  Start(options);
  Feed(EncodeGetEdid(1), 1);
  EXPECT_EQ(display_->stats().ignored, 1u);
  options.answer = false;
  display_->SetOptions(options);
  Feed(EncodeGetProtocolFeatures(), 2);
  uint8_t byte;
  EXPECT_LT(recv(daemon_.get(), &byte, 1, MSG_DONTWAIT), 0);  // nothing came back
}

TEST_F(FakeDisplayEndTest, BadUpdatesAreCountedAndSkipped) {
  Start();
  Feed(EncodeScanout(0, 4, 4), 1);
  // Outside the 4 x 4 framebuffer.
  Feed(Words({8, 0, 20 + 4, 0, 4, 0, 1, 1, 0x1234}), 2);
  // The size does not match the rect (the pixel bytes are still skipped).
  Feed(Words({8, 0, 20 + 8, 0, 0, 0, 1, 1, 0x1, 0x2}), 3);
  // A scanout without a framebuffer.
  Feed(Words({8, 0, 20 + 4, 1, 0, 0, 1, 1, 0x5}), 4);
  // An unknown request, with a payload to skip; a dmabuf one; a request with a flag set.
  Feed(Words({99, 0, 8, 7, 7}), 5);
  Feed(Words({10, 0, 20, 0, 0, 0, 1, 1}), 6);
  Feed(Words({7, kFlagReply, 12, 0, 2, 2}), 7);
  EXPECT_EQ(display_->stats().bad_messages, 6u);
  // The stream is still in step: a good update lands.
  Feed(Words({8, 0, 20 + 8, 0, 1, 2, 2, 1, 0xaa, 0xbb}), 8);
  const FakeDisplayEnd::Stats stats = display_->stats();
  EXPECT_EQ(stats.bad_messages, 6u);
  EXPECT_EQ(stats.updates, 1u);
  const std::optional<FakeDisplayEnd::Framebuffer> fb = display_->framebuffer(0);
  ASSERT_TRUE(fb.has_value());
  EXPECT_EQ(fb->width, 4u);  // the flagged SCANOUT was not applied
  EXPECT_EQ(fb->at(1, 2), 0xaau);
  EXPECT_EQ(fb->at(2, 2), 0xbbu);
  EXPECT_EQ(fb->at(0, 0), 0u);
}

TEST_F(FakeDisplayEndTest, OversizedMessagesAreSkippedWithoutAllocating) {
  FakeDisplayEnd::Options options;
  options.max_message = 1024;
  Start(options);
  Feed(EncodeScanout(0, 1000, 1000), 1);  // larger than max_message: refused
  EXPECT_FALSE(display_->framebuffer(0).has_value());
  Feed(EncodeScanout(0, 16, 16), 2);
  // 2000 pixel bytes over max_message, skipped in chunks.
  std::vector<uint8_t> update = Words({8, 0, 20 + 2000, 0, 0, 0, 500, 1});
  update.resize(update.size() + 2000, 0x11);
  Feed(update, 3);
  EXPECT_EQ(display_->stats().bad_messages, 2u);
  EXPECT_EQ(display_->stats().updates, 0u);
}

TEST_F(FakeDisplayEndTest, DisablingTheScanoutDropsItsFramebuffer) {
  Start();
  Feed(EncodeScanout(2, 8, 8), 1);
  EXPECT_TRUE(display_->framebuffer(2).has_value());
  Feed(EncodeScanout(2, 0, 0), 2);
  EXPECT_FALSE(display_->framebuffer(2).has_value());
}

TEST_F(FakeDisplayEndTest, SeesTheDaemonClose) {
  Start();
  daemon_.Reset();
  EXPECT_TRUE(display_->WaitForClose(kWait));
}

TEST_F(FakeDisplayEndTest, WritesTheFrameAsPpm) {
  Start();
  Feed(EncodeScanout(0, 2, 1), 1);
  // x8r8g8b8: pure red, then (1, 2, 3).
  Feed(Words({8, 0, 20 + 8, 0, 0, 0, 2, 1, 0x00ff0000, 0x00010203}), 2);
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/frame.ppm";
  ASSERT_OK(display_->WritePpm(0, path));
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  EXPECT_EQ(contents.str(), std::string("P6\n2 1\n255\n\xff\x00\x00\x01\x02\x03", 17));
  EXPECT_THAT(display_->WritePpm(5, path), vhost::testing::StatusIs(absl::StatusCode::kNotFound));
}

TEST(FakeDisplayEndEdidTest, TestEdidIsAValidBaseBlock) {
  const std::vector<uint8_t> edid = FakeDisplayEnd::TestEdid();
  ASSERT_EQ(edid.size(), 128u);
  EXPECT_EQ(edid[0], 0x00);
  EXPECT_EQ(edid[1], 0xff);
  EXPECT_EQ(edid[7], 0x00);
  uint8_t sum = 0;
  for (uint8_t b : edid) sum += b;
  EXPECT_EQ(sum, 0);
}

}  // namespace
}  // namespace vhost::gpu::display
