// The soak of issue 14: all seven daemons at once, each under a workload of its own kind driven
// by our front end on a thread of its own, the front end disconnecting every one to three
// seconds (a clean close, a close of the socket with requests in flight, or the whole front end
// vanishing with requests in flight) and reconnecting. Every reply is checked against what was
// sent. After a warm-up (a fifth of the run) and at the end, every workload parks on a fresh
// connection, idle, and the daemons' RSS, open fds and threads are recorded: fds and threads
// must be unchanged and RSS within a slack that a per-reconnect leak would exceed.
//
//   bazel run //tests/soak:soak_test -- --soak_seconds=600   (the 10-minute run of the issue)
#include <dirent.h>
#include <fcntl.h>
#include <linux/input.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_gpio.h>
#include <linux/virtio_i2c.h>
#include <linux/virtio_input.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/base/unique_fd.h"
#include "common/testing/status_matchers.h"
#include "gflags/gflags.h"
#include "gtest/gtest.h"
#include "tests/frontend/blk_request.h"
#include "tests/frontend/control_client.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/fuse_client.h"
#include "tests/frontend/vsock_driver.h"
#include "tests/integration/runfiles.h"

DEFINE_int32(soak_seconds, 60, "How long the workloads run (the issue's soak: 600)");

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::FuseClient;
using frontend::GuestRam;
using frontend::VsockDriver;
using frontend::VsockStream;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// Unless `cond`, fails the workload with the message made of the other arguments.
#define SOAK_CHECK(cond, ...) \
  if (!(cond)) return absl::InternalError(absl::StrCat(__VA_ARGS__))

std::string RandomBytes(std::mt19937& gen, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(gen());
  return s;
}

// ---- The daemon side: what the measurement reads from /proc.

struct Usage {
  long rss_kb = -1;
  int fds = -1;
  int threads = -1;
};

Usage ReadUsage(pid_t pid) {
  Usage u;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) u.rss_kb = std::stol(line.substr(6));
    if (line.rfind("Threads:", 0) == 0) u.threads = std::stoi(line.substr(8));
  }
  if (DIR* dir = opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    u.fds = 0;
    while (dirent* e = readdir(dir)) u.fds += e->d_name[0] != '.';
    closedir(dir);
  }
  return u;
}

// ---- One device's workload. A cycle is Connect, Steps, then one of the three closes.

enum class Close { kClean, kAbrupt, kVanish };

class Workload {
 public:
  explicit Workload(std::string name) : name_(std::move(name)) {}
  virtual ~Workload() = default;
  const std::string& name() const { return name_; }
  DaemonSession* session() { return session_.get(); }

  virtual absl::Status StartDaemon() = 0;
  virtual absl::Status Connect() = 0;
  // One round of requests, every reply checked; leaves nothing in flight.
  virtual absl::Status Step() = 0;
  // What a parked workload did on its fresh connection: the same each time, so that the two
  // measurements find the daemon in the same state.
  virtual absl::Status Probe() { return Step(); }
  // Queues requests (and, where the device holds buffers, buffers for it to hold) without
  // waiting for them: the next close finds them in flight.
  virtual absl::Status StartInFlight() = 0;
  // kClean: stops every queue (GET_VRING_BASE) first. kAbrupt: closes the vhost-user socket
  // with the rest (RAM, eventfds) still held, then lets go. kVanish: lets go of everything at
  // once, as a front end process that dies.
  virtual absl::Status Disconnect(Close how) = 0;

  std::atomic<int64_t> operations{0};
  std::atomic<int64_t> reconnects{0};

 protected:
  // The DeviceConnection-based workloads' closes.
  static absl::Status CloseDevice(std::unique_ptr<DeviceConnection>& device, Close how) {
    if (how == Close::kClean) {
      for (size_t i = 0; i < device->num_queues(); ++i) {
        RETURN_IF_ERROR(device->queue(i)->Stop(device->frontend()).status());
      }
    } else if (how == Close::kAbrupt) {
      device->frontend()->Close();
    }
    device.reset();
    return absl::OkStatus();
  }

  // Starts vhost-user-<device> with `args`, "$DIR" in them naming the session's directory.
  absl::Status Start(const std::string& device, std::vector<std::string> args) {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create(name_));
    for (std::string& arg : args) arg = absl::StrReplaceAll(arg, {{"$DIR", session_->dir()}});
    return session_->Start(RunfilePath(absl::StrCat("vhost-user-", device, "/vhost-user-", device)),
                           args);
  }

  std::string name_;
  std::unique_ptr<DaemonSession> session_;
  std::mt19937 gen_{std::hash<std::string>()(name_)};
};

