// vhost-user-snd driven over its socket by our front end: the daemon starts with --streams, its
// features and configuration space read as the streams say, and a PCM_INFO round trip on the
// control queue describes them; with the file backend, inside its sandbox, a played buffer
// lands in the WAV sink and a capture buffer comes back with the WAV source's frames; with
// --controls, a muted stream writes silence to the sink and a volume of 50 halves the samples;
// jacks unplugged and plugged on --control-socket reach the driver as events and JACK_INFO, and
// a control set there as a CTL_NOTIFY event and the value CTL_READ returns.
#include <linux/virtio_snd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/control_client.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/snd_driver.h"
#include "tests/integration/runfiles.h"
#include "vhost-user-snd/pcm_stream.h"
#include "vhost-user-snd/snd_spec.h"
#include "vhost-user-snd/wav_file.h"

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);

TEST(SndDaemonTest, ConfigAndPcmInfo) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DaemonSession> session, DaemonSession::Create("snd"));
  ASSERT_OK(session->Start(RunfilePath("vhost-user-snd/vhost-user-snd"),
                           {"--socket-path=" + session->socket(), "--backend=null",
                            "--streams=playback:2ch:48000,44100:s16,s32;capture:1ch:48000:s16;"
                            "playback:6ch:96000:float"}));
  DeviceOptions options;
  options.features = Bit(kFeatureVersion1);
  options.required_features = options.features;
  options.ram_size = 4 << 20;
  options.queue_sizes = {64, 64, 64, 64};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DeviceConnection> device, session->Open(options));
  EXPECT_TRUE(device->acked_features() & Bit(kFeatureVersion1));

  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes,
                       device->frontend()->GetConfig(0, sizeof(virtio_snd_config)));
  virtio_snd_config config;
  ASSERT_EQ(bytes.size(), sizeof(config));
  std::memcpy(&config, bytes.data(), sizeof(config));
  EXPECT_EQ(config.streams, 3u);
  EXPECT_EQ(config.jacks, 3u);

  // PCM_INFO of all three streams.
  const virtio_snd_query_info query{{VIRTIO_SND_R_PCM_INFO}, 0, 3, sizeof(virtio_snd_pcm_info)};
  const uint32_t reply_bytes = sizeof(virtio_snd_hdr) + 3 * sizeof(virtio_snd_pcm_info);
  uint8_t* in_host = nullptr;
  uint8_t* out_host = nullptr;
  ASSERT_OK_AND_ASSIGN(uint64_t in, device->ram()->Allocate(sizeof(query), 64, &in_host));
  ASSERT_OK_AND_ASSIGN(uint64_t out, device->ram()->Allocate(reply_bytes, 64, &out_host));
  std::memcpy(in_host, &query, sizeof(query));
  ASSERT_OK(device->queue(0)->ring().AddChain({{in, sizeof(query)}}, {{out, reply_bytes}}));
  ASSERT_OK(device->queue(0)->Submit());
  ASSERT_OK_AND_ASSIGN(UsedElement used, device->queue(0)->WaitForUsed(kTimeout));
  EXPECT_EQ(used.len, reply_bytes);
  virtio_snd_hdr status;
  std::memcpy(&status, out_host, sizeof(status));
  EXPECT_EQ(status.code, VIRTIO_SND_S_OK);
  virtio_snd_pcm_info info[3];
  std::memcpy(info, out_host + sizeof(status), sizeof(info));
  EXPECT_EQ(info[0].direction, VIRTIO_SND_D_OUTPUT);
  EXPECT_EQ(info[0].formats, (1u << VIRTIO_SND_PCM_FMT_S16) | (1u << VIRTIO_SND_PCM_FMT_S32));
  EXPECT_EQ(info[0].rates, (1u << VIRTIO_SND_PCM_RATE_48000) | (1u << VIRTIO_SND_PCM_RATE_44100));
  EXPECT_EQ(info[1].direction, VIRTIO_SND_D_INPUT);
  EXPECT_EQ(info[1].channels_max, 1);
  EXPECT_EQ(info[2].channels_min, 6);
  EXPECT_EQ(info[2].formats, 1u << VIRTIO_SND_PCM_FMT_FLOAT);
  EXPECT_TRUE(session->daemon()->IsAlive());
}

