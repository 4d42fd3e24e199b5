// SndDevice on TestQueues with a FakeClock: playback lands in the WAV sink only when its period
// is due and completes in order; capture fills buffers from a WAV source at the clock; the
// control queue's answers (info, lifecycle errors, unknown codes); bad data buffers get a
// status; held buffers are all completed on RELEASE and when their queue stops.
#include "vhost-user-snd/snd_device.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"
#include "vhost-user-snd/file_backend.h"
#include "vhost-user-snd/null_backend.h"
#include "vhost-user-snd/wav_file.h"

namespace vhost::snd {
namespace {

using testing::Buffer;
using testing::FakeGuestMemory;
using testing::TestQueue;
using testing::UsedElement;

constexpr uint32_t kPlayback = 0;
constexpr uint32_t kCapture = 1;
// 48 kHz, 2 channels of s16: 4-byte frames; a 10 ms period of 480 frames; 4 periods a buffer.
constexpr uint32_t kFrameBytes = 4;
constexpr uint32_t kPeriodFrames = 480;
constexpr uint32_t kPeriodBytes = kPeriodFrames * kFrameBytes;
constexpr uint32_t kBufferBytes = 4 * kPeriodBytes;
const absl::Duration kPeriod = absl::Milliseconds(10);

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name);
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

class SndDeviceTest : public ::testing::Test {
 protected:
  // Stream 0 plays into `sink_`, stream 1 records `source` (nothing: a null backend).
  void Make(const std::vector<uint8_t>& source = {},
            absl::string_view streams_flag = kDefaultStreams, WavFormat source_format = {}) {
    if (sink_.empty()) {
      sink_ = TempPath(absl::StrCat(::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                    "-sink.wav"));
    }
    std::vector<std::unique_ptr<AudioBackend>> backends;
    backends.push_back(FileBackend::ForPlayback(sink_));
    if (source.empty()) {
      backends.push_back(std::make_unique<NullBackend>());
    } else {
      const std::string path = TempPath("source.wav");
      ASSERT_OK_AND_ASSIGN(WavWriter writer, WavWriter::Create(path, source_format));
      ASSERT_OK(writer.Write(source));
      ASSERT_OK(writer.Close());
      ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileBackend> capture,
                           FileBackend::ForCapture(path, CaptureEnd::kSilence));
      backends.push_back(std::move(capture));
    }
    ASSERT_OK_AND_ASSIGN(std::vector<PcmCaps> streams, ParseStreams(streams_flag));
    absl::StatusOr<std::unique_ptr<SndDevice>> device =
        SndDevice::Create(std::move(streams), std::move(backends), &clock_, controls_);
    create_status_ = device.status();
    if (!device.ok()) return;
    device_ = *std::move(device);
    for (int index : {kControlQueue, kEventQueue, kTxQueue, kRxQueue}) {
      TestQueue::Options options;
      options.index = index;
      ASSERT_OK_AND_ASSIGN(queues_[index], TestQueue::Create(&ram_, options));
      ASSERT_OK(queues_[index]->Start(*device_));
    }
  }
  void TearDown() override {
    if (!device_) return;
    for (auto& q : queues_) {
      if (q) q->Stop(*device_);
    }
  }
  TestQueue& q(int index) { return *queues_[index]; }

  uint64_t Put(const void* data, size_t n) { return ram_.Put(data, n); }
  template <typename T>
  T Get(uint64_t gpa) {
    return ram_.Get<T>(gpa);
  }

