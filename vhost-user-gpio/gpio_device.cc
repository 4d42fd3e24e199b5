#include "vhost-user-gpio/gpio_device.h"

#include <linux/virtio_gpio.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/virtio/chain_cursor.h"
#include "common/virtio/features.h"
#include "glog/logging.h"

namespace vhost {
namespace {

std::string NamesBlock(const GpioChip& chip) {
  std::string block;
  bool any = false;
  for (uint16_t i = 0; i < chip.num_lines(); ++i) {
    const std::string name = chip.line_name(i);
    any |= !name.empty();
    block += name;
    block.push_back('\0');
  }
  return any ? block : std::string();
}

bool ValidIrqType(uint32_t type) {
  switch (type) {
    case VIRTIO_GPIO_IRQ_TYPE_NONE:
    case VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING:
    case VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING:
    case VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH:
    case VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH:
    case VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW:
      return true;
  }
  return false;
}

bool IsLevel(uint8_t type) {
  return type & (VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH | VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW);
}

// Whether an edge to `level` fires an edge-triggered interrupt of `type`.
bool EdgeFires(uint8_t type, bool level) {
  return level ? (type & VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING)
               : (type & VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING);
}

}  // namespace

GpioDevice::GpioDevice(std::unique_ptr<GpioChip> chip)
    : chip_(std::move(chip)), names_(NamesBlock(*chip_)), lines_(chip_->num_lines()) {}

DeviceInfo GpioDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdGpio;
  info.num_queues = 2;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1) | Bit(VIRTIO_GPIO_F_IRQ);
  info.config_size = sizeof(virtio_gpio_config);
  // Requests (directions, values, interrupt types) can run again after a crash: each sets a
  // state, and the guest never had their answer. The event queue's buffers wait for interrupts
  // a new daemon cannot know of; untracked, they are taken again from the used index.
  info.resubmit_queues = uint64_t{1} << kGpioRequestQueue;
  return info;
}

absl::Status GpioDevice::SetFeatures(uint64_t features) {
  irq_negotiated_ = features & Bit(VIRTIO_GPIO_F_IRQ);
  return absl::OkStatus();
}

absl::Status GpioDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  virtio_gpio_config config{};
  config.ngpio = chip_->num_lines();
  config.gpio_names_size = static_cast<uint32_t>(names_.size());
  return ReadConfigBytes(config, offset, data);
}

absl::Status GpioDevice::QueueStarted(QueueContext& context) {
  if (context.index() != kGpioEventQueue) return absl::OkStatus();
  if (absl::Status s = context.Watch(chip_->event_fd()); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  event_queue_ = &context;
  return absl::OkStatus();
}

QueueResult GpioDevice::ProcessQueue(QueueContext& context) {
  if (context.index() == kGpioRequestQueue) {
    while (absl::optional<ChainToken> token = context.Take()) {
      context.Complete(*token, HandleRequest(context.chain(*token)));
    }
    return QueueResult::Drained();
  }
  TakeChipEvents(context);
  TakeNewBuffers(context);
  CompleteHeldBuffers(context);
  // Every buffer is taken: the held ones wait for interrupts (the chip's fd, or a request's
  // Wake), not for the worker.
  return QueueResult::Drained();
}

// ---- request queue

uint32_t GpioDevice::HandleRequest(const DescriptorChain& chain) {
  virtio_gpio_request request{};
  uint8_t status = VIRTIO_GPIO_STATUS_ERR;
  uint8_t value = 0;
  ChainReader reader(chain);
  const bool whole = reader.Read(&request) && reader.remaining() == 0;
  const bool names = whole && request.type == VIRTIO_GPIO_MSG_GET_NAMES;
  const uint64_t response_size = names ? 1 + names_.size() : sizeof(virtio_gpio_response);
  if (chain.writable_bytes < 1) {
    LOG_EVERY_N(WARNING, 100) << "gpio request without a response buffer; returned empty";
    return 0;
  }
  if (!whole || chain.writable_bytes < response_size) {
    LOG_EVERY_N(WARNING, 100) << "gpio request of " << chain.readable_bytes << " bytes with a "
                              << chain.writable_bytes << "-byte response buffer: ERR";
  } else if (names) {
    if (names_.empty()) {
      LOG_EVERY_N(WARNING, 100) << "GET_NAMES on a chip without names: ERR";
    } else {
      status = VIRTIO_GPIO_STATUS_OK;
    }
  } else {
    absl::StatusOr<uint8_t> result = Execute(request.type, request.gpio, request.value);
    if (result.ok()) {
      status = VIRTIO_GPIO_STATUS_OK;
      value = *result;
    } else {
      LOG_EVERY_N(WARNING, 100) << "gpio request " << request.type << " on line " << request.gpio
                                << ": " << result.status().message();
    }
  }
  // The status, then the value or the names (virtio_gpio_response or GET_NAMES' layout); an
  // error to a buffer of one byte carries the status alone.
  ChainWriter writer(chain);
  writer.Write(status);
  if (status == VIRTIO_GPIO_STATUS_OK && names) {
    writer.WriteBytes(
        absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(names_.data()), names_.size()));
  } else {
    writer.Write(value);
  }
  return writer.bytes_written();
}