// Adds one chain on queue `q` (`in` readable bytes, `out_bytes` writable ones) and kicks;
// returns where the device writes.
uint8_t* Send(DeviceConnection* device, int q, const std::vector<uint8_t>& in, uint32_t out_bytes) {
  uint8_t* in_host = nullptr;
  uint8_t* out_host = nullptr;
  absl::StatusOr<uint64_t> in_gpa = device->ram()->Allocate(in.size(), 64, &in_host);
  absl::StatusOr<uint64_t> out_gpa = device->ram()->Allocate(out_bytes, 64, &out_host);
  EXPECT_OK(in_gpa);
  EXPECT_OK(out_gpa);
  if (!in_gpa.ok() || !out_gpa.ok()) return nullptr;
  std::memcpy(in_host, in.data(), in.size());
  EXPECT_OK(device->queue(q)->ring().AddChain({{*in_gpa, static_cast<uint32_t>(in.size())}},
                                              {{*out_gpa, out_bytes}}));
  EXPECT_OK(device->queue(q)->Submit());
  return out_host;
}

// Waits for the chain queue `q` completes next; returns what the device wrote in `out`.
std::vector<uint8_t> Wait(DeviceConnection* device, int q, const uint8_t* out, uint32_t out_bytes) {
  absl::StatusOr<UsedElement> used = device->queue(q)->WaitForUsed(kTimeout);
  EXPECT_OK(used);
  if (!used.ok() || out == nullptr) return {};
  return std::vector<uint8_t>(out, out + std::min(used->len, out_bytes));
}

std::vector<uint8_t> Transact(DeviceConnection* device, int q, const std::vector<uint8_t>& in,
                              uint32_t out_bytes) {
  return Wait(device, q, Send(device, q, in, out_bytes), out_bytes);
}

template <typename T>
std::vector<uint8_t> Bytes(const T& value) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(&value);
  return std::vector<uint8_t>(p, p + sizeof(T));
}

uint32_t Status(const std::vector<uint8_t>& reply, size_t at = 0) {
  uint32_t status = ~0u;
  if (reply.size() >= at + 4) std::memcpy(&status, reply.data() + at, 4);
  return status;
}

// SET_PARAMS (four 10 ms periods of 48 kHz stereo S16) and PREPARE for `stream`.
void SetParamsAndPrepare(DeviceConnection* device, uint32_t stream, uint32_t period_bytes) {
  snd::PcmParams params;
  params.buffer_bytes = 4 * period_bytes;
  params.period_bytes = period_bytes;
  params.channels = 2;
  params.format = VIRTIO_SND_PCM_FMT_S16;
  params.rate = VIRTIO_SND_PCM_RATE_48000;
  EXPECT_EQ(Status(Transact(device, 0, Bytes(params.ToWire(stream)), 4)), VIRTIO_SND_S_OK);
  const virtio_snd_pcm_hdr prepare{{VIRTIO_SND_R_PCM_PREPARE}, stream};
  EXPECT_EQ(Status(Transact(device, 0, Bytes(prepare), 4)), VIRTIO_SND_S_OK);
}