  // One control request; returns the reply's status (or ~0 when nothing was written).
  uint32_t Control(const void* request, size_t n, uint32_t reply_bytes = 4,
                   uint32_t* written = nullptr) {
    const uint64_t in = Put(request, n);
    const uint64_t out = ram_.Allocate(reply_bytes);
    absl::StatusOr<uint16_t> id =
        q(kControlQueue).Add({{in, static_cast<uint32_t>(n)}}, {{out, reply_bytes}});
    EXPECT_OK(id);
    q(kControlQueue).Run(*device_);
    std::vector<UsedElement> used = q(kControlQueue).Used();
    EXPECT_EQ(used.size(), 1u);
    if (used.empty()) return ~0u;
    if (written) *written = used[0].len;
    if (used[0].len < 4) return ~0u;
    return Get<uint32_t>(out);
  }
  uint32_t Pcm(uint32_t code, uint32_t stream) {
    virtio_snd_pcm_hdr hdr{{code}, stream};
    return Control(&hdr, sizeof(hdr));
  }
  uint32_t SetParams(uint32_t stream, uint32_t buffer_bytes = kBufferBytes,
                     uint32_t period_bytes = kPeriodBytes, uint32_t features = 0) {
    PcmParams params;
    params.features = features;
    params.buffer_bytes = buffer_bytes;
    params.period_bytes = period_bytes;
    params.channels = 2;
    params.format = VIRTIO_SND_PCM_FMT_S16;
    params.rate = VIRTIO_SND_PCM_RATE_48000;
    virtio_snd_pcm_set_params wire = params.ToWire(stream);
    return Control(&wire, sizeof(wire));
  }
  void Open(uint32_t stream) {
    ASSERT_EQ(SetParams(stream), VIRTIO_SND_S_OK);
    ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_PREPARE, stream), VIRTIO_SND_S_OK);
  }

  // A playback buffer; returns its id and (in *status) where its status goes.
  uint16_t Play(const std::vector<uint8_t>& frames, uint64_t* status, uint32_t stream = kPlayback) {
    std::vector<uint8_t> bytes(sizeof(virtio_snd_pcm_xfer));
    std::memcpy(bytes.data(), &stream, sizeof(stream));
    bytes.insert(bytes.end(), frames.begin(), frames.end());
    const uint64_t in = Put(bytes.data(), bytes.size());
    *status = ram_.Allocate(sizeof(virtio_snd_pcm_status));
    absl::StatusOr<uint16_t> id = q(kTxQueue).Add({{in, static_cast<uint32_t>(bytes.size())}},
                                                  {{*status, sizeof(virtio_snd_pcm_status)}});
    EXPECT_OK(id);
    return id.ok() ? *id : 0;
  }
  // A capture buffer of `bytes` frames' bytes plus its status; returns its id.
  uint16_t Record(uint32_t bytes, uint64_t* data, uint32_t stream = kCapture) {
    virtio_snd_pcm_xfer xfer{stream};
    const uint64_t in = Put(&xfer, sizeof(xfer));
    *data = ram_.Allocate(bytes + sizeof(virtio_snd_pcm_status));
    absl::StatusOr<uint16_t> id =
        q(kRxQueue).Add({{in, sizeof(xfer)}},
                        {{*data, static_cast<uint32_t>(bytes + sizeof(virtio_snd_pcm_status))}});
    EXPECT_OK(id);
    return id.ok() ? *id : 0;
  }

  std::vector<uint8_t> SinkData() {
    absl::StatusOr<WavReader> reader = WavReader::Open(sink_);
    EXPECT_OK(reader);
    if (!reader.ok()) return {};
    std::vector<uint8_t> data(reader->frames() * reader->format().frame_bytes());
    EXPECT_OK(reader->Read(absl::MakeSpan(data)));
    return data;
  }

  // Writes control `id`'s value; returns the reply's status.
  uint32_t CtlWrite(uint32_t id, uint32_t value) {
    struct {
      SndCtlHdr hdr;
      SndCtlValue value;
    } request = {};
    request.hdr = {{kSndRCtlWrite}, id};
    request.value.value.integer[0] = value;
    return Control(&request, sizeof(request));
  }

  // JACK_INFO of jack `id`.
  virtio_snd_jack_info JackInfo(uint32_t id) {
    virtio_snd_query_info query{{VIRTIO_SND_R_JACK_INFO}, id, 1, sizeof(virtio_snd_jack_info)};
    const uint32_t reply_bytes = 4 + sizeof(virtio_snd_jack_info);
    const uint64_t in = Put(&query, sizeof(query));
    const uint64_t out = ram_.Allocate(reply_bytes);
    EXPECT_OK(q(kControlQueue).Add({{in, sizeof(query)}}, {{out, reply_bytes}}));
    q(kControlQueue).Run(*device_);
    EXPECT_EQ(q(kControlQueue).Used().size(), 1u);
    EXPECT_EQ(Get<uint32_t>(out), VIRTIO_SND_S_OK);
    return Get<virtio_snd_jack_info>(out + 4);
  }
  // Posts an event buffer; returns where the event goes.
  uint64_t PostEventBuffer() {
    const uint64_t event = ram_.Allocate(sizeof(virtio_snd_event));
    EXPECT_OK(q(kEventQueue).Add({}, {{event, sizeof(virtio_snd_event)}}));
    q(kEventQueue).Run(*device_);
    return event;
  }

  bool controls_ = false;  // read by Make()
  FakeClock clock_;
  absl::Status create_status_;
  FakeGuestMemory ram_;
  std::string sink_;
  std::unique_ptr<SndDevice> device_;
  std::unique_ptr<TestQueue> queues_[4];
};

TEST_F(SndDeviceTest, PlaybackLandsInTheSinkWhenDueInOrder) {
  Make();
  Open(kPlayback);
  const std::vector<uint8_t> first = Pattern(kPeriodBytes, 1);
  const std::vector<uint8_t> second = Pattern(kPeriodBytes, 99);
  uint64_t status1, status2;
  const uint16_t id1 = Play(first, &status1);
  const uint16_t id2 = Play(second, &status2);
  q(kTxQueue).Run(*device_);
  EXPECT_TRUE(q(kTxQueue).Used().empty());  // prepared, not started: held
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kPlayback), VIRTIO_SND_S_OK);
  q(kTxQueue).Run(*device_);
  EXPECT_TRUE(q(kTxQueue).Used().empty());  // nothing due yet
  EXPECT_TRUE(SinkData().empty());

  clock_.Advance(kPeriod - absl::Nanoseconds(1));
  q(kTxQueue).Run(*device_);
  EXPECT_TRUE(q(kTxQueue).Used().empty());  // never ahead of the clock

  clock_.Advance(absl::Nanoseconds(1));
  q(kTxQueue).Run(*device_);
  std::vector<UsedElement> used = q(kTxQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].id, id1);
  EXPECT_EQ(used[0].len, sizeof(virtio_snd_pcm_status));
  virtio_snd_pcm_status s1 = Get<virtio_snd_pcm_status>(status1);
  EXPECT_EQ(s1.status, VIRTIO_SND_S_OK);
  EXPECT_EQ(s1.latency_bytes, kPeriodBytes);  // the second buffer is still queued
  EXPECT_EQ(SinkData(), first);

  clock_.Advance(kPeriod);
  q(kTxQueue).Run(*device_);
  used = q(kTxQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].id, id2);
  EXPECT_EQ(Get<virtio_snd_pcm_status>(status2).status, VIRTIO_SND_S_OK);
  std::vector<uint8_t> both = first;
  both.insert(both.end(), second.begin(), second.end());
  EXPECT_EQ(SinkData(), both);

  // The guest is late: a period of silence plays in its place.
  clock_.Advance(kPeriod);
  q(kTxQueue).Run(*device_);
  both.resize(both.size() + kPeriodBytes, 0);
  EXPECT_EQ(SinkData(), both);
}

