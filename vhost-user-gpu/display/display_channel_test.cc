#include "vhost-user-gpu/display/display_channel.h"

#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/testing/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vhost-user-gpu/display/display_protocol.h"
#include "vhost-user-gpu/display/fake_display_end.h"

namespace vhost::gpu::display {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::SizeIs;
using ::vhost::testing::StatusIs;

// Generous: only reached when something is broken.
constexpr int kPollMs = 10000;
constexpr absl::Duration kWait = absl::Seconds(30);

struct RawPair {
  UniqueFd channel_end;
  UniqueFd raw;  // the test plays the front end on this one, byte by byte
};

RawPair MakePair() {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::vector<uint8_t> Words(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> bytes(words.size() * 4);
  memcpy(bytes.data(), std::data(words), bytes.size());
  return bytes;
}

std::vector<uint8_t> Concat(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Queues bytes for the channel to read (replies are written before the call that reads them,
// so these tests need no thread for the front end).
void Put(int fd, const std::vector<uint8_t>& bytes) {
  ASSERT_EQ(send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

// Reads exactly `n` bytes the channel sent (fewer if the socket closes first).
std::vector<uint8_t> Take(int fd, size_t n) {
  std::vector<uint8_t> bytes(n);
  size_t done = 0;
  while (done < n) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, kPollMs) != 1) break;
    const ssize_t got = recv(fd, bytes.data() + done, n - done, 0);
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  bytes.resize(done);
  return bytes;
}

struct Message {
  Header header{};
  std::vector<uint8_t> payload;
};

Message TakeMessage(int fd) {
  Message m;
  const std::vector<uint8_t> header = Take(fd, sizeof(Header));
  EXPECT_EQ(header.size(), sizeof(Header));
  if (header.size() != sizeof(Header)) return m;
  memcpy(&m.header, header.data(), sizeof(Header));
  m.payload = Take(fd, m.header.size);
  EXPECT_EQ(m.payload.size(), m.header.size);
  return m;
}

// The next message's bytes, header and payload.
std::vector<uint8_t> TakeBytes(int fd) {
  const Message m = TakeMessage(fd);
  std::vector<uint8_t> bytes(sizeof(Header));
  memcpy(bytes.data(), &m.header, sizeof(Header));
  return Concat(bytes, m.payload);
}

bool NothingPending(int fd) {
  uint8_t byte;
  return recv(fd, &byte, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

// Whether the channel's end was shut down: after whatever was still queued, EOF.
bool SeesEof(int fd) {
  uint8_t buffer[4096];
  while (true) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, kPollMs) != 1) return false;
    const ssize_t got = recv(fd, buffer, sizeof(buffer), 0);
    if (got == 0) return true;
    if (got < 0) return false;
  }
}

std::vector<uint8_t> FeaturesReply(uint64_t features) {
  std::vector<uint8_t> reply = Words({1, kFlagReply, 8});
  reply.resize(reply.size() + 8);
  memcpy(reply.data() + 12, &features, 8);
  return reply;
}

// Takes GET_PROTOCOL_FEATURES and SET_PROTOCOL_FEATURES off the raw end, checking their bytes;
// `set` is the features the channel must have enabled.
void ExpectHandshake(int fd, uint64_t set) {
  EXPECT_THAT(TakeBytes(fd), ElementsAreArray(Words({1, 0, 0})));
  std::vector<uint8_t> set_bytes = Words({2, 0, 8});
  set_bytes.resize(20);
  memcpy(set_bytes.data() + 12, &set, 8);
  EXPECT_THAT(TakeBytes(fd), ElementsAreArray(set_bytes));
}

DisplayChannel::Options Quick() {
  DisplayChannel::Options options;
  options.timeout = absl::Milliseconds(50);
  return options;
}

std::vector<uint8_t> DisplayInfoReplyBytes(const RespDisplayInfo& info) {
  std::vector<uint8_t> bytes = Words({3, kFlagReply, sizeof(info)});
  bytes.resize(bytes.size() + sizeof(info));
  memcpy(bytes.data() + 12, &info, sizeof(info));
  return bytes;
}

std::vector<uint8_t> EdidReplyBytes(const RespEdid& edid) {
  std::vector<uint8_t> bytes = Words({11, kFlagReply, sizeof(edid)});
  bytes.resize(bytes.size() + sizeof(edid));
  memcpy(bytes.data() + 12, &edid, sizeof(edid));
  return bytes;
}

TEST(DisplayChannelTest, HandshakeRunsOnTheFirstCallOnly) {
  RawPair pair = MakePair();
  DisplayChannel channel(std::move(pair.channel_end));
  // Nothing is sent before the first call (QEMU reads the socket only after its start sequence).
  EXPECT_TRUE(NothingPending(pair.raw.get()));
  EXPECT_EQ(channel.features(), 0u);

  Put(pair.raw.get(), FeaturesReply(kFeatureEdid | kFeatureDmabuf2));
  ASSERT_OK(channel.CursorMove(2, 10, 20));
  ExpectHandshake(pair.raw.get(), kFeatureEdid);  // no dmabuf on this end
  EXPECT_THAT(TakeBytes(pair.raw.get()), ElementsAreArray(Words({4, 0, 12, 2, 10, 20})));
  EXPECT_EQ(channel.features(), kFeatureEdid);

  ASSERT_OK(channel.CursorMove(0, 1, 2));
  EXPECT_THAT(TakeBytes(pair.raw.get()), ElementsAreArray(Words({4, 0, 12, 0, 1, 2})));
  EXPECT_TRUE(NothingPending(pair.raw.get()));
  EXPECT_OK(channel.health());
}

TEST(DisplayChannelTest, WithoutTheEdidFeatureNoEdidIsAsked) {
  RawPair pair = MakePair();
  DisplayChannel channel(std::move(pair.channel_end));
  Put(pair.raw.get(), FeaturesReply(kFeatureDmabuf2 | (uint64_t{1} << 40)));
  ASSERT_OK(channel.Handshake());
  ExpectHandshake(pair.raw.get(), 0);
  EXPECT_THAT(channel.Edid(0), StatusIs(absl::StatusCode::kUnimplemented));
  EXPECT_TRUE(NothingPending(pair.raw.get()));
  EXPECT_OK(channel.health());
}

TEST(DisplayChannelTest, EveryMessageHasItsExactBytes) {
  RawPair pair = MakePair();
  const int raw = pair.raw.get();
  DisplayChannel channel(std::move(pair.channel_end));
  Put(raw, FeaturesReply(kFeatureEdid));
  ASSERT_OK(channel.Handshake());
  ExpectHandshake(raw, kFeatureEdid);

  ASSERT_OK(channel.Scanout(1, 640, 480));
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({7, 0, 12, 1, 640, 480})));

  ASSERT_OK(channel.CursorMove(1, 5, 6));
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({4, 0, 12, 1, 5, 6})));
  // Hiding keeps the cursor where it was (QEMU moves it to the message's position).
  ASSERT_OK(channel.CursorHide(1));
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({5, 0, 12, 1, 5, 6})));

  std::vector<uint32_t> image(kCursorSize * kCursorSize);
  for (size_t i = 0; i < image.size(); ++i) image[i] = 0xff000000u | static_cast<uint32_t>(i);
  ASSERT_OK(channel.CursorUpdate(1, 7, 8, 3, 4, image));
  const Message cursor = TakeMessage(raw);
  EXPECT_EQ(cursor.header.request, 6u);
  EXPECT_EQ(cursor.header.flags, 0u);
  EXPECT_EQ(cursor.header.size, 12u + 8u + 4u * 64 * 64);
  ASSERT_THAT(cursor.payload, SizeIs(cursor.header.size));
  EXPECT_THAT(std::vector<uint8_t>(cursor.payload.begin(), cursor.payload.begin() + 20),
              ElementsAreArray(Words({1, 7, 8, 3, 4})));
  EXPECT_EQ(memcmp(cursor.payload.data() + 20, image.data(), image.size() * 4), 0);
  ASSERT_OK(channel.CursorHide(1));  // the cursor update moved it too
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({5, 0, 12, 1, 7, 8})));

  const std::vector<uint8_t> pixels = Words({0x11, 0x22, 0x33, 0x44});
  ASSERT_OK(channel.Update(1, Rect{2, 3, 2, 2}, pixels, 8));
  EXPECT_THAT(TakeBytes(raw),
              ElementsAreArray(Words({8, 0, 20 + 16, 1, 2, 3, 2, 2, 0x11, 0x22, 0x33, 0x44})));

  RespDisplayInfo info{};
  info.hdr.type = kRespOkDisplayInfo;
  Put(raw, DisplayInfoReplyBytes(info));
  ASSERT_OK(channel.DisplayInfo());
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({3, 0, 0})));

  RespEdid edid{};
  edid.hdr.type = kRespOkEdid;
  edid.size = 1;
  Put(raw, EdidReplyBytes(edid));
  ASSERT_OK(channel.Edid(1));
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({11, 0, 4, 1})));

  // A width or height of 0 disables the scanout, said as 0 x 0.
  ASSERT_OK(channel.Scanout(1, 640, 0));
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({7, 0, 12, 1, 0, 0})));
  EXPECT_TRUE(NothingPending(raw));
}