TEST(SndDaemonTest, FileBackendPlaysAndRecordsInItsSandbox) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DaemonSession> session, DaemonSession::Create("snd"));
  const std::string sink = session->File("sink.wav");
  const std::string source = session->File("source.wav");
  constexpr uint32_t kPeriodBytes = 480 * 4;  // 10 ms of 48 kHz stereo s16
  constexpr uint32_t kSourcePeriods = 100;
  // The source: 1 s, each period different.
  std::vector<uint8_t> recorded(kSourcePeriods * kPeriodBytes), played(kPeriodBytes);
  for (uint32_t i = 0; i < recorded.size(); ++i) {
    recorded[i] = static_cast<uint8_t>(i * 3 + (i / kPeriodBytes) * 17 + 1);
  }
  for (uint32_t i = 0; i < kPeriodBytes; ++i) played[i] = static_cast<uint8_t>(i * 5 + 2);
  {
    ASSERT_OK_AND_ASSIGN(snd::WavWriter writer, snd::WavWriter::Create(source, snd::WavFormat()));
    ASSERT_OK(writer.Write(recorded));
    ASSERT_OK(writer.Close());
  }
  ASSERT_OK(session->Start(RunfilePath("vhost-user-snd/vhost-user-snd"),
                           {"--socket-path=" + session->socket(), "--backend=file",
                            "--playback-file=" + sink, "--capture-file=" + source}));
  DeviceOptions options;
  options.features = Bit(kFeatureVersion1);
  options.required_features = options.features;
  options.ram_size = 4 << 20;
  options.queue_sizes = {64, 64, 64, 64};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DeviceConnection> device, session->Open(options));

  for (uint32_t stream : {0u, 1u}) SetParamsAndPrepare(device.get(), stream, kPeriodBytes);
  // Each stream's buffer is queued before START, as a driver does. Should the daemon take it
  // only after the first periods passed, those played silence (or dropped what the source
  // had): the checks below allow for that, and so assume nothing of the host's timing.
  std::vector<uint8_t> tx = Bytes(virtio_snd_pcm_xfer{0});
  tx.insert(tx.end(), played.begin(), played.end());
  const uint32_t rx_bytes = kPeriodBytes + sizeof(virtio_snd_pcm_status);
  const uint8_t* tx_out = Send(device.get(), 2, tx, sizeof(virtio_snd_pcm_status));
  const uint8_t* rx_out = Send(device.get(), 3, Bytes(virtio_snd_pcm_xfer{1}), rx_bytes);
  for (uint32_t stream : {0u, 1u}) {
    const virtio_snd_pcm_hdr start{{VIRTIO_SND_R_PCM_START}, stream};
    EXPECT_EQ(Status(Transact(device.get(), 0, Bytes(start), 4)), VIRTIO_SND_S_OK);
  }
  // Playback: the buffer completes once its period has been written to the sink.
  EXPECT_EQ(Status(Wait(device.get(), 2, tx_out, sizeof(virtio_snd_pcm_status))), VIRTIO_SND_S_OK);
  // The sink: whole periods of silence, then the buffer.
  ASSERT_OK_AND_ASSIGN(snd::WavReader reader, snd::WavReader::Open(sink));
  std::vector<uint8_t> in_sink(reader.frames() * 4);
  ASSERT_OK(reader.Read(absl::MakeSpan(in_sink)));
  size_t silent = 0;
  while (silent + kPeriodBytes <= in_sink.size() &&
         std::all_of(in_sink.begin() + silent, in_sink.begin() + silent + kPeriodBytes,
                     [](uint8_t b) { return b == 0; })) {
    silent += kPeriodBytes;
  }
  ASSERT_GE(in_sink.size(), silent + kPeriodBytes);
  EXPECT_EQ(std::vector<uint8_t>(in_sink.begin() + silent, in_sink.begin() + silent + kPeriodBytes),
            played);
  // Capture: one whole period of the source (the first, unless some went by before the buffer
  // was there), then the status.
  const std::vector<uint8_t> rx = Wait(device.get(), 3, rx_out, rx_bytes);
  ASSERT_EQ(rx.size(), rx_bytes);
  bool found = false;
  for (uint32_t k = 0; k < kSourcePeriods && !found; ++k) {
    found = std::equal(rx.begin(), rx.begin() + kPeriodBytes, recorded.begin() + k * kPeriodBytes);
  }
  EXPECT_TRUE(found) << "the capture buffer holds no period of the source";
  EXPECT_EQ(Status(rx, kPeriodBytes), VIRTIO_SND_S_OK);
  EXPECT_TRUE(session->daemon()->IsAlive());
}