absl::StatusOr<uint8_t> GpioDevice::Execute(uint16_t type, uint16_t line, uint32_t value) {
  if (line >= chip_->num_lines()) {
    return absl::OutOfRangeError(absl::StrCat("no line ", line));
  }
  switch (type) {
    case VIRTIO_GPIO_MSG_GET_DIRECTION: {
      absl::StatusOr<Direction> direction = chip_->GetDirection(line);
      if (!direction.ok()) return direction.status();
      return static_cast<uint8_t>(*direction);
    }
    case VIRTIO_GPIO_MSG_SET_DIRECTION: {
      if (value > VIRTIO_GPIO_DIRECTION_IN) {
        return absl::InvalidArgumentError(absl::StrCat("bad direction ", value));
      }
      const Direction direction = static_cast<Direction>(value);
      bool initial;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (direction == Direction::kOut && lines_[line].type != VIRTIO_GPIO_IRQ_TYPE_NONE) {
          return absl::FailedPreconditionError("interrupt enabled: the line must stay an input");
        }
        initial = lines_[line].value;
      }
      if (direction == Direction::kNone) {
        // The spec: all state of a line set to NONE is discarded.
        if (absl::Status s = SetIrqType(line, VIRTIO_GPIO_IRQ_TYPE_NONE); !s.ok()) return s;
        std::lock_guard<std::mutex> lock(mu_);
        lines_[line].value = false;  // (SetIrqType cleared the rest)
      }
      if (absl::Status s = chip_->SetDirection(line, direction, initial); !s.ok()) return s;
      return 0;
    }
    case VIRTIO_GPIO_MSG_GET_VALUE: {
      absl::StatusOr<bool> level = chip_->GetValue(line);
      if (!level.ok()) return level.status();
      return *level ? 1 : 0;
    }
    case VIRTIO_GPIO_MSG_SET_VALUE: {
      if (value > 1) return absl::InvalidArgumentError(absl::StrCat("bad value ", value));
      {
        std::lock_guard<std::mutex> lock(mu_);
        lines_[line].value = value;
      }
      absl::StatusOr<Direction> direction = chip_->GetDirection(line);
      if (!direction.ok()) return direction.status();
      // An input keeps the value for when it becomes an output (the spec allows either order).
      if (*direction == Direction::kOut) {
        if (absl::Status s = chip_->SetValue(line, value); !s.ok()) return s;
      }
      return 0;
    }
    case VIRTIO_GPIO_MSG_IRQ_TYPE: {
      if (!irq_negotiated_)
        return absl::FailedPreconditionError("VIRTIO_GPIO_F_IRQ not negotiated");
      if (absl::Status s = SetIrqType(line, value); !s.ok()) return s;
      return 0;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown request type ", type));
}

absl::Status GpioDevice::SetIrqType(uint16_t line, uint32_t type) {
  if (!ValidIrqType(type)) return absl::InvalidArgumentError(absl::StrCat("bad irq type ", type));
  if (type != VIRTIO_GPIO_IRQ_TYPE_NONE) {
    absl::StatusOr<Direction> direction = chip_->GetDirection(line);
    if (!direction.ok()) return direction.status();
    if (*direction != Direction::kIn) {
      return absl::FailedPreconditionError("interrupts need an input line");
    }
  }
  if (absl::Status s = chip_->WatchEdges(line, type != VIRTIO_GPIO_IRQ_TYPE_NONE); !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  lines_[line].type = static_cast<uint8_t>(type);
  lines_[line].latched = false;  // a new trigger type starts afresh; NONE discards
  if (type == VIRTIO_GPIO_IRQ_TYPE_NONE) ++lines_[line].disables;
  // A level may already be active; a disabled line's buffer goes back. (Under mu_: the context
  // stays valid; a stopped event queue looks at every line when it starts again.)
  if (event_queue_ != nullptr) event_queue_->Wake();
  return absl::OkStatus();
}

// ---- event queue

void GpioDevice::TakeChipEvents(QueueContext& context) {
  for (const LineEvent& event : chip_->TakeEvents()) {
    if (event.line >= lines_.size()) continue;
    bool fires = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      LineIrq& irq = lines_[event.line];
      if (irq.type == VIRTIO_GPIO_IRQ_TYPE_NONE) continue;
      if (IsLevel(irq.type)) {
        fires = event.level == ((irq.type & VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH) != 0);
      } else {
        fires = EdgeFires(irq.type, event.level);
        if (fires) irq.latched = true;
      }
    }
    // Delivered in the order the edges came, to the lines that are unmasked; the others keep
    // the latch until their buffer arrives.
    if (fires) CompleteHeldBuffers(context, event.line);
  }
}

void GpioDevice::TakeNewBuffers(QueueContext& context) {
  while (absl::optional<ChainToken> token = context.Take()) {
    const DescriptorChain& chain = context.chain(*token);
    virtio_gpio_irq_request request{};
    ChainReader reader(chain);
    if (!reader.Read(&request) || reader.remaining() != 0 ||
        chain.writable_bytes < sizeof(virtio_gpio_irq_response)) {
      LOG_EVERY_N(WARNING, 100) << "gpio event buffer of " << chain.readable_bytes << "+"
                                << chain.writable_bytes << " bytes: returned INVALID";
      ReturnBuffer(context, *token, VIRTIO_GPIO_IRQ_STATUS_INVALID);
      continue;
    }
    const uint16_t line = request.gpio;
    bool enabled = false;
    uint32_t disables = 0;
    if (line < lines_.size()) {
      std::lock_guard<std::mutex> lock(mu_);
      enabled = lines_[line].type != VIRTIO_GPIO_IRQ_TYPE_NONE;
      disables = lines_[line].disables;
    }
    bool duplicate = false;
    for (const HeldBuffer& held : held_) duplicate |= held.line == line;
    if (line >= lines_.size() || !enabled || duplicate) {
      LOG_EVERY_N(WARNING, 100) << "gpio event buffer for line " << line
                                << (line >= lines_.size() ? ", which does not exist"
                                    : !enabled            ? ", whose interrupt is disabled"
                                                          : ", which already has one")
                                << ": returned INVALID";
      ReturnBuffer(context, *token, VIRTIO_GPIO_IRQ_STATUS_INVALID);
      continue;
    }
    held_.push_back({line, disables, *token});
  }
}

bool GpioDevice::LevelActive(uint16_t line, uint8_t type) {
  absl::StatusOr<bool> level = chip_->GetValue(line);
  if (!level.ok()) return false;
  return *level ? (type & VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH)
                : (type & VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW);
}

void GpioDevice::CompleteHeldBuffers(QueueContext& context, int only_line) {
  for (size_t i = 0; i < held_.size();) {
    const uint16_t line = held_[i].line;
    if (only_line >= 0 && line != only_line) {
      ++i;
      continue;
    }
    uint8_t type;
    bool latched;
    bool disabled;
    {
      std::lock_guard<std::mutex> lock(mu_);
      type = lines_[line].type;
      disabled = type == VIRTIO_GPIO_IRQ_TYPE_NONE || lines_[line].disables != held_[i].disables;
      latched = !disabled && lines_[line].latched;
      if (latched) lines_[line].latched = false;
    }
    int status = -1;
    if (disabled) {
      status = VIRTIO_GPIO_IRQ_STATUS_INVALID;
    } else if (IsLevel(type) ? LevelActive(line, type) : latched) {
      status = VIRTIO_GPIO_IRQ_STATUS_VALID;
    }
    if (status < 0) {
      ++i;
      continue;
    }
    ReturnBuffer(context, held_[i].token, static_cast<uint8_t>(status));
    held_.erase(held_.begin() + i);
  }
}

void GpioDevice::ReturnBuffer(QueueContext& context, ChainToken token, uint8_t status) {
  const virtio_gpio_irq_response response{status};
  ChainWriter writer(context.chain(token));
  writer.Write(response);
  context.Complete(token, writer.bytes_written());
}

void GpioDevice::QueueStopped(QueueContext& context) {
  if (context.index() != kGpioEventQueue) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    event_queue_ = nullptr;
  }
  // The ring position reported to the front end is past the held buffers, so they go back now
  // (as INVALID: the interrupt counts as disabled until the guest unmasks it again) rather than
  // being lost with the position.
  for (const HeldBuffer& held : held_) {
    ReturnBuffer(context, held.token, VIRTIO_GPIO_IRQ_STATUS_INVALID);
  }
  held_.clear();
}

void GpioDevice::Reset() {
  chip_->Reset();
  std::lock_guard<std::mutex> lock(mu_);
  for (LineIrq& line : lines_) line = LineIrq();
}

}  // namespace vhost