// rng: batches of entropy requests of random sizes into zeroed buffers.
class RngWorkload : public Workload {
 public:
  RngWorkload() : Workload("rng") {}
  absl::Status StartDaemon() override {
    return Start("rng", {"--socket-path=$DIR/sock", "--packed-ring"});
  }
  absl::Status Connect() override {
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx);
    options.queue_sizes = {64};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    buffers_.clear();
    for (int i = 0; i < kBatch; ++i) {
      uint8_t* host;
      ASSIGN_OR_RETURN(const uint64_t gpa, device_->ram()->Allocate(kMax, 64, &host));
      buffers_.push_back({gpa, host});
    }
    return absl::OkStatus();
  }
  absl::Status Submit(std::map<uint16_t, std::pair<int, uint32_t>>* pending) {
    for (int i = 0; i < kBatch; ++i) {
      const uint32_t len = 1 + gen_() % kMax;
      std::memset(buffers_[i].second, 0, kMax);
      ASSIGN_OR_RETURN(const uint16_t head,
                       device_->queue()->ring().AddChain({}, {{buffers_[i].first, len}}));
      (*pending)[head] = {i, len};
    }
    return device_->queue()->Submit().status();
  }
  absl::Status Step() override {
    std::map<uint16_t, std::pair<int, uint32_t>> pending;
    RETURN_IF_ERROR(Submit(&pending));
    std::set<std::string> seen;
    for (int i = 0; i < kBatch; ++i) {
      ASSIGN_OR_RETURN(const UsedElement used, device_->queue()->WaitForUsed(kTimeout));
      SOAK_CHECK(pending.count(used.id), "rng: unknown used id ", used.id);
      const auto [index, len] = pending[used.id];
      pending.erase(used.id);
      SOAK_CHECK(used.len == len, "rng: ", used.len, " bytes for a request of ", len);
      if (len >= 32) {  // 32 random bytes all zero, or equal to another request's: not entropy
        const std::string head(reinterpret_cast<char*>(buffers_[index].second), 32);
        SOAK_CHECK(head != std::string(32, '\0'), "rng: buffer left zero");
        SOAK_CHECK(seen.insert(head).second, "rng: two requests got the same bytes");
      }
    }
    operations += kBatch;
    return absl::OkStatus();
  }
  absl::Status StartInFlight() override {
    std::map<uint16_t, std::pair<int, uint32_t>> pending;
    return Submit(&pending);
  }
  absl::Status Disconnect(Close how) override { return CloseDevice(device_, how); }

 private:
  static constexpr int kBatch = 8;
  static constexpr uint32_t kMax = 4096;
  std::unique_ptr<DeviceConnection> device_;
  std::vector<std::pair<uint64_t, uint8_t*>> buffers_;
};

// blk: batches of 4 KiB-block writes, reads and a flush on an image file. Every block's content
// is a function of (block, generation) with both in its first bytes; the test knows each
// block's generation, or the two it may have when a write was in flight at a close.
class BlkWorkload : public Workload {
 public:
  BlkWorkload() : Workload("blk"), known_(kBlocks, 0), maybe_(kBlocks) {}
  absl::Status StartDaemon() override {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create(name_));
    const std::string image = session_->File("disk.img");
    UniqueFd fd(open(image.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644));
    SOAK_CHECK(fd && ftruncate(fd.get(), kBlocks * kBlock) == 0, "blk: cannot make the image");
    return session_->Start(RunfilePath("vhost-user-blk/vhost-user-blk"),
                           {"--socket-path=" + session_->socket(), "--blk-file=" + image});
  }
  absl::Status Connect() override {
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(VIRTIO_BLK_F_FLUSH);
    options.required_features = options.features;
    options.queue_sizes = {128};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    requests_.clear();
    for (int i = 0; i < kBatch; ++i) {
      ASSIGN_OR_RETURN(frontend::BlkRequest r,
                       AllocateBlkRequest(device_->ram(), VIRTIO_BLK_T_IN, 0, kBlock));
      requests_.push_back(r);
    }
    ASSIGN_OR_RETURN(flush_, AllocateBlkRequest(device_->ram(), VIRTIO_BLK_T_FLUSH, 0, 0));
    return absl::OkStatus();
  }
  static void Fill(uint8_t* out, uint32_t block, int64_t generation) {
    if (generation == 0) {  // never written: the image's zeroes
      std::memset(out, 0, kBlock);
      return;
    }
    uint64_t x = (uint64_t{block} << 32) ^ static_cast<uint64_t>(generation);
    std::memcpy(out, &block, 4);
    std::memcpy(out + 4, &generation, 8);
    for (uint32_t off = 12; off < kBlock; off += 8) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      std::memcpy(out + off, &x, std::min<uint32_t>(8, kBlock - off));
    }
  }
  // Queues a batch: distinct blocks, each request a read or a write; a flush last.
  absl::Status Submit(bool in_flight) {
    std::set<uint32_t> blocks;
    reads_.clear();
    for (int i = 0; i < kBatch; ++i) {
      uint32_t block;
      do block = gen_() % kBlocks;
      while (!blocks.insert(block).second);
      frontend::BlkRequest& r = requests_[i];
      const bool write = gen_() % 2;
      RewriteBlkRequest(&r, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, block * (kBlock / 512));
      if (write) {
        const int64_t generation = ++generation_;
        Fill(r.data, block, generation);
        if (in_flight) {
          maybe_[block].insert(generation);  // it may or may not land
        } else {
          known_[block] = generation;
          maybe_[block].clear();
        }
      } else {
        std::memset(r.data, 0xee, kBlock);
        reads_[i] = block;
      }
      RETURN_IF_ERROR(AddBlkRequest(&device_->queue()->ring(), r).status());
    }
    RewriteBlkRequest(&flush_, VIRTIO_BLK_T_FLUSH, 0);
    RETURN_IF_ERROR(AddBlkRequest(&device_->queue()->ring(), flush_).status());
    return device_->queue()->Submit().status();
  }
  absl::Status Step() override {
    RETURN_IF_ERROR(Submit(false));
    for (int i = 0; i <= kBatch; ++i) {
      RETURN_IF_ERROR(device_->queue()->WaitForUsed(kTimeout).status());
    }
    SOAK_CHECK(*flush_.status == VIRTIO_BLK_S_OK, "blk: flush status ", int{*flush_.status});
    std::vector<uint8_t> expected(kBlock);
    for (int i = 0; i < kBatch; ++i) {
      SOAK_CHECK(*requests_[i].status == VIRTIO_BLK_S_OK, "blk: status ",
                 int{*requests_[i].status});
      auto read = reads_.find(i);
      if (read == reads_.end()) continue;
      const uint32_t block = read->second;
      int64_t generation;
      std::memcpy(&generation, requests_[i].data + 4, 8);
      if (std::all_of(requests_[i].data, requests_[i].data + kBlock,
                      [](uint8_t b) { return b == 0; })) {
        generation = 0;
      }
      SOAK_CHECK(generation == known_[block] || maybe_[block].count(generation), "blk: block ",
                 block, " has generation ", generation, ", expected ", known_[block], " or one of ",
                 maybe_[block].size(), " written by requests in flight at a close");
      Fill(expected.data(), block, generation);
      SOAK_CHECK(std::memcmp(expected.data(), requests_[i].data, kBlock) == 0, "blk: block ", block,
                 " generation ", generation, " corrupted");
      known_[block] = generation;
      maybe_[block].clear();
    }
    operations += kBatch + 1;
    return absl::OkStatus();
  }
  absl::Status StartInFlight() override { return Submit(true); }
  absl::Status Disconnect(Close how) override { return CloseDevice(device_, how); }

 private:
  static constexpr uint32_t kBlock = 4096;
  static constexpr uint32_t kBlocks = 1024;  // a 4 MiB image
  static constexpr int kBatch = 8;
  std::unique_ptr<DeviceConnection> device_;
  std::vector<frontend::BlkRequest> requests_;
  frontend::BlkRequest flush_;
  std::map<int, uint32_t> reads_;         // request index -> block
  std::vector<int64_t> known_;            // per block: its generation
  std::vector<std::set<int64_t>> maybe_;  // or one of these, written by requests in flight
  int64_t generation_ = 0;
};

