#include "vhost-user-blk/blk_device.h"

#include <sys/epoll.h>

#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/virtio/chain_cursor.h"
#include "common/virtio/features.h"
#include "glog/logging.h"

namespace vhost {
namespace {

constexpr uint32_t kSerialBytes = VIRTIO_BLK_ID_BYTES;
// The config space up to write_zeroes_may_unmap and its padding (what Linux 6.12 reads).
constexpr uint32_t kConfigSize = offsetof(virtio_blk_config, unused1) + 3;

bool HasBit(uint64_t features, uint32_t bit) { return features & Bit(bit); }

uint32_t Log2(uint32_t v) {
  uint32_t r = 0;
  while (v > 1) {
    v >>= 1;
    ++r;
  }
  return r;
}

}  // namespace

BlkDevice::BlkDevice(std::unique_ptr<Disk> disk, BlkOptions options)
    : disk_(std::move(disk)),
      options_(std::move(options)),
      capacity_sectors_(disk_->size_bytes() / kSectorSize) {
  // Every queue's ring (io_uring's, when the disk uses it) is made here, once, and kept for the
  // device's lifetime: the daemon creates the device before its seccomp filter, which does not
  // allow io_uring_setup (a ring made later could be one without restrictions).
  queues_.resize(options_.num_queues);
  for (auto& state : queues_) {
    state = std::make_unique<QueueState>();
    state->ring = disk_->NewRing(options_.max_queue_size);
    state->io = disk_->NewQueue(*state->ring);
  }
}

DeviceInfo BlkDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdBlock;
  info.num_queues = options_.num_queues;
  info.max_queue_size = options_.max_queue_size;
  info.config_size = kConfigSize;
  // Reads, writes, flushes, discards and write-zeroes can all run twice: the guest does not
  // touch a request's sectors or buffers until it completes.
  info.resubmit_queues = DeviceInfo::kAllQueues;
  // Data reaches guest memory only through completions, which report the bytes written: the
  // engine's dirty log covers them, and the disk itself is shared with the destination.
  info.logs_dirty_pages = true;
  info.features = Bit(kFeatureVersion1) | Bit(VIRTIO_BLK_F_SIZE_MAX) | Bit(VIRTIO_BLK_F_SEG_MAX) |
                  Bit(VIRTIO_BLK_F_BLK_SIZE) | Bit(VIRTIO_BLK_F_TOPOLOGY) |
                  Bit(VIRTIO_BLK_F_FLUSH) | Bit(VIRTIO_BLK_F_CONFIG_WCE) | Bit(VIRTIO_BLK_F_MQ) |
                  Bit(VIRTIO_BLK_F_DISCARD) | Bit(VIRTIO_BLK_F_WRITE_ZEROES);
  if (options_.read_only) info.features |= Bit(VIRTIO_BLK_F_RO);
  return info;
}

absl::Status BlkDevice::SetFeatures(uint64_t features) {
  features_ = features;
  return absl::OkStatus();
}

virtio_blk_config BlkDevice::Config() const {
  virtio_blk_config c{};
  c.capacity = capacity_sectors_.load();
  c.size_max = 1u << 22;
  // Data segments per request: a 256-entry ring less the header and status descriptors (we take
  // up to kMaxChainSegments with indirect descriptors).
  c.seg_max = 254;
  c.blk_size = options_.logical_block_size;
  c.physical_block_exp = Log2(options_.physical_block_size / options_.logical_block_size);
  c.alignment_offset = 0;
  c.min_io_size = 1;
  c.opt_io_size = 0;
  c.wce = writeback_.load() ? 1 : 0;
  c.num_queues = options_.num_queues;
  c.max_discard_sectors = options_.max_discard_sectors;
  c.max_discard_seg = options_.max_discard_segments;
  c.discard_sector_alignment = options_.logical_block_size / kSectorSize;
  c.max_write_zeroes_sectors = options_.max_discard_sectors;
  c.max_write_zeroes_seg = options_.max_discard_segments;
  c.write_zeroes_may_unmap = 1;
  return c;
}

absl::Status BlkDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  return ReadConfigBytes(Config(), offset, data);
}

absl::Status BlkDevice::WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) {
  // Only the write-back flag is writable, and only with CONFIG_WCE (virtio 1.2 §5.2.5).
  if (offset != offsetof(virtio_blk_config, wce) || data.size() != 1 ||
      !HasBit(features_, VIRTIO_BLK_F_CONFIG_WCE)) {
    return absl::PermissionDeniedError(
        absl::StrCat("config bytes ", offset, "..", offset + data.size(), " are read-only"));
  }
  writeback_ = data[0] != 0;
  LOG(INFO) << "guest switched the cache to " << (writeback_ ? "write-back" : "write-through");
  return absl::OkStatus();
}