TEST_F(SndDeviceTest, CaptureFillsBuffersFromTheSourceAtTheClock) {
  const std::vector<uint8_t> source = Pattern(2 * kPeriodBytes, 5);
  Make(source);
  Open(kCapture);
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kCapture), VIRTIO_SND_S_OK);
  uint64_t data1, data2;
  const uint16_t id1 = Record(kPeriodBytes, &data1);
  const uint16_t id2 = Record(kPeriodBytes, &data2);
  q(kRxQueue).Run(*device_);
  EXPECT_TRUE(q(kRxQueue).Used().empty());
  clock_.Advance(kPeriod);
  q(kRxQueue).Run(*device_);
  std::vector<UsedElement> used = q(kRxQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].id, id1);
  EXPECT_EQ(used[0].len, kPeriodBytes + sizeof(virtio_snd_pcm_status));
  EXPECT_EQ(0, std::memcmp(ram_.Host(data1, kPeriodBytes), source.data(), kPeriodBytes));
  EXPECT_EQ(Get<virtio_snd_pcm_status>(data1 + kPeriodBytes).status, VIRTIO_SND_S_OK);
  clock_.Advance(kPeriod);
  q(kRxQueue).Run(*device_);
  used = q(kRxQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].id, id2);
  EXPECT_EQ(
      0, std::memcmp(ram_.Host(data2, kPeriodBytes), source.data() + kPeriodBytes, kPeriodBytes));
}

TEST_F(SndDeviceTest, ControlAnswers) {
  Make();
  // PCM_INFO of both streams.
  virtio_snd_query_info query{{VIRTIO_SND_R_PCM_INFO}, 0, 2, sizeof(virtio_snd_pcm_info)};
  const uint32_t reply_bytes = 4 + 2 * sizeof(virtio_snd_pcm_info);
  uint32_t written = 0;
  EXPECT_EQ(Control(&query, sizeof(query), reply_bytes, &written), VIRTIO_SND_S_OK);
  EXPECT_EQ(written, reply_bytes);
  // Lifecycle: nothing before SET_PARAMS; unknown streams.
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_PREPARE, kPlayback), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kPlayback), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_PREPARE, 7), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(SetParams(kPlayback, kBufferBytes, kPeriodBytes + 2), VIRTIO_SND_S_BAD_MSG);
  Open(kPlayback);
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_STOP, kPlayback), VIRTIO_SND_S_BAD_MSG);
  // Unknown codes; a reply with no room for its status; a truncated header.
  virtio_snd_hdr unknown{0x0999};
  EXPECT_EQ(Control(&unknown, sizeof(unknown)), VIRTIO_SND_S_NOT_SUPP);
  EXPECT_EQ(Control(&unknown, sizeof(unknown), 2, &written), ~0u);
  EXPECT_EQ(written, 0u);
  EXPECT_EQ(Control(&unknown, 2), VIRTIO_SND_S_BAD_MSG);
  // JACK_REMAP of jack 0.
  virtio_snd_jack_remap remap{{{VIRTIO_SND_R_JACK_REMAP}, 0}, 2, 3};
  EXPECT_EQ(Control(&remap, sizeof(remap)), VIRTIO_SND_S_OK);
}

TEST_F(SndDeviceTest, NoControlsWithoutTheFlag) {
  Make();
  const DeviceInfo info = device_->Info();
  EXPECT_EQ(info.features & Bit(kSndFCtls), 0u);
  EXPECT_EQ(info.config_size, sizeof(virtio_snd_config));
  virtio_snd_query_info query{{kSndRCtlInfo}, 0, 1, sizeof(SndCtlInfo)};
  EXPECT_EQ(Control(&query, sizeof(query), 4 + sizeof(SndCtlInfo)), VIRTIO_SND_S_NOT_SUPP);
  EXPECT_EQ(CtlWrite(0, 50), VIRTIO_SND_S_NOT_SUPP);
}