// input: key presses injected through the control socket, read from the event queue. Events
// come in the order injected; reports injected before a close with events in flight may be
// lost (delivered to the old ring) but never reordered or altered.
class InputWorkload : public Workload {
 public:
  InputWorkload() : Workload("input") {}
  absl::Status StartDaemon() override {
    return Start("input", {"--socket-path=$DIR/sock", "--virtual-device=keyboard",
                           "--control-socket=$DIR/ctl"});
  }
  absl::Status Connect() override {
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx);
    options.ram_size = 4 << 20;
    options.queue_sizes = {64, 64};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    buffers_.clear();
    for (int i = 0; i < 64; ++i) {
      uint8_t* host;
      ASSIGN_OR_RETURN(const uint64_t gpa,
                       device_->ram()->Allocate(sizeof(virtio_input_event), 8, &host));
      ASSIGN_OR_RETURN(const uint16_t id,
                       device_->queue(0)->ring().AddChain({}, {{gpa, sizeof(virtio_input_event)}}));
      buffers_[id] = {gpa, host};
    }
    return device_->queue(0)->Submit().status();
  }
  absl::Status Press() {
    static constexpr std::pair<const char*, uint16_t> kKeys[] = {
        {"KEY_A", KEY_A}, {"KEY_B", KEY_B}, {"KEY_C", KEY_C}, {"KEY_D", KEY_D},
        {"KEY_E", KEY_E}, {"KEY_F", KEY_F}, {"KEY_G", KEY_G}, {"KEY_H", KEY_H}};
    const auto& [name, code] = kKeys[presses_++ % 8];
    ASSIGN_OR_RETURN(
        const std::string reply,
        frontend::SendControlCommands(session_->File("ctl"), absl::StrCat("press ", name, "\n")));
    SOAK_CHECK(reply == "ok\n", "input: press: ", reply);
    for (uint32_t value : {1u, 0u}) {
      injected_.push_back({EV_KEY, code, value});
      injected_.push_back({EV_SYN, SYN_REPORT, 0});
    }
    return absl::OkStatus();
  }
  absl::Status Step() override {
    RETURN_IF_ERROR(Press());
    while (next_ < injected_.size()) {
      ASSIGN_OR_RETURN(const UsedElement used, device_->queue(0)->WaitForUsed(kTimeout));
      SOAK_CHECK(used.len == sizeof(virtio_input_event), "input: used len ", used.len);
      auto buffer = buffers_.find(used.id);
      SOAK_CHECK(buffer != buffers_.end(), "input: unknown used id ", used.id);
      virtio_input_event e;
      std::memcpy(&e, buffer->second.second, sizeof(e));
      auto same = [&](const virtio_input_event& a) {
        return a.type == e.type && a.code == e.code && a.value == e.value;
      };
      while (next_ < lossy_until_ && !same(injected_[next_])) ++next_;  // lost with a close
      SOAK_CHECK(next_ < injected_.size() && same(injected_[next_]), "input: event ", e.type, "/",
                 e.code, "/", e.value, " out of order or never injected");
      ++next_;
      ++operations;
      const uint64_t gpa = buffer->second.first;
      uint8_t* host = buffer->second.second;
      buffers_.erase(buffer);
      ASSIGN_OR_RETURN(const uint16_t id,
                       device_->queue(0)->ring().AddChain({}, {{gpa, sizeof(virtio_input_event)}}));
      buffers_[id] = {gpa, host};
      RETURN_IF_ERROR(device_->queue(0)->Submit().status());
    }
    return absl::OkStatus();
  }
  absl::Status StartInFlight() override { return Press(); }
  absl::Status Disconnect(Close how) override {
    lossy_until_ = injected_.size();
    return CloseDevice(device_, how);
  }

 private:
  std::unique_ptr<DeviceConnection> device_;
  std::map<uint16_t, std::pair<uint64_t, uint8_t*>> buffers_;  // descriptor id -> gpa, host
  std::vector<virtio_input_event> injected_;
  size_t next_ = 0;         // the next injected event expected
  size_t lossy_until_ = 0;  // events before this one may have been lost with a close
  int presses_ = 0;
};