TEST(DisplayChannelTest, UpdateSendsTheRectRowsWithoutTheStridePadding) {
  RawPair pair = MakePair();
  const int raw = pair.raw.get();
  DisplayChannel channel(std::move(pair.channel_end));
  Put(raw, FeaturesReply(0));
  ASSERT_OK(channel.Scanout(0, 16, 16));
  ExpectHandshake(raw, 0);
  TakeMessage(raw);

  // Three rows of 3 pixels, 5 pixels + 4 bytes apart; the padding is 0xee.
  constexpr uint32_t kStride = 5 * 4 + 4;
  std::vector<uint8_t> pixels(kStride * 2 + 3 * 4, 0xee);
  for (uint32_t row = 0; row < 3; ++row) {
    for (uint32_t col = 0; col < 3; ++col) {
      const uint32_t value = 0x00100000u * (row + 1) + col;
      memcpy(pixels.data() + row * kStride + col * 4, &value, 4);
    }
  }
  ASSERT_OK(channel.Update(0, Rect{4, 5, 3, 3}, pixels, kStride));
  const Message m = TakeMessage(raw);
  EXPECT_EQ(m.header.request, static_cast<uint32_t>(Request::kUpdate));
  EXPECT_EQ(m.header.size, 20u + 9 * 4);
  EXPECT_THAT(m.payload, ElementsAreArray(Words({0, 4, 5, 3, 3,                 //
                                                 0x100000, 0x100001, 0x100002,  //
                                                 0x200000, 0x200001, 0x200002,  //
                                                 0x300000, 0x300001, 0x300002})));
}