TEST_F(SndDeviceTest, ControlsAreOfferedAndAnswered) {
  controls_ = true;
  Make();
  const DeviceInfo info = device_->Info();
  EXPECT_NE(info.features & Bit(kSndFCtls), 0u);
  EXPECT_EQ(info.config_size, sizeof(SndConfigCtls));
  std::vector<uint8_t> controls(4);
  ASSERT_OK(device_->ReadConfig(12, absl::MakeSpan(controls)));
  EXPECT_EQ(controls, (std::vector<uint8_t>{4, 0, 0, 0}));  // volume and switch, two streams
  virtio_snd_query_info query{{kSndRCtlInfo}, 0, 4, sizeof(SndCtlInfo)};
  uint32_t written = 0;
  EXPECT_EQ(Control(&query, sizeof(query), 4 + 4 * sizeof(SndCtlInfo), &written), VIRTIO_SND_S_OK);
  EXPECT_EQ(written, 4 + 4 * sizeof(SndCtlInfo));
  // A write (the largest control request) and the read that sees it.
  EXPECT_EQ(CtlWrite(0, 30), VIRTIO_SND_S_OK);
  SndCtlHdr read{{kSndRCtlRead}, 0};
  const uint64_t in = Put(&read, sizeof(read));
  const uint64_t out = ram_.Allocate(4 + sizeof(SndCtlValue));
  ASSERT_OK(q(kControlQueue).Add({{in, sizeof(read)}}, {{out, 4 + sizeof(SndCtlValue)}}));
  q(kControlQueue).Run(*device_);
  std::vector<UsedElement> used = q(kControlQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4 + sizeof(SndCtlValue));
  EXPECT_EQ(Get<uint32_t>(out), VIRTIO_SND_S_OK);
  EXPECT_EQ(Get<uint32_t>(out + 4), 30u);
  // Bad input: out of range, unknown control, TLV.
  EXPECT_EQ(CtlWrite(0, 101), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(CtlWrite(1, 2), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(CtlWrite(4, 1), VIRTIO_SND_S_BAD_MSG);
  SndCtlHdr tlv{{kSndRCtlTlvRead}, 1};  // a switch has no TLV
  EXPECT_EQ(Control(&tlv, sizeof(tlv)), VIRTIO_SND_S_NOT_SUPP);
  SndCtlHdr tlv_write{{kSndRCtlTlvWrite}, 0};
  EXPECT_EQ(Control(&tlv_write, sizeof(tlv_write)), VIRTIO_SND_S_NOT_SUPP);
  // The volume's dB scale, laid out as Linux asks for it: the status header in one buffer, the
  // TLV in a buffer of the size ALSA's caller gave.
  tlv = {{kSndRCtlTlvRead}, 0};
  const uint64_t tlv_in = Put(&tlv, sizeof(tlv));
  const uint64_t tlv_hdr = ram_.Allocate(4);
  const uint64_t tlv_out = ram_.Allocate(64);
  ASSERT_OK(q(kControlQueue).Add({{tlv_in, sizeof(tlv)}}, {{tlv_hdr, 4}, {tlv_out, 64}}));
  q(kControlQueue).Run(*device_);
  used = q(kControlQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4 + sizeof(DbLinearTlv));
  EXPECT_EQ(Get<uint32_t>(tlv_hdr), VIRTIO_SND_S_OK);
  const DbLinearTlv got = Get<DbLinearTlv>(tlv_out);
  EXPECT_EQ(got.type, 2u);  // SNDRV_CTL_TLVT_DB_LINEAR
  EXPECT_EQ(got.length, 8u);
  EXPECT_EQ(got.min, -9999999);  // mute
  EXPECT_EQ(got.max, 0);
  // A reset brings the defaults back.
  for (int index : {kControlQueue, kEventQueue, kTxQueue, kRxQueue}) q(index).Stop(*device_);
  device_->Reset();
  for (int index : {kControlQueue, kEventQueue, kTxQueue, kRxQueue}) {
    ASSERT_OK(q(index).Start(*device_));
  }
  ASSERT_OK(q(kControlQueue).Add({{in, sizeof(read)}}, {{out, 4 + sizeof(SndCtlValue)}}));
  q(kControlQueue).Run(*device_);
  ASSERT_EQ(q(kControlQueue).Used().size(), 1u);
  EXPECT_EQ(Get<uint32_t>(out + 4), 100u);
}

// S16 frames of `value` on both channels.
std::vector<uint8_t> Constant(int16_t value, uint32_t bytes) {
  std::vector<uint8_t> v(bytes);
  for (size_t i = 0; i + 2 <= v.size(); i += 2) std::memcpy(v.data() + i, &value, 2);
  return v;
}

TEST_F(SndDeviceTest, PlaybackVolumeScalesAndTheSwitchMutes) {
  controls_ = true;
  Make();
  Open(kPlayback);
  ASSERT_EQ(CtlWrite(0, 50), VIRTIO_SND_S_OK);  // stream 0's volume
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kPlayback), VIRTIO_SND_S_OK);
  uint64_t status;
  Play(Constant(-12000, kPeriodBytes), &status);
  clock_.Advance(kPeriod);
  q(kTxQueue).Run(*device_);
  ASSERT_EQ(q(kTxQueue).Used().size(), 1u);
  std::vector<uint8_t> expected = Constant(-6000, kPeriodBytes);
  EXPECT_EQ(SinkData(), expected);

  ASSERT_EQ(CtlWrite(1, 0), VIRTIO_SND_S_OK);  // stream 0's switch off: muted
  Play(Constant(-12000, kPeriodBytes), &status);
  clock_.Advance(kPeriod);
  q(kTxQueue).Run(*device_);
  ASSERT_EQ(q(kTxQueue).Used().size(), 1u);
  expected.resize(2 * kPeriodBytes, 0);
  EXPECT_EQ(SinkData(), expected);

  ASSERT_EQ(CtlWrite(1, 1), VIRTIO_SND_S_OK);  // on again, at the volume it had
  Play(Constant(400, kPeriodBytes), &status);
  clock_.Advance(kPeriod);
  q(kTxQueue).Run(*device_);
  ASSERT_EQ(q(kTxQueue).Used().size(), 1u);
  const std::vector<uint8_t> third = Constant(200, kPeriodBytes);
  expected.insert(expected.end(), third.begin(), third.end());
  EXPECT_EQ(SinkData(), expected);
}

