#include "vhost-user-snd/null_backend.h"

#include "common/base/status_macros.h"

namespace vhost::snd {

absl::Status NullBackend::Open(const StreamParams& params) {
  RETURN_IF_ERROR(CheckParams(capabilities(), params));
  if (open_ && params == params_) return absl::OkStatus();
  params_ = params;
  open_ = true;
  started_ = false;
  frames_ = 0;
  return absl::OkStatus();
}

absl::Status NullBackend::Start() {
  if (!open_) return absl::FailedPreconditionError("stream not open");
  started_ = true;
  return absl::OkStatus();
}

absl::Status NullBackend::Stop() {
  started_ = false;
  return absl::OkStatus();
}

absl::Status NullBackend::Write(absl::Span<const uint8_t> frames) {
  RETURN_IF_ERROR(CheckTransfer(open_, started_, params_, frames.size()));
  frames_ += frames.size() / params_.frame_bytes();
  return absl::OkStatus();
}

absl::Status NullBackend::Read(absl::Span<uint8_t> frames) {
  RETURN_IF_ERROR(CheckTransfer(open_, started_, params_, frames.size()));
  FillSilence(params_.format, frames);
  frames_ += frames.size() / params_.frame_bytes();
  return absl::OkStatus();
}

absl::Status NullBackend::Close() {
  open_ = false;
  started_ = false;
  return absl::OkStatus();
}

}  // namespace vhost::snd