// gpio: on a simulated chip, an output set by the guest read through the control socket, an
// input set through the control socket read by the guest, and a rising edge delivered as an
// interrupt on a buffer the guest queued.
class GpioWorkload : public Workload {
 public:
  GpioWorkload() : Workload("gpio") {}
  absl::Status StartDaemon() override {
    return Start("gpio", {"--socket-path=$DIR/sock", "--control-socket=$DIR/ctl",
                          "--sim-lines=button@in,led@out,irq0", "--device-list=s3"});
  }
  absl::Status Connect() override {
    DeviceOptions options;
    options.features = Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(VIRTIO_GPIO_F_IRQ);
    options.required_features = options.features;
    options.ram_size = 2 << 20;
    options.queue_sizes = {64, 64};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    GuestRam* ram = device_->ram();
    ASSIGN_OR_RETURN(req_gpa_, ram->Allocate(sizeof(virtio_gpio_request), 64, &req_));
    ASSIGN_OR_RETURN(resp_gpa_, ram->Allocate(2, 64, &resp_));
    ASSIGN_OR_RETURN(irq_req_gpa_, ram->Allocate(2, 64, &irq_req_));
    ASSIGN_OR_RETURN(irq_resp_gpa_, ram->Allocate(1, 64, &irq_resp_));
    return Request(VIRTIO_GPIO_MSG_IRQ_TYPE, kIrq, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING).status();
  }
  absl::Status Queue(uint16_t type, uint16_t line, uint32_t value) {
    const virtio_gpio_request request{type, line, value};
    std::memcpy(req_, &request, sizeof(request));
    resp_[0] = resp_[1] = 0xff;
    RETURN_IF_ERROR(device_->queue(0)
                        ->ring()
                        .AddChain({{req_gpa_, sizeof(request)}}, {{resp_gpa_, 2}})
                        .status());
    return device_->queue(0)->Submit().status();
  }
  absl::StatusOr<uint8_t> Request(uint16_t type, uint16_t line, uint32_t value) {
    RETURN_IF_ERROR(Queue(type, line, value));
    ASSIGN_OR_RETURN(const UsedElement used, device_->queue(0)->WaitForUsed(kTimeout));
    SOAK_CHECK(used.len == 2, "gpio: response of ", used.len, " bytes");
    SOAK_CHECK(resp_[0] == VIRTIO_GPIO_STATUS_OK, "gpio: request ", type, " failed");
    ++operations;
    return resp_[1];
  }
  absl::Status Unmask() {
    std::memcpy(irq_req_, &kIrq, 2);
    *irq_resp_ = 0xee;
    RETURN_IF_ERROR(
        device_->queue(1)->ring().AddChain({{irq_req_gpa_, 2}}, {{irq_resp_gpa_, 1}}).status());
    return device_->queue(1)->Submit().status();
  }
  absl::Status Command(const std::string& line, const std::string& expected) {
    ASSIGN_OR_RETURN(const std::string reply,
                     frontend::SendControlCommands(session_->File("ctl"), line + "\n"));
    SOAK_CHECK(reply == expected, "gpio: '", line, "' answered '", reply, "'");
    return absl::OkStatus();
  }
  absl::Status Step() override {
    const int led = gen_() % 2, button = gen_() % 2;
    RETURN_IF_ERROR(Request(VIRTIO_GPIO_MSG_SET_VALUE, kLed, led).status());
    RETURN_IF_ERROR(Command("get led", absl::StrCat("ok out ", led, "\n")));
    RETURN_IF_ERROR(Command(absl::StrCat("set button ", button), "ok\n"));
    ASSIGN_OR_RETURN(const uint8_t read, Request(VIRTIO_GPIO_MSG_GET_VALUE, kButton, 0));
    SOAK_CHECK(read == button, "gpio: button reads ", int{read}, ", set to ", button);
    RETURN_IF_ERROR(Command("set irq0 0", "ok\n"));
    RETURN_IF_ERROR(Unmask());
    RETURN_IF_ERROR(Command("set irq0 1", "ok\n"));
    ASSIGN_OR_RETURN(const UsedElement used, device_->queue(1)->WaitForUsed(kTimeout));
    SOAK_CHECK(used.len == 1 && *irq_resp_ == VIRTIO_GPIO_IRQ_STATUS_VALID,
               "gpio: interrupt status ", int{*irq_resp_});
    ++operations;
    return absl::OkStatus();
  }
  // An interrupt buffer held by the device and a request queued.
  absl::Status StartInFlight() override {
    RETURN_IF_ERROR(Unmask());
    return Queue(VIRTIO_GPIO_MSG_GET_VALUE, kButton, 0);
  }
  absl::Status Disconnect(Close how) override { return CloseDevice(device_, how); }

