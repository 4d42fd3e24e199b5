// virtio-gpio (virtio 1.2 §5.17): a request queue for line configuration and values, and, with
// VIRTIO_GPIO_F_IRQ, an event queue on which the guest leaves one buffer per line it unmasks
// and the device returns it when that line's interrupt fires.
//
// Interrupt rules (the spec's): an interrupt is delivered only while it is both enabled
// (SET_IRQ_TYPE) and unmasked (a buffer held for the line). Edges seen while masked are latched
// (several coalesce into one, as in an interrupt controller) and delivered when the guest
// unmasks; a level interrupt is delivered whenever the line is at its active level while
// unmasked. Disabling returns the held buffer with status INVALID.
#ifndef VHOST_USER_GPIO_GPIO_DEVICE_H_
#define VHOST_USER_GPIO_GPIO_DEVICE_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/device/device.h"
#include "vhost-user-gpio/gpio_chip.h"

namespace vhost {

constexpr uint32_t kVirtioIdGpio = 41;
constexpr int kGpioRequestQueue = 0;
constexpr int kGpioEventQueue = 1;

class GpioDevice : public VirtioDevice {
 public:
  explicit GpioDevice(std::unique_ptr<GpioChip> chip);

  DeviceInfo Info() const override;
  absl::Status SetFeatures(uint64_t features) override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  absl::Status QueueStarted(QueueContext& context) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  void QueueStopped(QueueContext& context) override;
  void Reset() override;

  GpioChip& chip() { return *chip_; }

 private:
  // What both queue threads share about a line (under mu_).
  struct LineIrq {
    uint8_t type = 0;       // VIRTIO_GPIO_IRQ_TYPE_*
    bool latched = false;   // an edge arrived while masked
    bool value = false;     // SET_VALUE before the line became an output
    uint32_t disables = 0;  // times disabled: a buffer held across one goes back INVALID
  };
  // A guest buffer unmasking a line (event queue thread only); the chain is the context's.
  struct HeldBuffer {
    uint16_t line;
    uint32_t disables;  // LineIrq::disables when the buffer came
    ChainToken token;
  };

  // Request queue. Returns the bytes written into the chain.
  uint32_t HandleRequest(const DescriptorChain& chain);
  // Returns the response's value byte, or an error (status ERR).
  absl::StatusOr<uint8_t> Execute(uint16_t type, uint16_t line, uint32_t value);
  absl::Status SetIrqType(uint16_t line, uint32_t type);

  // Event queue.
  void TakeChipEvents(QueueContext& context);
  void TakeNewBuffers(QueueContext& context);
  // Returns held buffers whose interrupt fired (VALID) or was disabled (INVALID); all lines, or
  // only `only_line`.
  void CompleteHeldBuffers(QueueContext& context, int only_line = -1);
  void ReturnBuffer(QueueContext& context, ChainToken token, uint8_t status);
  bool LevelActive(uint16_t line, uint8_t type);

  const std::unique_ptr<GpioChip> chip_;
  const std::string names_;  // the GET_NAMES block ("" if no line is named)
  bool irq_negotiated_ = false;

  std::mutex mu_;
  std::vector<LineIrq> lines_;
  // The started event queue, woken by requests that change interrupt state; null while it is
  // stopped (its next start looks at every line anyway).
  QueueContext* event_queue_ = nullptr;

  std::vector<HeldBuffer> held_;  // event queue thread only
};

}  // namespace vhost

#endif  // VHOST_USER_GPIO_GPIO_DEVICE_H_
