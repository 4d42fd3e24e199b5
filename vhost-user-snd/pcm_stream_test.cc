#include "vhost-user-snd/pcm_stream.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace vhost::snd {
namespace {

constexpr uint32_t kSetParams = VIRTIO_SND_R_PCM_SET_PARAMS;
constexpr uint32_t kPrepare = VIRTIO_SND_R_PCM_PREPARE;
constexpr uint32_t kStart = VIRTIO_SND_R_PCM_START;
constexpr uint32_t kStop = VIRTIO_SND_R_PCM_STOP;
constexpr uint32_t kRelease = VIRTIO_SND_R_PCM_RELEASE;

// Stereo S16 at 48 kHz: 4-byte frames, 10 ms periods (480 frames), 4 periods.
PcmParams Stereo48k() {
  PcmParams p;
  p.channels = 2;
  p.format = VIRTIO_SND_PCM_FMT_S16;
  p.rate = VIRTIO_SND_PCM_RATE_48000;
  p.period_bytes = 1920;
  p.buffer_bytes = 7680;
  return p;
}

PcmCaps Caps() {
  PcmCaps caps;
  caps.channels_min = 1;
  caps.channels_max = 2;
  caps.formats = uint64_t{1} << VIRTIO_SND_PCM_FMT_S16 | uint64_t{1} << VIRTIO_SND_PCM_FMT_S32;
  caps.rates = uint64_t{1} << VIRTIO_SND_PCM_RATE_44100 | uint64_t{1} << VIRTIO_SND_PCM_RATE_48000;
  caps.features = 1u << VIRTIO_SND_PCM_F_EVT_XRUNS;
  return caps;
}

PcmRequest Command(uint32_t code) {
  return {code, 0, code == kSetParams ? Stereo48k() : PcmParams()};
}

// Little-endian bytes of a request as a driver writes them.
std::vector<uint8_t> PcmHdr(uint32_t code, uint32_t stream) {
  virtio_snd_pcm_hdr hdr = {{code}, stream};
  std::vector<uint8_t> bytes(sizeof(hdr));
  std::memcpy(bytes.data(), &hdr, sizeof(hdr));
  return bytes;
}

std::vector<uint8_t> SetParamsBytes(uint32_t stream, const PcmParams& params) {
  const virtio_snd_pcm_set_params wire = params.ToWire(stream);
  std::vector<uint8_t> bytes(sizeof(wire));
  std::memcpy(bytes.data(), &wire, sizeof(wire));
  return bytes;
}

TEST(PcmArithmeticTest, FramesBytesAndTime) {
  EXPECT_EQ(BytesPerFrame(VIRTIO_SND_PCM_FMT_S16, 2), 4u);
  EXPECT_EQ(BytesPerFrame(VIRTIO_SND_PCM_FMT_S24_3, 2), 6u);
  EXPECT_EQ(BytesPerFrame(VIRTIO_SND_PCM_FMT_S24, 6), 24u);
  EXPECT_EQ(BytesPerFrame(VIRTIO_SND_PCM_FMT_FLOAT64, 1), 8u);
  EXPECT_EQ(BytesPerFrame(VIRTIO_SND_PCM_FMT_U8, 1), 1u);
  EXPECT_EQ(BytesPerFrame(VIRTIO_SND_PCM_FMT_IMA_ADPCM, 2), 0u);
  EXPECT_EQ(BytesPerFrame(kFormatCount, 2), 0u);

  EXPECT_EQ(BytesPerSecond(VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_RATE_48000, 2), 192000u);
  EXPECT_EQ(BytesPerSecond(VIRTIO_SND_PCM_FMT_S16, VIRTIO_SND_PCM_RATE_44100, 2), 176400u);
  EXPECT_EQ(BytesPerSecond(VIRTIO_SND_PCM_FMT_S32, VIRTIO_SND_PCM_RATE_384000, 18), 27648000u);
  EXPECT_EQ(BytesPerSecond(VIRTIO_SND_PCM_FMT_S16, kRateCount, 2), 0u);

  EXPECT_EQ(FramesDuration(480, 48000), absl::Milliseconds(10));
  EXPECT_EQ(FramesDuration(441, 44100), absl::Milliseconds(10));
  EXPECT_EQ(FramesDuration(1, 44100), absl::Nanoseconds(22675));  // 22675.7 ns, truncated
  EXPECT_EQ(FramesDuration(0, 48000), absl::ZeroDuration());
  EXPECT_EQ(FramesDuration(480, 0), absl::ZeroDuration());
  // No drift: an hour of 44.1 kHz frames is an hour, not 3600 * 44100 truncated frame times.
  EXPECT_EQ(FramesDuration(uint64_t{44100} * 3600, 44100), absl::Hours(1));
  EXPECT_EQ(FramesDuration(uint64_t{44100} * 3600 + 1, 44100),
            absl::Hours(1) + absl::Nanoseconds(22675));

  const PcmParams p = Stereo48k();
  EXPECT_EQ(p.frame_bytes(), 4u);
  EXPECT_EQ(p.rate_hz(), 48000u);
  EXPECT_EQ(p.period_frames(), 480u);
  EXPECT_EQ(p.buffer_frames(), 1920u);
  EXPECT_EQ(p.bytes_per_second(), 192000u);
  EXPECT_EQ(p.period(), absl::Milliseconds(10));
}

TEST(PcmParamsTest, WireRoundTrip) {
  PcmParams p = Stereo48k();
  p.features = 1u << VIRTIO_SND_PCM_F_EVT_XRUNS;
  const std::vector<uint8_t> bytes = SetParamsBytes(3, p);
  const std::vector<uint8_t> expected = {
      0x01, 0x01, 0x00, 0x00,  // code SET_PARAMS
      0x03, 0x00, 0x00, 0x00,  // stream 3
      0x00, 0x1e, 0x00, 0x00,  // buffer 7680
      0x80, 0x07, 0x00, 0x00,  // period 1920
      0x10, 0x00, 0x00, 0x00,  // features EVT_XRUNS
      0x02, 0x05, 0x07, 0x00,  // 2 channels, S16, 48000, padding
  };
  EXPECT_EQ(bytes, expected);
  PcmRequest parsed;
  ASSERT_EQ(ParsePcmRequest(bytes, &parsed), VIRTIO_SND_S_OK);
  EXPECT_EQ(parsed.code, kSetParams);
  EXPECT_EQ(parsed.stream_id, 3u);
  EXPECT_EQ(parsed.params.buffer_bytes, 7680u);
  EXPECT_EQ(parsed.params.period_bytes, 1920u);
  EXPECT_EQ(parsed.params.features, 0x10u);
  EXPECT_EQ(parsed.params.channels, 2);
  EXPECT_EQ(parsed.params.format, VIRTIO_SND_PCM_FMT_S16);
  EXPECT_EQ(parsed.params.rate, VIRTIO_SND_PCM_RATE_48000);
}

TEST(PcmParamsTest, ValidParamsAreOk) {
  EXPECT_EQ(ValidateParams(Caps(), Stereo48k()), VIRTIO_SND_S_OK);
  PcmParams mono32 = Stereo48k();
  mono32.channels = 1;
  mono32.format = VIRTIO_SND_PCM_FMT_S32;
  mono32.rate = VIRTIO_SND_PCM_RATE_44100;
  mono32.features = 1u << VIRTIO_SND_PCM_F_EVT_XRUNS;
  mono32.period_bytes = 441 * 4;
  mono32.buffer_bytes = 441 * 4 * 3;  // 3 periods: any whole number
  EXPECT_EQ(ValidateParams(Caps(), mono32), VIRTIO_SND_S_OK);
  PcmParams one_period = Stereo48k();
  one_period.buffer_bytes = one_period.period_bytes;
  EXPECT_EQ(ValidateParams(Caps(), one_period), VIRTIO_SND_S_OK);
  PcmParams largest = Stereo48k();
  largest.period_bytes = 4096;
  largest.buffer_bytes = kMaxBufferBytes;
  EXPECT_EQ(ValidateParams(Caps(), largest), VIRTIO_SND_S_OK);
  // Over 8 MiB is fine up to one second of audio: Linux's 160 ms at the largest frame and rate.
  PcmCaps wide;
  wide.channels_min = wide.channels_max = 18;
  wide.formats = uint64_t{1} << VIRTIO_SND_PCM_FMT_FLOAT64;
  wide.rates = uint64_t{1} << VIRTIO_SND_PCM_RATE_384000;
  PcmParams huge;
  huge.channels = 18;
  huge.format = VIRTIO_SND_PCM_FMT_FLOAT64;
  huge.rate = VIRTIO_SND_PCM_RATE_384000;
  huge.period_bytes = 144 * 3840;       // 10 ms
  huge.buffer_bytes = 144 * 3840 * 16;  // 160 ms: 8847360 bytes
  EXPECT_EQ(ValidateParams(wide, huge), VIRTIO_SND_S_OK);
  huge.buffer_bytes = 144 * 3840 * 100;  // one second
  EXPECT_EQ(ValidateParams(wide, huge), VIRTIO_SND_S_OK);
  huge.buffer_bytes = 144 * 3840 * 101;
  EXPECT_EQ(ValidateParams(wide, huge), VIRTIO_SND_S_NOT_SUPP);
}

TEST(PcmParamsTest, UnsupportedValuesAreNotSupp) {
  struct Case {
    const char* what;
    void (*change)(PcmParams*);
  };
  for (const Case& c : std::vector<Case>{
           {"format not offered", [](PcmParams* p) { p->format = VIRTIO_SND_PCM_FMT_U8; }},
           {"float", [](PcmParams* p) { p->format = VIRTIO_SND_PCM_FMT_FLOAT; }},
           {"rate not offered", [](PcmParams* p) { p->rate = VIRTIO_SND_PCM_RATE_96000; }},
           {"3 channels",
            [](PcmParams* p) {
              p->channels = 3;
              p->period_bytes = 6 * 100;
              p->buffer_bytes = 6 * 400;
            }},
           {"shmem feature", [](PcmParams* p) { p->features = 1u << VIRTIO_SND_PCM_F_SHMEM_HOST; }},
           {"buffer over the maximum",
            [](PcmParams* p) {
              p->period_bytes = 4096;
              p->buffer_bytes = kMaxBufferBytes + 4096;
            }},
       }) {
    PcmParams p = Stereo48k();
    c.change(&p);
    EXPECT_EQ(ValidateParams(Caps(), p), VIRTIO_SND_S_NOT_SUPP) << c.what;
  }
  // A format offered but not byte-framed.
  PcmCaps adpcm = Caps();
  adpcm.formats |= uint64_t{1} << VIRTIO_SND_PCM_FMT_IMA_ADPCM;
  PcmParams p = Stereo48k();
  p.format = VIRTIO_SND_PCM_FMT_IMA_ADPCM;
  EXPECT_EQ(ValidateParams(adpcm, p), VIRTIO_SND_S_NOT_SUPP);
}

TEST(PcmParamsTest, InvalidValuesAreBadMsg) {
  struct Case {
    const char* what;
    void (*change)(PcmParams*);
  };
  for (const Case& c : std::vector<Case>{
           {"undefined format", [](PcmParams* p) { p->format = kFormatCount; }},
           {"undefined rate", [](PcmParams* p) { p->rate = kRateCount; }},
           {"rate 255", [](PcmParams* p) { p->rate = 255; }},
           {"no channels", [](PcmParams* p) { p->channels = 0; }},
           {"empty buffer", [](PcmParams* p) { p->buffer_bytes = 0; }},
           {"empty period", [](PcmParams* p) { p->period_bytes = 0; }},
           {"period of half frames",
            [](PcmParams* p) {
              p->period_bytes = 1922;
              p->buffer_bytes = 1922 * 4;
            }},
           {"buffer not whole periods", [](PcmParams* p) { p->buffer_bytes = 1920 * 4 + 4; }},
           {"period over the buffer", [](PcmParams* p) { p->buffer_bytes = 960; }},
       }) {
    PcmParams p = Stereo48k();
    c.change(&p);
    EXPECT_EQ(ValidateParams(Caps(), p), VIRTIO_SND_S_BAD_MSG) << c.what;
  }
}

// §5.14.6.6.1's table, every command after every state.
TEST(PcmStreamTest, LifecycleTable) {
  struct Row {
    PcmState state;
    std::vector<uint32_t> allowed;
  };
  const std::vector<Row> table = {
      {PcmState::kNone, {kSetParams}},
      {PcmState::kParamsSet, {kSetParams, kPrepare}},
      {PcmState::kPrepared, {kSetParams, kPrepare, kStart, kRelease}},
      {PcmState::kStarted, {kStop}},
      {PcmState::kStopped, {kStart, kRelease}},
      {PcmState::kReleased, {kSetParams, kPrepare}},
  };
  for (const Row& row : table) {
    for (uint32_t code : {kSetParams, kPrepare, kStart, kStop, kRelease}) {
      const bool allowed =
          std::find(row.allowed.begin(), row.allowed.end(), code) != row.allowed.end();
      EXPECT_EQ(PcmStream::Allowed(row.state, code), allowed)
          << StateName(row.state) << " then 0x" << std::hex << code;
    }
    EXPECT_FALSE(PcmStream::Allowed(row.state, VIRTIO_SND_R_PCM_INFO));
  }
}

// Drives a stream to `state` through allowed commands.
void DriveTo(PcmStream* stream, PcmState state) {
  const std::vector<uint32_t> path = [&]() -> std::vector<uint32_t> {
    switch (state) {
      case PcmState::kNone:
        return {};
      case PcmState::kParamsSet:
        return {kSetParams};
      case PcmState::kPrepared:
        return {kSetParams, kPrepare};
      case PcmState::kStarted:
        return {kSetParams, kPrepare, kStart};
      case PcmState::kStopped:
        return {kSetParams, kPrepare, kStart, kStop};
      case PcmState::kReleased:
        return {kSetParams, kPrepare, kRelease};
    }
    return {};
  }();
  for (uint32_t code : path) ASSERT_EQ(stream->Handle(Command(code)), VIRTIO_SND_S_OK);
  ASSERT_EQ(stream->state(), state);
}

TEST(PcmStreamTest, CommandsInTheWrongStateAreBadMsgAndChangeNothing) {
  for (PcmState state : {PcmState::kNone, PcmState::kParamsSet, PcmState::kPrepared,
                         PcmState::kStarted, PcmState::kStopped, PcmState::kReleased}) {
    for (uint32_t code : {kSetParams, kPrepare, kStart, kStop, kRelease}) {
      if (PcmStream::Allowed(state, code)) continue;
      PcmStream stream(0, Caps());
      DriveTo(&stream, state);
      bool acted = false;
      EXPECT_EQ(stream.Handle(Command(code),
                              [&](const PcmRequest&) {
                                acted = true;
                                return absl::OkStatus();
                              }),
                VIRTIO_SND_S_BAD_MSG)
          << StateName(state) << " then 0x" << std::hex << code;
      EXPECT_FALSE(acted);
      EXPECT_EQ(stream.state(), state);
    }
  }
}

TEST(PcmStreamTest, PlaybackLifecycle) {
  PcmStream stream(4, Caps());
  EXPECT_EQ(stream.id(), 4u);
  EXPECT_EQ(stream.state(), PcmState::kNone);
  EXPECT_FALSE(stream.running());
  std::vector<uint32_t> acted;
  auto act = [&](const PcmRequest& r) {
    acted.push_back(r.code);
    return absl::OkStatus();
  };
  // sox's order: parameters and prepare repeated before the start.
  for (uint32_t code : {kSetParams, kPrepare, kSetParams, kPrepare, kStart}) {
    EXPECT_EQ(stream.Handle(Command(code), act), VIRTIO_SND_S_OK);
  }
  EXPECT_TRUE(stream.running());
  EXPECT_EQ(stream.params().period_bytes, 1920u);
  // Pause and resume, then stop and release; PREPARE again without new parameters.
  for (uint32_t code : {kStop, kStart, kStop, kRelease, kPrepare, kStart}) {
    EXPECT_EQ(stream.Handle(Command(code), act), VIRTIO_SND_S_OK);
  }
  EXPECT_EQ(stream.state(), PcmState::kStarted);
  EXPECT_EQ(acted, (std::vector<uint32_t>{kSetParams, kPrepare, kSetParams, kPrepare, kStart, kStop,
                                          kStart, kStop, kRelease, kPrepare, kStart}));
  stream.Reset();
  EXPECT_EQ(stream.state(), PcmState::kNone);
  EXPECT_EQ(stream.params().buffer_bytes, 0u);
  EXPECT_EQ(stream.Handle(Command(kPrepare)), VIRTIO_SND_S_BAD_MSG);
}

TEST(PcmStreamTest, RefusedParametersKeepTheOldOnes) {
  PcmStream stream(0, Caps());
  DriveTo(&stream, PcmState::kPrepared);
  PcmRequest request = Command(kSetParams);
  request.params.rate = VIRTIO_SND_PCM_RATE_8000;
  bool acted = false;
  EXPECT_EQ(stream.Handle(request,
                          [&](const PcmRequest&) {
                            acted = true;
                            return absl::OkStatus();
                          }),
            VIRTIO_SND_S_NOT_SUPP);
  request.params.rate = 200;
  EXPECT_EQ(stream.Handle(request), VIRTIO_SND_S_BAD_MSG);
  EXPECT_FALSE(acted);
  EXPECT_EQ(stream.state(), PcmState::kPrepared);
  EXPECT_EQ(stream.params().rate, VIRTIO_SND_PCM_RATE_48000);
}

TEST(PcmStreamTest, HostFailureIsIoErrAndKeepsTheState) {
  PcmStream stream(0, Caps());
  auto fail = [](const PcmRequest&) { return absl::UnavailableError("no audio server"); };
  PcmRequest request = Command(kSetParams);
  request.params.rate = VIRTIO_SND_PCM_RATE_44100;
  request.params.period_bytes = 1764;
  request.params.buffer_bytes = 1764 * 2;
  EXPECT_EQ(stream.Handle(request, fail), VIRTIO_SND_S_IO_ERR);
  EXPECT_EQ(stream.state(), PcmState::kNone);
  DriveTo(&stream, PcmState::kPrepared);
  EXPECT_EQ(stream.Handle(request, fail), VIRTIO_SND_S_IO_ERR);
  EXPECT_EQ(stream.params().rate, VIRTIO_SND_PCM_RATE_48000);
  EXPECT_EQ(stream.Handle(Command(kStart), fail), VIRTIO_SND_S_IO_ERR);
  EXPECT_EQ(stream.state(), PcmState::kPrepared);
  EXPECT_FALSE(stream.running());
  // The guest may try again once the host is back.
  EXPECT_EQ(stream.Handle(Command(kStart)), VIRTIO_SND_S_OK);
  EXPECT_TRUE(stream.running());
}

TEST(PcmRequestTest, ShortOversizedAndForeignRequestsAreBadMsg) {
  PcmRequest out;
  EXPECT_EQ(ParsePcmRequest({}, &out), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(ParsePcmRequest(std::vector<uint8_t>{0x02, 0x01, 0x00}, &out), VIRTIO_SND_S_BAD_MSG);
  std::vector<uint8_t> prepare = PcmHdr(kPrepare, 1);
  ASSERT_EQ(ParsePcmRequest(prepare, &out), VIRTIO_SND_S_OK);
  EXPECT_EQ(out.code, kPrepare);
  EXPECT_EQ(out.stream_id, 1u);
  prepare.push_back(0);
  EXPECT_EQ(ParsePcmRequest(prepare, &out), VIRTIO_SND_S_BAD_MSG);
  prepare.resize(7);
  EXPECT_EQ(ParsePcmRequest(prepare, &out), VIRTIO_SND_S_BAD_MSG);
  // SET_PARAMS with only its header, or one byte short or long.
  EXPECT_EQ(ParsePcmRequest(PcmHdr(kSetParams, 0), &out), VIRTIO_SND_S_BAD_MSG);
  std::vector<uint8_t> set = SetParamsBytes(0, Stereo48k());
  set.pop_back();
  EXPECT_EQ(ParsePcmRequest(set, &out), VIRTIO_SND_S_BAD_MSG);
  set.push_back(0);
  set.push_back(0);
  EXPECT_EQ(ParsePcmRequest(set, &out), VIRTIO_SND_S_BAD_MSG);
  // START with a SET_PARAMS' length.
  std::vector<uint8_t> long_start = SetParamsBytes(0, Stereo48k());
  long_start[0] = 0x04;
  EXPECT_EQ(ParsePcmRequest(long_start, &out), VIRTIO_SND_S_BAD_MSG);
  // Not PCM commands: PCM_INFO (an info request), jack and unknown codes.
  for (uint32_t code : {uint32_t{VIRTIO_SND_R_PCM_INFO}, uint32_t{VIRTIO_SND_R_JACK_REMAP},
                        uint32_t{0x0106}, uint32_t{0}, uint32_t{VIRTIO_SND_S_OK}}) {
    EXPECT_EQ(ParsePcmRequest(PcmHdr(code, 0), &out), VIRTIO_SND_S_BAD_MSG) << code;
  }
}

TEST(PcmRequestTest, HandleRoutesByStreamId) {
  PcmCaps capture = Caps();
  capture.direction = VIRTIO_SND_D_INPUT;
  std::vector<PcmStream> streams = {PcmStream(0, Caps()), PcmStream(1, capture)};
  std::vector<uint32_t> acted_on;
  auto act = [&](const PcmRequest& r) {
    acted_on.push_back(r.stream_id);
    return absl::OkStatus();
  };
  EXPECT_EQ(HandlePcmRequest(absl::MakeSpan(streams), SetParamsBytes(1, Stereo48k()), act),
            VIRTIO_SND_S_OK);
  EXPECT_EQ(streams[0].state(), PcmState::kNone);
  EXPECT_EQ(streams[1].state(), PcmState::kParamsSet);
  EXPECT_EQ(HandlePcmRequest(absl::MakeSpan(streams), PcmHdr(kPrepare, 1), act), VIRTIO_SND_S_OK);
  EXPECT_EQ(streams[1].state(), PcmState::kPrepared);
  // The other stream has no parameters yet.
  EXPECT_EQ(HandlePcmRequest(absl::MakeSpan(streams), PcmHdr(kPrepare, 0), act),
            VIRTIO_SND_S_BAD_MSG);
  // Unknown stream ids.
  for (uint32_t id : {2u, 0xffffffffu}) {
    EXPECT_EQ(HandlePcmRequest(absl::MakeSpan(streams), PcmHdr(kPrepare, id), act),
              VIRTIO_SND_S_BAD_MSG);
    EXPECT_EQ(HandlePcmRequest(absl::MakeSpan(streams), SetParamsBytes(id, Stereo48k()), act),
              VIRTIO_SND_S_BAD_MSG);
  }
  // Malformed.
  EXPECT_EQ(HandlePcmRequest(absl::MakeSpan(streams), std::vector<uint8_t>{1, 1}, act),
            VIRTIO_SND_S_BAD_MSG);
  // Unsupported parameters come back as the stream's answer.
  PcmParams eight_k = Stereo48k();
  eight_k.rate = VIRTIO_SND_PCM_RATE_8000;
  EXPECT_EQ(HandlePcmRequest(absl::MakeSpan(streams), SetParamsBytes(0, eight_k), act),
            VIRTIO_SND_S_NOT_SUPP);
  EXPECT_EQ(acted_on, (std::vector<uint32_t>{1, 1}));
  EXPECT_EQ(HandlePcmRequest(absl::MakeSpan(streams), PcmHdr(kStart, 1),
                             [](const PcmRequest&) { return absl::InternalError("gone"); }),
            VIRTIO_SND_S_IO_ERR);
}

}  // namespace
}  // namespace vhost::snd