 private:
  static constexpr uint16_t kButton = 0, kLed = 1, kIrq = 2;
  std::unique_ptr<DeviceConnection> device_;
  uint64_t req_gpa_, resp_gpa_, irq_req_gpa_, irq_resp_gpa_;
  uint8_t *req_, *resp_, *irq_req_, *irq_resp_;
};

// i2c: on a simulated EEPROM, a write of random bytes at a random offset, then a random read
// (address write + read, FAIL_NEXT-linked) of the same bytes.
class I2cWorkload : public Workload {
 public:
  I2cWorkload() : Workload("i2c") {}
  absl::Status StartDaemon() override {
    return Start("i2c", {"--socket-path=$DIR/sock", "--device-list=sim:0x50"});
  }
  absl::Status Connect() override {
    DeviceOptions options;
    options.features =
        Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST);
    options.required_features = Bit(kFeatureVersion1) | Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST);
    options.ram_size = 2 << 20;
    options.queue_sizes = {64};
    ASSIGN_OR_RETURN(device_, session_->Open(options));
    for (Message& m : messages_) {
      ASSIGN_OR_RETURN(m.header_gpa, device_->ram()->Allocate(8, 8, &m.header));
      ASSIGN_OR_RETURN(m.data_gpa, device_->ram()->Allocate(kLen + 1, 8, &m.data));
      ASSIGN_OR_RETURN(m.status_gpa, device_->ram()->Allocate(1, 8, &m.status));
    }
    return absl::OkStatus();
  }
  struct Message {
    uint64_t header_gpa, data_gpa, status_gpa;
    uint8_t *header, *data, *status;
  };
  // Message i of a transaction of `count`: `len` bytes of data (read into or written from).
  absl::Status Add(int i, int count, bool read, const std::string& data) {
    Message& m = messages_[i];
    virtio_i2c_out_hdr header{};
    header.addr = 0x50 << 1;
    header.flags =
        (read ? VIRTIO_I2C_FLAGS_M_RD : 0) | (i + 1 < count ? VIRTIO_I2C_FLAGS_FAIL_NEXT : 0);
    std::memcpy(m.header, &header, sizeof(header));
    std::memcpy(m.data, data.data(), data.size());
    *m.status = 0xee;
    std::vector<testing::Buffer> readable{{m.header_gpa, 8}}, writable;
    (read ? writable : readable).push_back({m.data_gpa, static_cast<uint32_t>(data.size())});
    writable.push_back({m.status_gpa, 1});
    return device_->queue()->ring().AddChain(readable, writable).status();
  }
  absl::Status Wait(int count) {
    RETURN_IF_ERROR(device_->queue()->Submit().status());
    for (int i = 0; i < count; ++i) {
      RETURN_IF_ERROR(device_->queue()->WaitForUsed(kTimeout).status());
      ++operations;
    }
    for (int i = 0; i < count; ++i) {
      SOAK_CHECK(*messages_[i].status == VIRTIO_I2C_MSG_OK, "i2c: message ", i, " status ",
                 int{*messages_[i].status});
    }
    return absl::OkStatus();
  }
  absl::Status Write() {
    offset_ = gen_() % (256 - kLen);
    written_ = RandomBytes(gen_, kLen);
    return Add(0, 1, false, std::string(1, static_cast<char>(offset_)) + written_);
  }
  absl::Status Step() override {
    RETURN_IF_ERROR(Write());
    RETURN_IF_ERROR(Wait(1));
    RETURN_IF_ERROR(Add(0, 2, false, std::string(1, static_cast<char>(offset_))));
    RETURN_IF_ERROR(Add(1, 2, true, std::string(kLen, '\0')));
    RETURN_IF_ERROR(Wait(2));
    SOAK_CHECK(std::string(reinterpret_cast<char*>(messages_[1].data), kLen) == written_,
               "i2c: EEPROM read back differs from what was written at ", offset_);
    return absl::OkStatus();
  }
  absl::Status StartInFlight() override {
    RETURN_IF_ERROR(Write());
    return device_->queue()->Submit().status();
  }
  absl::Status Disconnect(Close how) override { return CloseDevice(device_, how); }

 private:
  static constexpr size_t kLen = 8;
  std::unique_ptr<DeviceConnection> device_;
  Message messages_[2];
  int offset_ = 0;
  std::string written_;
};

// A host program on the vsock daemon's Unix socket side: echoes every connection back. One
// thread polling them all (connections come and go thousands of times in a soak).
class EchoServer {
 public:
  explicit EchoServer(const std::string& path) : wake_(eventfd(0, EFD_CLOEXEC)) {
    listener_ = UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ok_ = bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          listen(listener_.get(), 64) == 0;
    thread_ = std::thread([this] { Run(); });
  }
  ~EchoServer() {
    eventfd_write(wake_.get(), 1);
    thread_.join();
  }
  bool ok() const { return ok_; }