TEST_F(SndDeviceTest, CaptureVolumeScalesAndTheSwitchMutes) {
  controls_ = true;
  Make(Constant(8000, 2 * kPeriodBytes));
  Open(kCapture);
  ASSERT_EQ(CtlWrite(2, 25), VIRTIO_SND_S_OK);  // stream 1's volume
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kCapture), VIRTIO_SND_S_OK);
  uint64_t data1, data2;
  Record(kPeriodBytes, &data1);
  Record(kPeriodBytes, &data2);
  clock_.Advance(kPeriod);
  q(kRxQueue).Run(*device_);
  ASSERT_EQ(q(kRxQueue).Used().size(), 1u);
  const std::vector<uint8_t> quarter = Constant(2000, kPeriodBytes);
  EXPECT_EQ(0, std::memcmp(ram_.Host(data1, kPeriodBytes), quarter.data(), kPeriodBytes));
  ASSERT_EQ(CtlWrite(3, 0), VIRTIO_SND_S_OK);  // stream 1's switch
  clock_.Advance(kPeriod);
  q(kRxQueue).Run(*device_);
  ASSERT_EQ(q(kRxQueue).Used().size(), 1u);
  const std::vector<uint8_t> silence(kPeriodBytes, 0);
  EXPECT_EQ(0, std::memcmp(ram_.Host(data2, kPeriodBytes), silence.data(), kPeriodBytes));
}

TEST_F(SndDeviceTest, ALostHostSidePlaysSilentlyAtTheClock) {
  sink_ = "/nonexistent-dir/sink.wav";  // the sink cannot be created
  Make();
  Open(kPlayback);  // the stream is told OK and runs silent
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kPlayback), VIRTIO_SND_S_OK);
  uint64_t status;
  const uint16_t id = Play(Pattern(kPeriodBytes, 3), &status);
  q(kTxQueue).Run(*device_);
  EXPECT_TRUE(q(kTxQueue).Used().empty());  // still paced
  clock_.Advance(kPeriod);
  q(kTxQueue).Run(*device_);
  std::vector<UsedElement> used = q(kTxQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].id, id);
  EXPECT_EQ(Get<virtio_snd_pcm_status>(status).status, VIRTIO_SND_S_OK);
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_STOP, kPlayback), VIRTIO_SND_S_OK);
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_RELEASE, kPlayback), VIRTIO_SND_S_OK);
}

TEST_F(SndDeviceTest, XrunEventWhenAWholeBufferWentByWithoutData) {
  Make();
  ASSERT_EQ(SetParams(kPlayback, kBufferBytes, kPeriodBytes, 1u << VIRTIO_SND_PCM_F_EVT_XRUNS),
            VIRTIO_SND_S_OK);
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_PREPARE, kPlayback), VIRTIO_SND_S_OK);
  Open(kCapture);  // without the feature: never an event
  const uint64_t event = ram_.Allocate(sizeof(virtio_snd_event));
  ASSERT_OK(q(kEventQueue).Add({}, {{event, sizeof(virtio_snd_event)}}));
  q(kEventQueue).Run(*device_);
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kPlayback), VIRTIO_SND_S_OK);
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kCapture), VIRTIO_SND_S_OK);
  // Three periods without a buffer: a glitch, not yet an XRUN.
  for (int i = 0; i < 3; ++i) {
    clock_.Advance(kPeriod);
    q(kTxQueue).Run(*device_);
    q(kRxQueue).Run(*device_);
  }
  q(kEventQueue).Run(*device_);
  EXPECT_TRUE(q(kEventQueue).Used().empty());
  // The fourth (the buffer is 4 periods) makes it one.
  clock_.Advance(kPeriod);
  q(kRxQueue).Run(*device_);
  q(kEventQueue).Run(*device_);
  EXPECT_TRUE(q(kEventQueue).Used().empty());  // the capture stream did not ask
  q(kTxQueue).Run(*device_);
  q(kEventQueue).Run(*device_);
  std::vector<UsedElement> used = q(kEventQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, sizeof(virtio_snd_event));
  const virtio_snd_event got = Get<virtio_snd_event>(event);
  EXPECT_EQ(got.hdr.code, VIRTIO_SND_EVT_PCM_XRUN);
  EXPECT_EQ(got.data, kPlayback);
}