// A queue stopping (GET_VRING_BASE, as QEMU stops a VM) while the device holds buffers for a
// prepared stream: the reply comes, every buffer the device took is completed first, and the
// stream carries on with the restarted queue.
TEST(SndDaemonTest, QueueStopCompletesHeldBuffers) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DaemonSession> session, DaemonSession::Create("snd"));
  ASSERT_OK(session->Start(RunfilePath("vhost-user-snd/vhost-user-snd"),
                           {"--socket-path=" + session->socket()}));
  DeviceOptions options;
  options.features = Bit(kFeatureVersion1);
  options.required_features = options.features;
  options.ram_size = 4 << 20;
  options.queue_sizes = {64, 64, 64, 64};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DeviceConnection> device, session->Open(options));
  constexpr uint32_t kPeriodBytes = 480 * 4;
  SetParamsAndPrepare(device.get(), 0, kPeriodBytes);
  // Two buffers held (the stream is not started), then a bad one answered at once: once it is,
  // the device has taken the two before it.
  std::vector<uint8_t> tx = Bytes(virtio_snd_pcm_xfer{0});
  tx.resize(tx.size() + kPeriodBytes, 1);
  uint8_t* held[2];
  for (uint8_t*& status : held) {
    status = Send(device.get(), 2, tx, sizeof(virtio_snd_pcm_status));
    ASSERT_NE(status, nullptr);
    std::memset(status, 0xff, sizeof(virtio_snd_pcm_status));
  }
  std::vector<uint8_t> partial = tx;
  partial.pop_back();  // not a whole frame
  EXPECT_EQ(Status(Transact(device.get(), 2, partial, sizeof(virtio_snd_pcm_status))),
            VIRTIO_SND_S_BAD_MSG);
  ASSERT_OK_AND_ASSIGN(uint32_t base, device->RestartQueue(2));
  EXPECT_EQ(base, 3u);
  for (uint8_t* status : held) EXPECT_EQ(Status({status, status + 4}), VIRTIO_SND_S_OK);
  // The restarted queue serves the stream.
  EXPECT_EQ(Status(Transact(device.get(), 2, partial, sizeof(virtio_snd_pcm_status))),
            VIRTIO_SND_S_BAD_MSG);
  EXPECT_TRUE(session->daemon()->IsAlive());
}