 private:
  void Run() {
    std::vector<UniqueFd> connections;
    for (;;) {
      std::vector<pollfd> fds = {{wake_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
      for (const UniqueFd& c : connections) fds.push_back({c.get(), POLLIN, 0});
      if (poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents) return;
      std::vector<UniqueFd> open;
      for (size_t i = 2; i < fds.size(); ++i) {
        UniqueFd& c = connections[i - 2];
        if (fds[i].revents && !Echo(c.get())) continue;  // closed
        open.push_back(std::move(c));
      }
      if (fds[1].revents & POLLIN) {
        UniqueFd c(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (c) open.push_back(std::move(c));
      }
      connections = std::move(open);
    }
  }
  // One read echoed back whole; false at the end of the stream or an error.
  static bool Echo(int fd) {
    char buf[65536];
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return false;
    for (ssize_t off = 0; off < n;) {
      const ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL);
      if (w <= 0) return false;
      off += w;
    }
    return true;
  }
  UniqueFd wake_, listener_;
  bool ok_ = false;
  std::thread thread_;
};

// vsock: guest-initiated streams echoed by a host program, and host-initiated streams (the
// CONNECT line), data both ways on each, checked; streams ended by shutdown or by reset.
class VsockWorkload : public Workload {
 public:
  VsockWorkload() : Workload("vsock") {}
  absl::Status StartDaemon() override {
    RETURN_IF_ERROR(
        Start("vsock", {"--socket-path=$DIR/sock", "--uds-path=$DIR/v.sock", "--guest-cid=3"}));
    echo_ = std::make_unique<EchoServer>(session_->File("v.sock_1234"));
    SOAK_CHECK(echo_->ok(), "vsock: echo server");
    return absl::OkStatus();
  }
  absl::Status Connect() override {
    ASSIGN_OR_RETURN(guest_, VsockDriver::Start(session_->socket(), {}));
    guest_->Listen(5000);
    return absl::OkStatus();
  }
  absl::Status End(VsockStream* s, bool reset) {
    if (!reset) {
      RETURN_IF_ERROR(guest_->Shutdown(s, VIRTIO_VSOCK_SHUTDOWN_SEND));
      SOAK_CHECK(guest_->WaitForPeerClose(s), "vsock: the peer did not close");
      return absl::OkStatus();
    }
    return guest_->Reset(s);
  }
  absl::Status GuestToHost(bool reset) {
    ASSIGN_OR_RETURN(VsockStream * s, guest_->Connect(2, 1234));
    const std::string data = RandomBytes(gen_, 1 + gen_() % (64 << 10));
    RETURN_IF_ERROR(guest_->Write(s, data));
    ASSIGN_OR_RETURN(const std::string back, guest_->Read(s, data.size()));
    if (back != data) {
      size_t at = 0;
      while (at < std::min(back.size(), data.size()) && back[at] == data[at]) ++at;
      return absl::InternalError(absl::StrCat("vsock: echo of ", data.size(), " bytes differs at ",
                                              at, " got ", back.size()));
    }
    operations += 2;
    return End(s, reset);
  }
  absl::Status HostToGuest() {
    UniqueFd host(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, session_->File("v.sock").c_str(), sizeof(addr.sun_path) - 1);
    SOAK_CHECK(connect(host.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0,
               "vsock: connect to the daemon's Unix socket");
    timeval tv{10, 0};
    setsockopt(host.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    const std::string line = "CONNECT 5000\n";
    SOAK_CHECK(write(host.get(), line.data(), line.size()) == ssize_t(line.size()), "vsock: write");
    ASSIGN_OR_RETURN(VsockStream * s, guest_->Accept(5000));
    std::string ok;
    for (char c = 0; c != '\n' && read(host.get(), &c, 1) == 1;) ok.push_back(c);
    SOAK_CHECK(ok.rfind("OK ", 0) == 0, "vsock: CONNECT answered '", ok, "'");
    // Within the socket buffers both ways: the test is one thread.
    const std::string down = RandomBytes(gen_, 1 + gen_() % (32 << 10));
    const std::string up = RandomBytes(gen_, 1 + gen_() % (32 << 10));
    SOAK_CHECK(send(host.get(), down.data(), down.size(), MSG_NOSIGNAL) == ssize_t(down.size()),
               "vsock: host send");
    ASSIGN_OR_RETURN(const std::string got, guest_->Read(s, down.size()));
    SOAK_CHECK(got == down, "vsock: host to guest data differs");
    RETURN_IF_ERROR(guest_->Write(s, up));
    std::string host_got(up.size(), '\0');
    for (size_t off = 0; off < up.size();) {
      const ssize_t n = read(host.get(), host_got.data() + off, up.size() - off);
      SOAK_CHECK(n > 0, "vsock: host read");
      off += n;
    }
    SOAK_CHECK(host_got == up, "vsock: guest to host data differs");
    operations += 2;
    host.Reset();  // the host ends it
    SOAK_CHECK(guest_->WaitForPeerClose(s), "vsock: host close not seen");
    return absl::OkStatus();
  }
  absl::Status Step() override { return gen_() % 4 ? GuestToHost(gen_() % 2) : HostToGuest(); }
  // An echo ended by a reset, then a connection to a port no host program listens on: its
  // refusal (RST) comes after the daemon has handled the reset and closed that stream's fd.
  absl::Status Probe() override {
    RETURN_IF_ERROR(GuestToHost(true));
    SOAK_CHECK(!guest_->Connect(2, 4321).ok(), "vsock: connected to a port nobody listens on");
    return absl::OkStatus();
  }
  // A stream with data on its way to the host and back.
  absl::Status StartInFlight() override {
    ASSIGN_OR_RETURN(VsockStream * s, guest_->Connect(2, 1234));
    return guest_->Write(s, RandomBytes(gen_, 32 << 10));
  }
  absl::Status Disconnect(Close how) override {
    if (how == Close::kClean) {
      for (uint32_t i = 0; i < 3; ++i) RETURN_IF_ERROR(guest_->frontend().GetVringBase(i).status());
    } else if (how == Close::kAbrupt) {
      guest_->frontend().Close();
    }
    guest_.reset();
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<EchoServer> echo_;
  std::unique_ptr<VsockDriver> guest_;
};

// fs: FUSE create, write, read, release, lookup, getattr, forget and unlink of a file of random
// bytes. FuseClient sends one request at a time: what a close leaves behind is open handles and
// looked-up nodes the daemon must drop (its fds), not requests on the ring.
class FsWorkload : public Workload {
 public:
  FsWorkload() : Workload("fs") {}
  absl::Status StartDaemon() override {
    ASSIGN_OR_RETURN(session_, DaemonSession::Create(name_));
    shared_ = session_->File("shared");
    SOAK_CHECK(mkdir(shared_.c_str(), 0755) == 0, "fs: mkdir");
    return session_->Start(RunfilePath("vhost-user-fs/vhost-user-fs"),
                           {"--socket-path=" + session_->socket(), "--shared-dir=" + shared_});
  }
  absl::Status Connect() override {
    ASSIGN_OR_RETURN(fs_, FuseClient::Start(session_->socket()));
    return absl::OkStatus();
  }
  absl::Status Step() override {
    const std::string name = absl::StrCat("f", files_++);
    ASSIGN_OR_RETURN(const auto created, fs_->Create(kRoot, name));
    const auto [node, fh] = created;
    const std::string data = RandomBytes(gen_, 1 + gen_() % (128 << 10));
    ASSIGN_OR_RETURN(const uint32_t written, fs_->Write(node, fh, 0, data));
    SOAK_CHECK(written == data.size(), "fs: wrote ", written, " of ", data.size());
    ASSIGN_OR_RETURN(const std::string back, fs_->Read(node, fh, 0, data.size()));
    SOAK_CHECK(back == data, "fs: read back differs");
    RETURN_IF_ERROR(fs_->Release(node, fh));
    ASSIGN_OR_RETURN(const fuse_entry_out entry, fs_->Lookup(kRoot, name));
    SOAK_CHECK(entry.nodeid == node && entry.attr.size == data.size(), "fs: lookup of ", name);
    ASSIGN_OR_RETURN(const fuse_attr attr, fs_->GetAttr(node));
    SOAK_CHECK(attr.size == data.size(), "fs: getattr size ", attr.size);
    RETURN_IF_ERROR(fs_->Forget(node, 2));  // CREATE and LOOKUP
    RETURN_IF_ERROR(fs_->Call(FUSE_UNLINK, kRoot, name + '\0').status());
    SOAK_CHECK(absl::IsNotFound(fs_->Lookup(kRoot, name).status()), "fs: ", name, " not unlinked");
    operations += 9;
    return absl::OkStatus();
  }
  // An open handle and a node looked up, never released or forgotten.
  absl::Status StartInFlight() override {
    const std::string name = absl::StrCat("f", files_++);
    ASSIGN_OR_RETURN(const auto created, fs_->Create(kRoot, name));
    RETURN_IF_ERROR(fs_->Write(created.first, created.second, 0, "left open").status());
    left_.push_back(shared_ + "/" + name);
    return absl::OkStatus();
  }
  absl::Status Disconnect(Close) override {
    fs_.reset();
    for (const std::string& path : left_) unlink(path.c_str());  // the host tidies up
    left_.clear();
    return absl::OkStatus();
  }

 private:
  static constexpr uint64_t kRoot = 1;
  std::string shared_;
  std::unique_ptr<FuseClient> fs_;
  int files_ = 0;
  std::vector<std::string> left_;
};

// ---- The run: every workload on its own thread, parking twice to be measured.

class Conductor {
 public:
  explicit Conductor(int workers) : active_(workers) {}
  // Workers: whether round `round` (0-based) of measurement has been called.
  bool Called(int round) {
    absl::MutexLock lock(&mu_);
    return called_ > round;
  }
  // Workers: parked for round `round`; returns once it is measured.
  void Park(int round) {
    absl::MutexLock lock(&mu_);
    ++parked_;
    while (released_ <= round) released_cv_.Wait(&mu_);
  }
  void Leave() {
    absl::MutexLock lock(&mu_);
    --active_;
  }
  // Main: calls a round and waits until every active worker is parked.
  void Call() {
    absl::MutexLock lock(&mu_);
    ++called_;
    parked_ = 0;
    mu_.Await(absl::Condition(
        +[](Conductor* c) { return c->parked_ >= c->active_; }, this));
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    ++released_;
    released_cv_.SignalAll();
  }

 private:
  absl::Mutex mu_;
  absl::CondVar released_cv_;
  int active_;
  int called_ = 0, parked_ = 0, released_ = 0;
};

// One worker: cycles until round 1 (the end) is called; parks on a fresh connection for rounds
// 0 and 1. Returns the first error.
absl::Status RunWorkload(Workload* w, Conductor* conductor, std::vector<int64_t>* at_park) {
  std::mt19937 gen(std::hash<std::string>()(w->name()) + 1);
  for (int cycle = 0, round = 0;; ++cycle) {
    RETURN_IF_ERROR(w->Connect());
    if (conductor->Called(round)) {
      RETURN_IF_ERROR(w->Probe());
      at_park->push_back(w->reconnects);
      conductor->Park(round);
      if (++round == 2) return w->Disconnect(Close::kClean);
    }
    const absl::Time end = absl::Now() + absl::Milliseconds(1000 + gen() % 2000);
    while (absl::Now() < end && !conductor->Called(round)) RETURN_IF_ERROR(w->Step());
    // Two clean closes in four; one with requests in flight, one of them a vanishing.
    const Close how = cycle % 4 == 1   ? Close::kAbrupt
                      : cycle % 4 == 3 ? Close::kVanish
                                       : Close::kClean;
    if (how != Close::kClean) RETURN_IF_ERROR(w->StartInFlight());
    RETURN_IF_ERROR(w->Disconnect(how));
    ++w->reconnects;
  }
}

// RSS may differ by this much between the two parks. Why not zero: the allocators' caches
// (glibc arenas keep freed chunks; which pages of a freed region stay resident depends on what
// was freed last), and the guest-RAM pages the daemon has touched on its current connection.
// What it must catch: a leak of one buffer per reconnect. The test checks below that
// reconnects after the warm-up times kLeakKb exceeds it, so such a leak cannot hide in it.
constexpr long kRssSlackKb = 512;
constexpr long kLeakKb = 64;  // one request buffer: a vsock packet, a FUSE WRITE's data

TEST(SoakTest, EveryDaemonReconnectingUnderLoadHoldsItsResources) {
  std::vector<std::unique_ptr<Workload>> workloads;
  workloads.push_back(std::make_unique<RngWorkload>());
  workloads.push_back(std::make_unique<BlkWorkload>());
  workloads.push_back(std::make_unique<InputWorkload>());
  workloads.push_back(std::make_unique<GpioWorkload>());
  workloads.push_back(std::make_unique<I2cWorkload>());
  workloads.push_back(std::make_unique<VsockWorkload>());
  workloads.push_back(std::make_unique<FsWorkload>());
  for (auto& w : workloads) ASSERT_OK(w->StartDaemon()) << w->name();

  const size_t n = workloads.size();
  Conductor conductor(n);
  std::vector<absl::Status> results(n);
  std::vector<std::vector<int64_t>> reconnects_at(n), ops_at(n);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      results[i] = RunWorkload(workloads[i].get(), &conductor, &reconnects_at[i]);
      if (!results[i].ok()) conductor.Leave();
    });
  }
  // The schedule, not synchronisation: the workloads run for these spans of wall time.
  const absl::Duration total = absl::Seconds(FLAGS_soak_seconds);
  const absl::Time start = absl::Now();
  std::vector<std::vector<Usage>> usage(2, std::vector<Usage>(n));
  for (int round = 0; round < 2; ++round) {
    absl::SleepFor(start + (round == 0 ? total / 5 : total) - absl::Now());
    conductor.Call();
    for (size_t i = 0; i < n; ++i) {
      usage[round][i] = ReadUsage(workloads[i]->session()->daemon()->pid());
      ops_at[i].push_back(workloads[i]->operations);
    }
    conductor.Release();
  }
  for (std::thread& t : threads) t.join();

  // A Markdown table, as tests/bench/README.md shows it.
  std::string table = absl::StrFormat(
      "soak of %d s, measured after %d s and at the end; RSS slack %d kB\n\n"
      "| daemon | reconnects (measured) | operations | RSS warm | RSS end | fds warm | fds end "
      "| threads warm | threads end |\n|---|---|---|---|---|---|---|---|---|\n",
      FLAGS_soak_seconds, FLAGS_soak_seconds / 5, kRssSlackKb);
  for (size_t i = 0; i < n; ++i) {
    Workload& w = *workloads[i];
    EXPECT_OK(results[i]) << w.name();
    EXPECT_TRUE(w.session()->daemon()->IsAlive()) << w.name() << " died";
    const Usage& warm = usage[0][i];
    const Usage& end = usage[1][i];
    const int64_t measured =
        reconnects_at[i].size() == 2 ? reconnects_at[i][1] - reconnects_at[i][0] : -1;
    table += absl::StrFormat("| %s | %d (%d) | %d | %d kB | %d kB | %d | %d | %d | %d |\n",
                             w.name(), w.reconnects.load(), measured, w.operations.load(),
                             warm.rss_kb, end.rss_kb, warm.fds, end.fds, warm.threads, end.threads);
    if (!results[i].ok()) continue;
    EXPECT_GT(warm.fds, 0) << w.name() << ": /proc unreadable";
    EXPECT_EQ(end.fds, warm.fds) << w.name() << " fds";
    EXPECT_EQ(end.threads, warm.threads) << w.name() << " threads";
    EXPECT_LE(end.rss_kb, warm.rss_kb + kRssSlackKb) << w.name() << " RSS";
    EXPECT_GT(measured * kLeakKb, kRssSlackKb)
        << w.name() << ": " << measured
        << " reconnects between the measurements are too few for the RSS slack to catch a "
           "leak of one buffer per reconnect; run longer";
    EXPECT_GT(ops_at[i][1], ops_at[i][0]) << w.name() << " did no work";
  }
  std::printf("%s", table.c_str());
}

}  // namespace
}  // namespace vhost

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return RUN_ALL_TESTS();
}