TEST_F(SndDeviceTest, JackPlugEventsAndJackInfo) {
  Make();
  EXPECT_EQ(JackInfo(kPlayback).connected, 1);
  EXPECT_EQ(JackInfo(kCapture).connected, 1);
  ASSERT_OK_AND_ASSIGN(std::string list, device_->HostCommand("list"));
  EXPECT_EQ(list, "jack 0 out plugged; jack 1 in plugged");

  // Unplugged with an event buffer posted: the event at once, JACK_INFO agrees.
  const uint64_t event1 = PostEventBuffer();
  ASSERT_OK_AND_ASSIGN(std::string reply, device_->HostCommand("jack 1 unplug"));
  EXPECT_EQ(reply, "jack 1 unplugged");
  q(kEventQueue).Run(*device_);
  std::vector<UsedElement> used = q(kEventQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, sizeof(virtio_snd_event));
  EXPECT_EQ(Get<virtio_snd_event>(event1).hdr.code, VIRTIO_SND_EVT_JACK_DISCONNECTED);
  EXPECT_EQ(Get<virtio_snd_event>(event1).data, kCapture);
  EXPECT_EQ(JackInfo(kCapture).connected, 0);
  EXPECT_EQ(JackInfo(kPlayback).connected, 1);
  ASSERT_OK_AND_ASSIGN(list, device_->HostCommand("list"));
  EXPECT_EQ(list, "jack 0 out plugged; jack 1 in unplugged");

  // No change, no event.
  EXPECT_OK(device_->HostCommand("jack 1 unplug"));
  EXPECT_OK(device_->HostCommand("  jack   0   plug "));
  q(kEventQueue).Run(*device_);
  EXPECT_TRUE(q(kEventQueue).Used().empty());

  // Two changes with one event buffer posted: the first takes it, the second waits for the
  // next buffer rather than being lost.
  const uint64_t unused = PostEventBuffer();
  ASSERT_OK(device_->HostCommand("jack 1 plug"));
  ASSERT_OK(device_->HostCommand("jack 0 unplug"));
  q(kEventQueue).Run(*device_);
  used = q(kEventQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(Get<virtio_snd_event>(unused).hdr.code, VIRTIO_SND_EVT_JACK_CONNECTED);
  EXPECT_EQ(Get<virtio_snd_event>(unused).data, kCapture);
  const uint64_t event2 = PostEventBuffer();
  used = q(kEventQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(Get<virtio_snd_event>(event2).hdr.code, VIRTIO_SND_EVT_JACK_DISCONNECTED);
  EXPECT_EQ(Get<virtio_snd_event>(event2).data, kPlayback);
  EXPECT_EQ(JackInfo(kPlayback).connected, 0);
  EXPECT_EQ(JackInfo(kCapture).connected, 1);
}

TEST_F(SndDeviceTest, BadHostCommandsGetAnError) {
  Make();
  for (const char* line :
       {"", " ", "frob", "list all", "jack", "jack 0", "jack 2 plug", "jack -1 plug", "jack x plug",
        "jack 4294967296 plug", "jack 0 yank", "jack 0 plug now", "JACK 0 plug"}) {
    absl::StatusOr<std::string> reply = device_->HostCommand(line);
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument) << "'" << line << "'";
  }
  EXPECT_EQ(JackInfo(kPlayback).connected, 1);  // nothing changed
  EXPECT_EQ(JackInfo(kCapture).connected, 1);
  PostEventBuffer();
  q(kEventQueue).Run(*device_);
  EXPECT_TRUE(q(kEventQueue).Used().empty());
}

TEST_F(SndDeviceTest, HostSetsAControlAndTheGuestIsNotified) {
  controls_ = true;
  Make();
  ASSERT_OK_AND_ASSIGN(std::string list, device_->HostCommand("list"));
  EXPECT_EQ(list,
            "jack 0 out plugged; jack 1 in plugged; control 0 100; control 1 1; control 2 100; "
            "control 3 1");
  const uint64_t event = PostEventBuffer();
  ASSERT_OK_AND_ASSIGN(std::string reply, device_->HostCommand("control 2 40"));
  EXPECT_EQ(reply, "control 2 40");
  q(kEventQueue).Run(*device_);
  std::vector<UsedElement> used = q(kEventQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, sizeof(SndCtlEvent));
  const SndCtlEvent got = Get<SndCtlEvent>(event);
  EXPECT_EQ(got.hdr.code, kSndEvtCtlNotify);
  EXPECT_EQ(got.control_id, 2u);
  EXPECT_EQ(got.mask, 1u << kSndCtlEvtMaskValue);
  // The guest reads the new value.
  SndCtlHdr read{{kSndRCtlRead}, 2};
  const uint64_t in = Put(&read, sizeof(read));
  const uint64_t out = ram_.Allocate(4 + sizeof(SndCtlValue));
  ASSERT_OK(q(kControlQueue).Add({{in, sizeof(read)}}, {{out, 4 + sizeof(SndCtlValue)}}));
  q(kControlQueue).Run(*device_);
  ASSERT_EQ(q(kControlQueue).Used().size(), 1u);
  EXPECT_EQ(Get<uint32_t>(out), VIRTIO_SND_S_OK);
  EXPECT_EQ(Get<uint32_t>(out + 4), 40u);
  // The same value again: no event. Bad lines: an error, no change, no event.
  EXPECT_OK(device_->HostCommand("control 2 40"));
  for (const char* line : {"control 0 101", "control 1 2", "control 4 0", "control x 1",
                           "control 0 -1", "control 0", "control 0 1 2", "control 0 1x"}) {
    EXPECT_EQ(device_->HostCommand(line).status().code(), absl::StatusCode::kInvalidArgument)
        << "'" << line << "'";
  }
  PostEventBuffer();
  q(kEventQueue).Run(*device_);
  EXPECT_TRUE(q(kEventQueue).Used().empty());
  ASSERT_OK_AND_ASSIGN(list, device_->HostCommand("list"));
  EXPECT_EQ(list,
            "jack 0 out plugged; jack 1 in plugged; control 0 100; control 1 1; control 2 40; "
            "control 3 1");
}

TEST_F(SndDeviceTest, NoControlsToSetWithoutTheFlag) {
  Make();
  EXPECT_EQ(device_->HostCommand("control 0 1").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SndDeviceTest, ResetKeepsWhatIsPluggedInAndDropsWaitingEvents) {
  Make();
  ASSERT_OK(device_->HostCommand("jack 0 unplug"));  // no event buffer: the event waits
  for (int index : {kControlQueue, kEventQueue, kTxQueue, kRxQueue}) q(index).Stop(*device_);
  device_->Reset();
  for (int index : {kControlQueue, kEventQueue, kTxQueue, kRxQueue}) {
    ASSERT_OK(q(index).Start(*device_));
  }
  EXPECT_EQ(JackInfo(kPlayback).connected, 0);
  PostEventBuffer();
  q(kEventQueue).Run(*device_);
  EXPECT_TRUE(q(kEventQueue).Used().empty());  // JACK_INFO says it; no stale event
}

TEST_F(SndDeviceTest, QueueStoppedReturnsEventBuffers) {
  Make();
  const uint64_t event = ram_.Allocate(sizeof(virtio_snd_event));
  ASSERT_OK(q(kEventQueue).Add({}, {{event, sizeof(virtio_snd_event)}}));
  q(kEventQueue).Run(*device_);
  EXPECT_EQ(q(kEventQueue).context().in_flight(), 1u);
  q(kEventQueue).Stop(*device_);
  std::vector<UsedElement> used = q(kEventQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 0u);
  queues_[kEventQueue].reset();
}

TEST_F(SndDeviceTest, ResetForgetsStreamsAndRemaps) {
  Make();
  auto jack0_defconf = [this]() {
    virtio_snd_query_info query{{VIRTIO_SND_R_JACK_INFO}, 0, 1, sizeof(virtio_snd_jack_info)};
    const uint32_t reply_bytes = 4 + sizeof(virtio_snd_jack_info);
    const uint64_t in = Put(&query, sizeof(query));
    const uint64_t out = ram_.Allocate(reply_bytes);
    EXPECT_OK(q(kControlQueue).Add({{in, sizeof(query)}}, {{out, reply_bytes}}));
    q(kControlQueue).Run(*device_);
    EXPECT_EQ(q(kControlQueue).Used().size(), 1u);
    return Get<virtio_snd_jack_info>(out + 4).hda_reg_defconf;
  };
  const uint32_t defconf = jack0_defconf();
  Open(kPlayback);
  ASSERT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kPlayback), VIRTIO_SND_S_OK);
  virtio_snd_jack_remap remap{{{VIRTIO_SND_R_JACK_REMAP}, 0}, 5, 6};
  ASSERT_EQ(Control(&remap, sizeof(remap)), VIRTIO_SND_S_OK);
  ASSERT_NE(jack0_defconf(), defconf);
  for (int index : {kControlQueue, kEventQueue, kTxQueue, kRxQueue}) q(index).Stop(*device_);
  device_->Reset();
  for (int index : {kControlQueue, kEventQueue, kTxQueue, kRxQueue}) {
    ASSERT_OK(q(index).Start(*device_));
  }
  // The stream has no parameters again: nothing to prepare or start.
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_START, kPlayback), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_PREPARE, kPlayback), VIRTIO_SND_S_BAD_MSG);
  EXPECT_EQ(jack0_defconf(), defconf);  // the remap is forgotten
}