// --controls: the feature and the controls count are offered; a buffer played muted reaches the
// WAV sink as silence, one played at volume 50 with half its amplitude.
TEST(SndDaemonTest, ControlsMuteAndScaleWhatReachesTheSink) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DaemonSession> session, DaemonSession::Create("snd"));
  const std::string sink = session->File("sink.wav");
  ASSERT_OK(session->Start(RunfilePath("vhost-user-snd/vhost-user-snd"),
                           {"--socket-path=" + session->socket(), "--backend=file",
                            "--playback-file=" + sink, "--controls"}));
  DeviceOptions options;
  options.features = Bit(kFeatureVersion1) | Bit(snd::kSndFCtls);
  options.required_features = options.features;
  options.ram_size = 4 << 20;
  options.queue_sizes = {64, 64, 64, 64};
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DeviceConnection> device, session->Open(options));
  EXPECT_TRUE(device->acked_features() & Bit(snd::kSndFCtls));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes,
                       device->frontend()->GetConfig(0, sizeof(snd::SndConfigCtls)));
  snd::SndConfigCtls config;
  ASSERT_EQ(bytes.size(), sizeof(config));
  std::memcpy(&config, bytes.data(), sizeof(config));
  EXPECT_EQ(config.controls, 4u);  // a volume and a switch for each default stream

  auto write = [&](uint32_t id, uint32_t value) {
    struct {
      snd::SndCtlHdr hdr;
      snd::SndCtlValue value;
    } request = {};
    request.hdr = {{snd::kSndRCtlWrite}, id};
    request.value.value.integer[0] = value;
    return Status(Transact(device.get(), 0, Bytes(request), 4));
  };
  constexpr uint32_t kPeriodBytes = 480 * 4;  // 10 ms of 48 kHz stereo s16
  SetParamsAndPrepare(device.get(), 0, kPeriodBytes);
  const virtio_snd_pcm_hdr start{{VIRTIO_SND_R_PCM_START}, 0};
  EXPECT_EQ(Status(Transact(device.get(), 0, Bytes(start), 4)), VIRTIO_SND_S_OK);

  // A period of 8000 on every sample.
  std::vector<uint8_t> tx = Bytes(virtio_snd_pcm_xfer{0});
  for (uint32_t i = 0; i < kPeriodBytes / 2; ++i) {
    const std::vector<uint8_t> sample = Bytes(int16_t{8000});
    tx.insert(tx.end(), sample.begin(), sample.end());
  }
  // Muted: it completes once written to the sink, as silence.
  ASSERT_EQ(write(1, 0), VIRTIO_SND_S_OK);
  EXPECT_EQ(Status(Transact(device.get(), 2, tx, sizeof(virtio_snd_pcm_status))), VIRTIO_SND_S_OK);
  // Sound on again at volume 50: half the amplitude.
  ASSERT_EQ(write(0, 50), VIRTIO_SND_S_OK);
  ASSERT_EQ(write(1, 1), VIRTIO_SND_S_OK);
  EXPECT_EQ(Status(Transact(device.get(), 2, tx, sizeof(virtio_snd_pcm_status))), VIRTIO_SND_S_OK);
  // Out of range, refused.
  EXPECT_EQ(write(0, 101), VIRTIO_SND_S_BAD_MSG);

  // The sink: silence (the muted buffer, and periods the guest was late for), then the halved
  // buffer, then maybe more silence; nothing at full amplitude.
  ASSERT_OK_AND_ASSIGN(snd::WavReader reader, snd::WavReader::Open(sink));
  std::vector<uint8_t> in_sink(reader.frames() * 4);
  ASSERT_OK(reader.Read(absl::MakeSpan(in_sink)));
  ASSERT_EQ(in_sink.size() % kPeriodBytes, 0u);
  std::vector<uint8_t> half;
  for (uint32_t i = 0; i < kPeriodBytes / 2; ++i) {
    const std::vector<uint8_t> sample = Bytes(int16_t{4000});
    half.insert(half.end(), sample.begin(), sample.end());
  }
  int loud = 0;
  for (size_t at = 0; at < in_sink.size(); at += kPeriodBytes) {
    const std::vector<uint8_t> period(in_sink.begin() + at, in_sink.begin() + at + kPeriodBytes);
    if (std::all_of(period.begin(), period.end(), [](uint8_t b) { return b == 0; })) continue;
    EXPECT_EQ(period, half) << "period at byte " << at;
    ++loud;
  }
  EXPECT_EQ(loud, 1);
  EXPECT_GE(in_sink.size(), 2 * kPeriodBytes);  // the muted buffer took a period too
  EXPECT_TRUE(session->daemon()->IsAlive());
}