absl::Status BlkDevice::QueueStarted(QueueContext& context) {
  QueueState& state = *queues_[context.index()];
  state.requests.resize(context.queue().size());
  const int fd = state.ring->event_fd();
  // Edge-triggered: each completion's signal wakes the worker once, and Reap need not read the
  // eventfd (one syscall per batch less). Level-triggered, a signal whose completion an earlier
  // Reap already took would wake the worker in a loop until the next I/O completes.
  return fd >= 0 ? context.Watch(fd, EPOLLIN | EPOLLET) : absl::OkStatus();
}

QueueResult BlkDevice::ProcessQueue(QueueContext& context) {
  QueueState& state = *queues_[context.index()];
  auto done = [&](uint64_t token, int64_t result) { OnIoDone(state, context, token, result); };
  state.ring->Reap(done);
  const size_t slots = state.requests.size();
  bool submitted = false;
  // With every ring entry in flight the guest has nothing left to offer (a chain it offers now
  // breaks the ring's rules): take no more until some complete.
  while (context.in_flight() < slots) {
    const absl::optional<ChainToken> token = context.Take();
    if (!token) break;
    submitted |= Start(state, context, *token);
  }
  if (submitted) state.ring->Commit();
  state.ring->Reap(done);
  // Every slot busy with I/O (each completes through the watched eventfd): take more requests
  // when some complete, without spinning on the chains left in the ring.
  if (context.in_flight() == slots && context.queue().HasAvailable()) {
    return QueueResult::Blocked();
  }
  return QueueResult::Drained();
}

bool BlkDevice::HasCompletions(QueueContext& context) {
  return queues_[context.index()]->ring->HasCompletions();
}

uint8_t BlkDevice::CheckRange(uint64_t sector, uint64_t bytes) const {
  const uint64_t capacity = capacity_sectors_.load();
  const uint32_t block_sectors = options_.logical_block_size / kSectorSize;
  if (bytes % options_.logical_block_size != 0 || sector % block_sectors != 0) {
    return VIRTIO_BLK_S_IOERR;  // misaligned
  }
  if (sector > capacity || bytes / kSectorSize > capacity - sector) return VIRTIO_BLK_S_IOERR;
  return VIRTIO_BLK_S_OK;
}

bool BlkDevice::Start(QueueState& state, QueueContext& context, ChainToken token) {
  Request& s = state.requests[token];
  absl::Status parsed = ParseBlkRequest(context.chain(token), &s.request);
  if (!parsed.ok()) {
    // No status byte to answer in: return the chain untouched.
    LOG_EVERY_N(WARNING, 1000) << "queue " << context.index() << ": " << parsed.message();
    context.Complete(token, 0);
    return false;
  }
  const BlkRequest& r = s.request;
  switch (r.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const bool write = r.type == VIRTIO_BLK_T_OUT;
      const uint8_t status =
          write && options_.read_only ? VIRTIO_BLK_S_IOERR : CheckRange(r.sector, r.data_bytes);
      if (status != VIRTIO_BLK_S_OK || r.data_bytes == 0) {
        Finish(state, context, token, status);
        return false;
      }
      s.expected = r.data_bytes;
      const uint64_t offset = r.sector * kSectorSize;
      const bool queued = write ? state.io->SubmitWrite(r.data, offset, !writeback_, token)
                                : state.io->SubmitRead(r.data, offset, token);
      if (queued) return true;
      Finish(state, context, token, VIRTIO_BLK_S_IOERR);
      return false;
    }
    case VIRTIO_BLK_T_FLUSH:
      s.expected = 0;
      if (state.io->SubmitFlush(token)) return true;
      Finish(state, context, token, VIRTIO_BLK_S_IOERR);
      return false;
    case VIRTIO_BLK_T_GET_ID: {
      char id[kSerialBytes] = {};
      std::memcpy(id, options_.serial.data(), std::min<size_t>(options_.serial.size(), sizeof(id)));
      CopyToSegments(r.data, 0, id, std::min<uint64_t>(r.data_bytes, sizeof(id)));
      Finish(state, context, token, VIRTIO_BLK_S_OK);
      return false;
    }
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
      Finish(state, context, token, DiscardOrWriteZeroes(r));
      return false;
    default:
      Finish(state, context, token, VIRTIO_BLK_S_UNSUPP);
      return false;
  }
}