TEST_F(SndDeviceTest, StreamsOfferWhatTheirHostSideOpens) {
  WavFormat mono;
  mono.rate = 44100;
  mono.channels = 1;
  // The capture file is 44.1 kHz mono: the capture stream offers that and no more.
  Make(Pattern(64, 0), "playback:2ch:48000:s16,s20_3;capture:1-2ch:48000,44100:s16,s32", mono);
  ASSERT_OK(create_status_);
  virtio_snd_query_info query{{VIRTIO_SND_R_PCM_INFO}, 0, 2, sizeof(virtio_snd_pcm_info)};
  const uint32_t reply_bytes = 4 + 2 * sizeof(virtio_snd_pcm_info);
  const uint64_t in = Put(&query, sizeof(query));
  const uint64_t out = ram_.Allocate(reply_bytes);
  ASSERT_OK(q(kControlQueue).Add({{in, sizeof(query)}}, {{out, reply_bytes}}));
  q(kControlQueue).Run(*device_);
  ASSERT_EQ(q(kControlQueue).Used().size(), 1u);
  const virtio_snd_pcm_info playback = Get<virtio_snd_pcm_info>(out + 4);
  const virtio_snd_pcm_info capture = Get<virtio_snd_pcm_info>(out + 4 + sizeof(playback));
  EXPECT_EQ(playback.formats, uint64_t{1} << VIRTIO_SND_PCM_FMT_S16);  // no host side has s20
  EXPECT_EQ(capture.formats, uint64_t{1} << VIRTIO_SND_PCM_FMT_S16);
  EXPECT_EQ(capture.rates, uint64_t{1} << VIRTIO_SND_PCM_RATE_44100);
  EXPECT_EQ(capture.channels_min, 1);
  EXPECT_EQ(capture.channels_max, 1);
}