// --control-socket: a jack unplugged and plugged back reaches the driver as a
// JACK_DISCONNECTED and a JACK_CONNECTED event, and JACK_INFO agrees; bad lines get an error
// reply and change nothing.
TEST(SndDaemonTest, JackEventsFromTheControlSocket) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DaemonSession> session, DaemonSession::Create("snd"));
  const std::string control = session->File("control.sock");
  ASSERT_OK(session->Start(RunfilePath("vhost-user-snd/vhost-user-snd"),
                           {"--socket-path=" + session->socket(), "--control-socket=" + control}));
  frontend::SndDriver::Options options;
  options.timeout = kTimeout;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<frontend::SndDriver> driver,
                       frontend::SndDriver::Start(session->socket(), options));
  ASSERT_OK_AND_ASSIGN(std::vector<virtio_snd_jack_info> jacks, driver->JackInfo(0, 2));
  EXPECT_EQ(jacks[0].connected, 1);
  EXPECT_EQ(jacks[1].connected, 1);

  ASSERT_OK_AND_ASSIGN(std::string replies,
                       frontend::SendControlCommands(
                           control, "jack 0 unplug\nfrob\njack 7 plug\njack 1 yank\nlist\n"));
  const std::vector<std::string> lines = absl::StrSplit(replies, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 5u) << replies;
  EXPECT_EQ(lines[0], "ok jack 0 unplugged");
  for (int i : {1, 2, 3}) EXPECT_EQ(lines[i].rfind("error: ", 0), 0u) << lines[i];
  EXPECT_EQ(lines[4], "ok jack 0 out unplugged; jack 1 in plugged");
  ASSERT_OK_AND_ASSIGN(virtio_snd_event event, driver->WaitForEvent(kTimeout));
  EXPECT_EQ(event.hdr.code, VIRTIO_SND_EVT_JACK_DISCONNECTED);
  EXPECT_EQ(event.data, 0u);
  ASSERT_OK_AND_ASSIGN(jacks, driver->JackInfo(0, 2));
  EXPECT_EQ(jacks[0].connected, 0);
  EXPECT_EQ(jacks[1].connected, 1);

  ASSERT_OK_AND_ASSIGN(replies, frontend::SendControlCommands(control, "jack 0 plug\n"));
  EXPECT_EQ(replies, "ok jack 0 plugged\n");
  ASSERT_OK_AND_ASSIGN(event, driver->WaitForEvent(kTimeout));
  EXPECT_EQ(event.hdr.code, VIRTIO_SND_EVT_JACK_CONNECTED);
  EXPECT_EQ(event.data, 0u);
  ASSERT_OK_AND_ASSIGN(jacks, driver->JackInfo(0, 1));
  EXPECT_EQ(jacks[0].connected, 1);
  ASSERT_OK_AND_ASSIGN(absl::optional<virtio_snd_event> more, driver->PollEvent());
  EXPECT_FALSE(more.has_value());  // one event per change
  EXPECT_TRUE(session->daemon()->IsAlive());
}

// --controls and --control-socket: a control the host sets reaches the driver as a CTL_NOTIFY
// event (the control's id, the VALUE mask) and CTL_READ returns the new value.
TEST(SndDaemonTest, ControlSetFromTheControlSocketIsNotified) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DaemonSession> session, DaemonSession::Create("snd"));
  const std::string control = session->File("control.sock");
  ASSERT_OK(session->Start(
      RunfilePath("vhost-user-snd/vhost-user-snd"),
      {"--socket-path=" + session->socket(), "--controls", "--control-socket=" + control}));
  frontend::SndDriver::Options options;
  options.timeout = kTimeout;
  options.features |= Bit(frontend::kSndFeatureCtls);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<frontend::SndDriver> driver,
                       frontend::SndDriver::Start(session->socket(), options));
  ASSERT_OK_AND_ASSIGN(std::string replies,
                       frontend::SendControlCommands(control, "control 0 30\ncontrol 0 101\n"));
  const std::vector<std::string> lines = absl::StrSplit(replies, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << replies;
  EXPECT_EQ(lines[0], "ok control 0 30");
  EXPECT_EQ(lines[1].rfind("error: ", 0), 0u) << lines[1];
  ASSERT_OK_AND_ASSIGN(virtio_snd_event event, driver->WaitForEvent(kTimeout));
  snd::SndCtlEvent notify;
  std::memcpy(&notify, &event, sizeof(notify));
  EXPECT_EQ(notify.hdr.code, snd::kSndEvtCtlNotify);
  EXPECT_EQ(notify.control_id, 0u);
  EXPECT_EQ(notify.mask, 1u << snd::kSndCtlEvtMaskValue);
  const snd::SndCtlHdr read = {{snd::kSndRCtlRead}, 0};
  ASSERT_OK_AND_ASSIGN(frontend::SndReply reply, driver->Control(read, sizeof(snd::SndCtlValue)));
  EXPECT_EQ(reply.status, VIRTIO_SND_S_OK);
  uint32_t value = 0;
  ASSERT_GE(reply.payload.size(), sizeof(value));
  std::memcpy(&value, reply.payload.data(), sizeof(value));
  EXPECT_EQ(value, 30u);
  ASSERT_OK_AND_ASSIGN(absl::optional<virtio_snd_event> more, driver->PollEvent());
  EXPECT_FALSE(more.has_value());  // the refused line sent nothing
  EXPECT_TRUE(session->daemon()->IsAlive());
}

}  // namespace
}  // namespace vhost