uint8_t BlkDevice::DiscardOrWriteZeroes(const BlkRequest& r) {
  const bool discard = r.type == VIRTIO_BLK_T_DISCARD;
  if (!HasBit(features_, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES)) {
    return VIRTIO_BLK_S_UNSUPP;
  }
  if (options_.read_only) return VIRTIO_BLK_S_IOERR;
  const uint64_t count = r.data_bytes / sizeof(virtio_blk_discard_write_zeroes);
  if (r.data_bytes % sizeof(virtio_blk_discard_write_zeroes) != 0 || count == 0 ||
      count > options_.max_discard_segments) {
    return VIRTIO_BLK_S_UNSUPP;
  }
  ChainReader segments(r.data);
  virtio_blk_discard_write_zeroes segment;  // copied once out of guest memory
  while (segments.Read(&segment)) {
    const uint32_t allowed_flags = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
    if (segment.flags & ~allowed_flags) return VIRTIO_BLK_S_UNSUPP;
    if (segment.num_sectors > options_.max_discard_sectors) return VIRTIO_BLK_S_IOERR;
    const uint64_t bytes = uint64_t{segment.num_sectors} * kSectorSize;
    if (CheckRange(segment.sector, bytes) != VIRTIO_BLK_S_OK) return VIRTIO_BLK_S_IOERR;
    const uint64_t offset = segment.sector * kSectorSize;
    absl::Status s =
        discard
            ? disk_->Discard(offset, bytes)
            : disk_->WriteZeroes(offset, bytes, segment.flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
    if (!s.ok()) {
      LOG_EVERY_N(ERROR, 100) << (discard ? "discard" : "write zeroes") << " failed: " << s;
      // A backing store that cannot discard still leaves the data intact: not an error.
      if (discard && absl::IsUnimplemented(s)) continue;
      return VIRTIO_BLK_S_IOERR;
    }
  }
  return VIRTIO_BLK_S_OK;
}

void BlkDevice::OnIoDone(QueueState& state, QueueContext& context, uint64_t token, int64_t result) {
  if (token >= state.requests.size()) return;
  const Request& s = state.requests[token];
  uint8_t status = VIRTIO_BLK_S_OK;
  if (result < 0 || static_cast<uint64_t>(result) != s.expected) {
    LOG_EVERY_N(ERROR, 1000) << "queue " << context.index() << ": I/O at sector "
                             << s.request.sector << " returned " << result << " of " << s.expected
                             << " bytes";
    status = VIRTIO_BLK_S_IOERR;
  }
  Finish(state, context, static_cast<ChainToken>(token), status);
}

void BlkDevice::Finish(QueueState& state, QueueContext& context, ChainToken token, uint8_t status) {
  const BlkRequest& r = state.requests[token].request;
  *r.status = status;
  // Bytes written into the writable part: the data read (or the id) and the status byte.
  uint64_t written = 1;
  // A failed read reports its data bytes too: the status byte follows them, and the engine
  // logs (for migration) only the bytes reported written.
  if (r.type == VIRTIO_BLK_T_IN) written += r.data_bytes;
  if (status == VIRTIO_BLK_S_OK) {
    if (r.type == VIRTIO_BLK_T_GET_ID) written += std::min<uint64_t>(r.data_bytes, kSerialBytes);
  }
  // On the worker (or, stopping, the connection) thread: pushed to the ring at once.
  context.Complete(token, written);
}

void BlkDevice::QueueStopped(QueueContext& context) {
  QueueState& state = *queues_[context.index()];
  // Every request in flight finishes and completes here, so the ring position the engine
  // reports is exact and none completes later on the ring the next start reuses.
  state.ring->Drain(
      [&](uint64_t token, int64_t result) { OnIoDone(state, context, token, result); });
}

void BlkDevice::Reset() {
  // The queues stopped first (their I/O drained): forget what the requests pointed at.
  for (auto& state : queues_) state->requests.clear();
  writeback_ = true;
  features_ = 0;
}

void BlkDevice::Reload() {
  absl::StatusOr<uint64_t> size = disk_->Refresh();
  if (!size.ok()) {
    LOG(ERROR) << "cannot re-read the disk size: " << size.status();
    return;
  }
  const uint64_t sectors = *size / kSectorSize;
  if (sectors == capacity_sectors_.load()) return;
  LOG(INFO) << "disk resized from " << capacity_sectors_.load() << " to " << sectors << " sectors";
  capacity_sectors_ = sectors;
  if (notify_config_change_) {
    absl::Status s = notify_config_change_();
    if (!s.ok()) LOG(WARNING) << "cannot tell the front end about the new size: " << s;
  }
}

}  // namespace vhost