TEST(DisplayChannelTest, BadArgumentsSendNothingAndKeepTheChannel) {
  RawPair pair = MakePair();
  const int raw = pair.raw.get();
  DisplayChannel channel(std::move(pair.channel_end));
  Put(raw, FeaturesReply(kFeatureEdid));
  ASSERT_OK(channel.Handshake());
  ExpectHandshake(raw, kFeatureEdid);
  const std::vector<uint8_t> pixels(64 * 4 * 64);

  // No SCANOUT yet: QEMU would composite into a surface it does not have.
  EXPECT_THAT(channel.Update(0, Rect{0, 0, 1, 1}, pixels, 4),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(channel.Scanout(0, 8, 8));
  TakeMessage(raw);
  EXPECT_THAT(channel.Update(0, Rect{6, 0, 3, 1}, pixels, 12),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(channel.Update(0, Rect{0, 7, 1, 2}, pixels, 4),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(channel.Update(0, Rect{0xffffffffu, 0, 2, 1}, pixels, 8),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(channel.Update(0, Rect{0, 0, 4, 2}, pixels, 12),  // stride under a row
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(
      channel.Update(0, Rect{0, 0, 8, 8}, absl::MakeConstSpan(pixels).first(8 * 4 * 8 - 1), 8 * 4),
      StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(channel.Update(kMaxScanouts, Rect{0, 0, 1, 1}, pixels, 4),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(channel.Update(0, Rect{3, 3, 0, 5}, pixels, 4));  // empty: nothing to send
  EXPECT_THAT(channel.Scanout(kMaxScanouts, 8, 8), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(channel.Scanout(0, kMaxScanoutSide + 1, 8),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(channel.CursorMove(kMaxScanouts, 0, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(channel.CursorHide(99), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(channel.CursorUpdate(0, 0, 0, 0, 0, std::vector<uint32_t>(64 * 63)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // QEMU never answers GET_EDID for a scanout it lacks; past 16 it lacks it for sure.
  EXPECT_THAT(channel.Edid(kMaxScanouts), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(NothingPending(raw));

  // Once disabled, a scanout takes no updates until shown again.
  ASSERT_OK(channel.Scanout(0, 0, 0));
  TakeMessage(raw);
  EXPECT_THAT(channel.Update(0, Rect{0, 0, 1, 1}, pixels, 4),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_TRUE(NothingPending(raw));
  EXPECT_OK(channel.health());
}

// One frame's pattern: every pixel different, every byte lane used.
uint32_t PatternPixel(uint32_t x, uint32_t y, uint32_t seed) {
  return (x * 2654435761u) ^ (y * 40503u) ^ seed;
}

TEST(DisplayChannelTest, FullHdFramesArriveIntact) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FakeDisplayEnd> display, FakeDisplayEnd::Create());
  DisplayChannel channel(display->TakeDaemonEnd());
  constexpr uint32_t kWidth = 1920, kHeight = 1080;
  ASSERT_OK(channel.Scanout(0, kWidth, kHeight));

  // A frame in a buffer 2048 pixels wide: one iovec per row, more rows than IOV_MAX, ~8 MiB
  // through a socket buffer of a few hundred KiB.
  constexpr uint32_t kPitch = 2048;
  std::vector<uint32_t> wide(size_t{kPitch} * kHeight, 0xdeadbeef);
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) wide[size_t{y} * kPitch + x] = PatternPixel(x, y, 1);
  }
  ASSERT_OK(channel.Update(
      0, Rect{0, 0, kWidth, kHeight},
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(wide.data()), wide.size() * 4),
      kPitch * 4));
  ASSERT_TRUE(display->WaitForUpdates(1, kWait));
  std::optional<FakeDisplayEnd::Framebuffer> fb = display->framebuffer(0);
  ASSERT_TRUE(fb.has_value());
  ASSERT_EQ(fb->width, kWidth);
  ASSERT_EQ(fb->height, kHeight);
  for (uint32_t y = 0; y < kHeight; ++y) {
    ASSERT_EQ(memcmp(&fb->pixels[size_t{y} * kWidth], &wide[size_t{y} * kPitch], kWidth * 4), 0)
        << "row " << y;
  }

  // The next frame packed (one iovec for all rows).
  std::vector<uint32_t> packed(size_t{kWidth} * kHeight);
  for (uint32_t y = 0; y < kHeight; ++y) {
    for (uint32_t x = 0; x < kWidth; ++x) packed[size_t{y} * kWidth + x] = PatternPixel(x, y, 2);
  }
  ASSERT_OK(channel.Update(
      0, Rect{0, 0, kWidth, kHeight},
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(packed.data()), packed.size() * 4),
      kWidth * 4));
  ASSERT_TRUE(display->WaitForUpdates(2, kWait));
  fb = display->framebuffer(0);
  ASSERT_TRUE(fb.has_value());
  EXPECT_TRUE(fb->pixels == packed);

  const FakeDisplayEnd::Stats stats = display->stats();
  EXPECT_EQ(stats.update_bytes, 2u * kWidth * kHeight * 4);
  EXPECT_EQ(stats.bad_messages, 0u);
  EXPECT_EQ(stats.features_set, kFeatureEdid);
}

TEST(DisplayChannelTest, PartialUpdateLandsInItsRect) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FakeDisplayEnd> display, FakeDisplayEnd::Create());
  DisplayChannel channel(display->TakeDaemonEnd());
  ASSERT_OK(channel.Scanout(3, 64, 48));
  // The rect's pixels taken out of a whole 64-pixel-wide frame, as the device would.
  std::vector<uint32_t> frame(64 * 48);
  for (uint32_t y = 0; y < 48; ++y) {
    for (uint32_t x = 0; x < 64; ++x) frame[y * 64 + x] = PatternPixel(x, y, 3);
  }
  const Rect rect{10, 20, 30, 5};
  const size_t first = size_t{rect.y} * 64 + rect.x;
  ASSERT_OK(
      channel.Update(3, rect,
                     absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(frame.data() + first),
                                         (frame.size() - first) * 4),
                     64 * 4));
  ASSERT_TRUE(display->WaitForUpdates(1, kWait));
  std::optional<FakeDisplayEnd::Framebuffer> fb = display->framebuffer(3);
  ASSERT_TRUE(fb.has_value());
  for (uint32_t y = 0; y < 48; ++y) {
    for (uint32_t x = 0; x < 64; ++x) {
      const bool inside =
          x >= rect.x && x < rect.x + rect.width && y >= rect.y && y < rect.y + rect.height;
      ASSERT_EQ(fb->at(x, y), inside ? frame[y * 64 + x] : 0u) << x << "," << y;
    }
  }
  EXPECT_EQ(display->stats().bad_messages, 0u);
}

TEST(DisplayChannelTest, DisplayInfoAndEdidRepliesAreParsed) {
  FakeDisplayEnd::Options options;
  options.displays = {{true, 1024, 768}, {false, 0, 0}, {true, 800, 600}};
  options.edid.assign(256, 0);
  for (size_t i = 0; i < options.edid.size(); ++i) options.edid[i] = static_cast<uint8_t>(i ^ 0x5a);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FakeDisplayEnd> display, FakeDisplayEnd::Create(options));
  DisplayChannel channel(display->TakeDaemonEnd());

  ASSERT_OK_AND_ASSIGN(const std::vector<ScanoutInfo> info, channel.DisplayInfo());
  ASSERT_THAT(info, SizeIs(kMaxScanouts));
  EXPECT_TRUE(info[0].enabled);
  EXPECT_EQ(info[0].width, 1024u);
  EXPECT_EQ(info[0].height, 768u);
  EXPECT_FALSE(info[1].enabled);
  EXPECT_TRUE(info[2].enabled);
  EXPECT_EQ(info[2].width, 800u);
  EXPECT_EQ(info[2].height, 600u);
  for (uint32_t i = 3; i < kMaxScanouts; ++i) EXPECT_FALSE(info[i].enabled) << i;

  ASSERT_OK_AND_ASSIGN(const std::vector<uint8_t> edid, channel.Edid(2));
  EXPECT_EQ(edid, options.edid);

  const FakeDisplayEnd::Stats stats = display->stats();
  EXPECT_EQ(stats.get_features, 1u);
  EXPECT_EQ(stats.display_info, 1u);
  EXPECT_EQ(stats.edid, 1u);
  EXPECT_EQ(stats.bad_messages, 0u);
}

// A reply the channel cannot frame breaks it: the call fails, every later one fails at once,
// and the front end sees EOF.
void ExpectBrokenBy(const std::vector<uint8_t>& reply, absl::StatusCode code) {
  RawPair pair = MakePair();
  const int raw = pair.raw.get();
  DisplayChannel channel(std::move(pair.channel_end), Quick());
  Put(raw, reply);
  EXPECT_THAT(channel.Handshake(), StatusIs(code));
  EXPECT_THAT(channel.health(), StatusIs(code));
  EXPECT_THAT(channel.CursorMove(0, 1, 1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(channel.DisplayInfo(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({1, 0, 0})));  // only the request
  EXPECT_TRUE(SeesEof(raw));
}

TEST(DisplayChannelTest, ReplyOfTheWrongSizeBreaksTheChannel) {
  ExpectBrokenBy(Words({1, kFlagReply, 4, 0}), absl::StatusCode::kInvalidArgument);
}

TEST(DisplayChannelTest, ReplyOfAHugeSizeIsRejectedBeforeReadingIt) {
  ExpectBrokenBy(Words({1, kFlagReply, 0xffffffffu}), absl::StatusCode::kInvalidArgument);
}

TEST(DisplayChannelTest, ReplyToAnotherRequestBreaksTheChannel) {
  ExpectBrokenBy(Words({3, kFlagReply, 8, 1, 0}), absl::StatusCode::kInvalidArgument);
}

TEST(DisplayChannelTest, ReplyWithoutTheReplyFlagBreaksTheChannel) {
  ExpectBrokenBy(Words({1, 0, 8, 1, 0}), absl::StatusCode::kInvalidArgument);
}

TEST(DisplayChannelTest, ReplyCutShortTimesOut) {
  ExpectBrokenBy(Words({1, kFlagReply, 8, 1}), absl::StatusCode::kDeadlineExceeded);
}

TEST(DisplayChannelTest, FrontEndThatNeverAnswersTimesOut) {
  RawPair pair = MakePair();
  const int raw = pair.raw.get();
  DisplayChannel channel(std::move(pair.channel_end), Quick());
  Put(raw, FeaturesReply(kFeatureEdid));
  ASSERT_OK(channel.Handshake());
  ExpectHandshake(raw, kFeatureEdid);

  EXPECT_THAT(channel.Edid(0), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({11, 0, 4, 0})));
  // A late reply could not be told from the next one's: the channel is done.
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(channel.DisplayInfo(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(channel.Scanout(0, 8, 8), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
  EXPECT_TRUE(SeesEof(raw));
}

TEST(DisplayChannelTest, FrontEndThatNeverAnswersTheHandshakeTimesOut) {
  RawPair pair = MakePair();
  DisplayChannel channel(std::move(pair.channel_end), Quick());
  EXPECT_THAT(channel.CursorHide(0), StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(channel.CursorHide(0), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(TakeBytes(pair.raw.get()), ElementsAreArray(Words({1, 0, 0})));
  EXPECT_TRUE(SeesEof(pair.raw.get()));
}

TEST(DisplayChannelTest, FrontEndThatStopsReadingTimesOutMidFrame) {
  RawPair pair = MakePair();
  const int raw = pair.raw.get();
  DisplayChannel channel(std::move(pair.channel_end), Quick());
  Put(raw, FeaturesReply(0));
  ASSERT_OK(channel.Scanout(0, 1920, 1080));
  const std::vector<uint8_t> frame(1920 * 1080 * 4, 0x42);
  // Far more than the socket holds, and the front end reads nothing.
  EXPECT_THAT(channel.Update(0, Rect{0, 0, 1920, 1080}, frame, 1920 * 4),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(channel.CursorMove(0, 0, 0), StatusIs(absl::StatusCode::kFailedPrecondition));
  // What was sent is followed by EOF, not by the rest of the frame.
  EXPECT_TRUE(SeesEof(raw));
}

TEST(DisplayChannelTest, FrontEndGoneBeforeTheHandshake) {
  RawPair pair = MakePair();
  DisplayChannel channel(std::move(pair.channel_end));  // 5 s: must not be waited for
  pair.raw.Reset();
  // Without MSG_NOSIGNAL the send would raise SIGPIPE and end this test.
  EXPECT_THAT(channel.Scanout(0, 8, 8), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(channel.Scanout(0, 8, 8), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(DisplayChannelTest, FrontEndGoneWhileWaitingForAReply) {
  RawPair pair = MakePair();
  DisplayChannel channel(std::move(pair.channel_end));
  // The request is sent (it sits in the socket), then the front end closes without answering.
  std::thread closer([&pair] {
    Take(pair.raw.get(), sizeof(Header));
    pair.raw.Reset();
  });
  EXPECT_THAT(channel.Handshake(), StatusIs(absl::StatusCode::kUnavailable));
  closer.join();
}

TEST(DisplayChannelTest, FrontEndGoneAfterTheHandshake) {
  RawPair pair = MakePair();
  DisplayChannel channel(std::move(pair.channel_end));
  Put(pair.raw.get(), FeaturesReply(kFeatureEdid));
  ASSERT_OK(channel.Handshake());
  pair.raw.Reset();
  EXPECT_THAT(channel.CursorMove(0, 3, 3), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(channel.Edid(0), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// Well-framed replies with unusable content fail their call only.
TEST(DisplayChannelTest, UnusableReplyContentFailsOnlyThatCall) {
  RawPair pair = MakePair();
  const int raw = pair.raw.get();
  DisplayChannel channel(std::move(pair.channel_end), Quick());
  Put(raw, FeaturesReply(kFeatureEdid));
  ASSERT_OK(channel.Handshake());
  ExpectHandshake(raw, kFeatureEdid);

  RespDisplayInfo info{};
  info.hdr.type = 0x1200;  // VIRTIO_GPU_RESP_ERR_UNSPEC
  Put(raw, DisplayInfoReplyBytes(info));
  EXPECT_THAT(channel.DisplayInfo(), StatusIs(absl::StatusCode::kInvalidArgument));
  info.hdr.type = kRespOkDisplayInfo;
  info.pmodes[1].enabled = 1;  // enabled, 0 x 0
  Put(raw, DisplayInfoReplyBytes(info));
  EXPECT_THAT(channel.DisplayInfo(), StatusIs(absl::StatusCode::kInvalidArgument));
  info.pmodes[1].width = kMaxScanoutSide + 1;
  info.pmodes[1].height = 600;
  Put(raw, DisplayInfoReplyBytes(info));
  EXPECT_THAT(channel.DisplayInfo(), StatusIs(absl::StatusCode::kInvalidArgument));

  RespEdid edid{};
  edid.hdr.type = kRespOkEdid;
  edid.size = kEdidBlobSize + 1;
  Put(raw, EdidReplyBytes(edid));
  EXPECT_THAT(channel.Edid(0), StatusIs(absl::StatusCode::kInvalidArgument));
  edid.size = 0;
  Put(raw, EdidReplyBytes(edid));
  EXPECT_THAT(channel.Edid(0), StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_OK(channel.health());
  ASSERT_OK(channel.CursorMove(0, 9, 9));
  for (int i = 0; i < 5; ++i) TakeMessage(raw);  // the three GET_DISPLAY_INFOs, two GET_EDIDs
  EXPECT_THAT(TakeBytes(raw), ElementsAreArray(Words({4, 0, 12, 0, 9, 9})));
}

// The device serializes its calls, but were two threads to call at once, a cursor message must
// not land inside a frame's bytes.
TEST(DisplayChannelTest, ConcurrentCallsDoNotInterleave) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FakeDisplayEnd> display, FakeDisplayEnd::Create());
  DisplayChannel channel(display->TakeDaemonEnd());
  ASSERT_OK(channel.Scanout(0, 512, 512));
  constexpr int kFrames = 20, kMoves = 500;
  std::vector<uint32_t> frame(512 * 512);
  for (uint32_t i = 0; i < frame.size(); ++i) frame[i] = i;
  std::atomic<int> failures{0};
  std::thread frames([&] {
    for (int i = 0; i < kFrames; ++i) {
      if (!channel
               .Update(0, Rect{0, 0, 512, 512},
                       absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(frame.data()),
                                           frame.size() * 4),
                       512 * 4)
               .ok()) {
        ++failures;
      }
    }
  });
  std::thread cursor([&] {
    for (int i = 0; i < kMoves; ++i) {
      if (!channel.CursorMove(0, i, i).ok()) ++failures;
    }
  });
  frames.join();
  cursor.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(display->WaitFor(
      [](const FakeDisplayEnd::Stats& s) {
        // A message cut into by another shows up as a bad one (or a stream out of step).
        return (s.updates == kFrames && s.cursor_moves == kMoves) || s.bad_messages > 0;
      },
      kWait));
  EXPECT_EQ(display->stats().bad_messages, 0u);
  EXPECT_TRUE(display->framebuffer(0)->pixels == frame);
  EXPECT_EQ(display->cursor().x, static_cast<uint32_t>(kMoves - 1));
}

TEST(DisplayChannelTest, CursorReachesTheDisplay) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<FakeDisplayEnd> display, FakeDisplayEnd::Create());
  DisplayChannel channel(display->TakeDaemonEnd());
  std::vector<uint32_t> image(kCursorSize * kCursorSize);
  for (uint32_t i = 0; i < image.size(); ++i) image[i] = 0x80000000u + i;
  ASSERT_OK(channel.CursorUpdate(0, 100, 200, 5, 6, image));
  ASSERT_OK(channel.CursorMove(0, 110, 210));
  ASSERT_OK(channel.CursorHide(0));
  ASSERT_TRUE(display->WaitForMessages(5, kWait));  // GET, SET and the three
  const FakeDisplayEnd::Cursor cursor = display->cursor();
  EXPECT_FALSE(cursor.visible);
  EXPECT_EQ(cursor.x, 110u);
  EXPECT_EQ(cursor.y, 210u);
  EXPECT_EQ(cursor.hot_x, 5u);
  EXPECT_EQ(cursor.hot_y, 6u);
  EXPECT_EQ(cursor.image, image);
  const FakeDisplayEnd::Stats stats = display->stats();
  EXPECT_EQ(stats.cursor_updates, 1u);
  EXPECT_EQ(stats.cursor_moves, 1u);
  EXPECT_EQ(stats.cursor_hides, 1u);
  EXPECT_EQ(stats.bad_messages, 0u);
}

}  // namespace
}  // namespace vhost::gpu::display
