// Fuzzes vhost-user-scmi's device with what a hostile guest controls: the input becomes a
// stream of SCMI commands on the command queue (any protocol, message id, type and parameter
// words, over one or two descriptors, with any reply room), event queue buffers of any size,
// runs of the event queue, host-side control commands (sensor values, system power requests)
// and device resets. A reply longer than its buffer, a used id the driver never queued, or a
// reply whose header is not the command's aborts.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/test_queue.h"
#include "common/virtio/features.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_input.h"
#include "vhost-user-scmi/scmi_device.h"

namespace vhost::scmi {
namespace {

using testing::FakeGuestMemory;
using testing::TestQueue;
using testing::UsedElement;

constexpr uint32_t kQueueSize = 64;
constexpr uint32_t kEventSlot = 256;

void Check(bool ok) {
  if (!ok) std::abort();
}

struct Harness {
  FakeGuestMemory ram{4 << 20};
  std::unique_ptr<ScmiDevice> device;
  std::unique_ptr<TestQueue> queues[2];
  uint64_t request = ram.Allocate(4096);
  uint64_t reply = ram.Allocate(4096);
  uint64_t events = ram.Allocate(kQueueSize * kEventSlot);
  uint32_t next_event = 0;
  std::vector<uint32_t> event_room = std::vector<uint32_t>(kQueueSize, 0);
  std::vector<bool> event_posted = std::vector<bool>(kQueueSize, false);

  void Start() {
    for (int i = 0; i < 2; ++i) {
      TestQueue::Options options;
      options.index = i;
      options.size = kQueueSize;
      queues[i] = *TestQueue::Create(&ram, options);
      Check(queues[i]->Start(*device).ok());
    }
    event_posted.assign(kQueueSize, false);
  }
  void Stop() {
    for (auto& q : queues) {
      q->Stop(*device);
      q.reset();
    }
  }
  void ReapEvents() {
    for (const UsedElement& used : queues[1]->Used()) {
      Check(used.id < kQueueSize && event_posted[used.id]);
      Check(used.len <= event_room[used.id]);
      event_posted[used.id] = false;
    }
  }

  void Command(FuzzInput& in) {
    const uint8_t pick = in.Take<uint8_t>();
    uint32_t header = 0;
    const uint8_t protocol = pick % 10 < 8 ? 0x10 + pick % 10 : in.Take<uint8_t>();
    header |= in.Take<uint8_t>() % 18;                           // message id
    header |= (pick >= 0xf0 ? in.Take<uint8_t>() % 4 : 0) << 8;  // type: rarely not a command
    header |= uint32_t{protocol} << 10 | (in.Take<uint16_t>() & 0x3ff) << 18;
    std::vector<uint32_t> words = {header};
    const int n = in.Take<uint8_t>() % 6;
    for (int i = 0; i < n; ++i) {
      const uint8_t kind = in.Take<uint8_t>();
      words.push_back(kind & 0x80 ? in.Take<uint32_t>() : kind % 8);
    }
    uint32_t len = static_cast<uint32_t>(words.size() * 4);
    const uint8_t cut = in.Take<uint8_t>();
    if (cut >= 0xf0) len = cut % (len + 1);  // a partial word or header
    std::memcpy(ram.Host(request, words.size() * 4), words.data(), words.size() * 4);
    const uint8_t room_pick = in.Take<uint8_t>();
    const uint32_t room = room_pick < 0xc0 ? 136 : room_pick % 160;
    std::vector<testing::Buffer> readable, writable;
    if (len > 4 && (room_pick & 1)) {
      readable = {{request, 3}, {request + 3, len - 3}};
    } else if (len > 0) {
      readable = {{request, len}};
    }
    if (room > 8 && (room_pick & 2)) {
      writable = {{reply, 8}, {reply + 2048, room - 8}};
    } else if (room > 0) {
      writable = {{reply, room}};
    }
    std::memset(ram.Host(reply, 4096), 0xee, 4096);
    if (!queues[0]->Add(readable, writable).ok()) return;
    queues[0]->Run(*device);
    for (const UsedElement& used : queues[0]->Used()) {
      Check(used.len <= room);
      if (used.len >= 4 && len >= 4) {
        uint32_t echoed;
        std::memcpy(&echoed, ram.Host(reply, 4), 4);
        Check(echoed == header);
      }
    }
  }

  void PostEvent(FuzzInput& in) {
    const uint32_t room = in.Take<uint8_t>() % (kEventSlot / 2 + 40);
    const uint64_t gpa = events + (next_event++ % kQueueSize) * kEventSlot;
    std::vector<testing::Buffer> writable;
    if (room > 0) writable = {{gpa, room}};
    absl::StatusOr<uint16_t> id = queues[1]->Add({}, writable);
    if (!id.ok()) return;
    Check(*id < kQueueSize && !event_posted[*id]);
    event_posted[*id] = true;
    event_room[*id] = room;
  }

  void Host(FuzzInput& in) {
    const uint8_t pick = in.Take<uint8_t>();
    const int32_t v = in.Take<int16_t>();
    std::string command;
    switch (pick % 6) {
      case 0:
        command = absl::StrCat("sensor accel ", v, ",", -v, ",", v / 2);
        break;
      case 1:
        command = absl::StrCat("sensor soc_temp ", v);
        break;
      case 2:
        command = pick & 0x80 ? "request shutdown" : "request reboot";
        break;
      case 3:
        command = absl::StrCat("clock cpu_clk ", v & 1 ? "on" : "off");
        break;
      case 4:
        command = "list";
        break;
      default:
        command = absl::StrCat("sensor board_temp ", v);
    }
    (void)device->platform().Execute(command);  // errors are fine
  }
};

}  // namespace
}  // namespace vhost::scmi

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vhost::scmi;
  static bool init = [] {
    FLAGS_minloglevel = 2;  // the device logs every bad command
    return true;
  }();
  (void)init;
  vhost::FuzzInput in(data, size);
  Harness h;
  h.device = std::make_unique<ScmiDevice>(*ScmiPlatform::Parse(kDefaultPlatform));
  const bool p2a = in.Take<uint8_t>() & 1;
  Check(h.device
            ->SetFeatures(vhost::Bit(vhost::kFeatureVersion1) |
                          (p2a ? vhost::Bit(kFeatureP2aChannels) : 0))
            .ok());
  h.Start();
  for (int step = 0; step < 256 && in.remaining() > 0; ++step) {
    switch (in.Take<uint8_t>() % 8) {
      case 0:
      case 1:
      case 2:
      case 3:
        h.Command(in);
        break;
      case 4:
        h.PostEvent(in);
        break;
      case 5:
        h.queues[1]->Run(*h.device);
        h.ReapEvents();
        break;
      case 6:
        h.Host(in);
        break;
      case 7:
        h.Stop();
        h.device->Reset();
        h.Start();
        break;
    }
  }
  h.queues[1]->Run(*h.device);
  h.Stop();
  return 0;
}