TEST_F(SndDeviceTest, AStreamItsHostSideCannotOpenIsRefused) {
  WavFormat mono;
  mono.channels = 1;
  Make(Pattern(64, 0), kDefaultStreams, mono);  // a 2-channel capture stream, a mono file
  EXPECT_EQ(create_status_.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(device_);
}

TEST_F(SndDeviceTest, BadBuffersGetAStatus) {
  Make();
  uint64_t status;
  Play(Pattern(kPeriodBytes, 0), &status);  // stream not prepared
  q(kTxQueue).Run(*device_);
  std::vector<UsedElement> used = q(kTxQueue).Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(Get<virtio_snd_pcm_status>(status).status, VIRTIO_SND_S_BAD_MSG);
  Open(kPlayback);
  for (const auto& [frames, stream] : std::vector<std::pair<std::vector<uint8_t>, uint32_t>>{
           {Pattern(kPeriodBytes + 1, 0), kPlayback},  // a partial frame
           {Pattern(kBufferBytes + 4, 0), kPlayback},  // more than the stream's buffer
           {Pattern(kPeriodBytes, 0), 9},              // unknown stream
           {Pattern(kPeriodBytes, 0), kCapture},       // the other direction
           {{}, kPlayback}}) {                         // no frames
    Play(frames, &status, stream);
    q(kTxQueue).Run(*device_);
    ASSERT_EQ(q(kTxQueue).Used().size(), 1u);
    EXPECT_EQ(Get<virtio_snd_pcm_status>(status).status, VIRTIO_SND_S_BAD_MSG);
  }
  // A chain too short for the header.
  const uint64_t out = ram_.Allocate(8);
  ASSERT_OK(q(kTxQueue).Add({}, {{out, 8}}));
  q(kTxQueue).Run(*device_);
  ASSERT_EQ(q(kTxQueue).Used().size(), 1u);
  EXPECT_EQ(Get<virtio_snd_pcm_status>(out).status, VIRTIO_SND_S_BAD_MSG);
}

TEST_F(SndDeviceTest, ReleaseCompletesHeldBuffers) {
  Make();
  Open(kPlayback);
  uint64_t status1, status2;
  Play(Pattern(kPeriodBytes, 1), &status1);
  Play(Pattern(kPeriodBytes, 2), &status2);
  q(kTxQueue).Run(*device_);
  EXPECT_TRUE(q(kTxQueue).Used().empty());
  EXPECT_EQ(Pcm(VIRTIO_SND_R_PCM_RELEASE, kPlayback), VIRTIO_SND_S_OK);
  q(kTxQueue).Run(*device_);  // pushes what the control thread completed
  EXPECT_EQ(q(kTxQueue).Used().size(), 2u);
  EXPECT_EQ(Get<virtio_snd_pcm_status>(status2).status, VIRTIO_SND_S_OK);
  EXPECT_TRUE(SinkData().empty());  // nothing was due: nothing played
}

TEST_F(SndDeviceTest, QueueStoppedCompletesHeldBuffers) {
  Make();
  Open(kPlayback);
  Open(kCapture);
  uint64_t status, data;
  Play(Pattern(kPeriodBytes, 1), &status);
  Record(kPeriodBytes, &data);
  q(kTxQueue).Run(*device_);
  q(kRxQueue).Run(*device_);
  EXPECT_EQ(q(kTxQueue).context().in_flight(), 1u);
  EXPECT_EQ(q(kRxQueue).context().in_flight(), 1u);
  q(kTxQueue).Stop(*device_);
  q(kRxQueue).Stop(*device_);
  EXPECT_EQ(q(kTxQueue).Used().size(), 1u);
  EXPECT_EQ(q(kRxQueue).Used().size(), 1u);
  queues_[kTxQueue].reset();
  queues_[kRxQueue].reset();
}

}  // namespace
}  // namespace vhost::snd
