#include "vhost-user-snd/file_backend.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"

namespace vhost::snd {

std::unique_ptr<FileBackend> FileBackend::ForPlayback(std::string path) {
  std::unique_ptr<FileBackend> backend(
      new FileBackend(std::move(path), std::nullopt, CaptureEnd::kSilence));
  backend->sink_file_.Reset(open(backend->path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (!backend->sink_file_) backend->sink_open_errno_ = errno;
  return backend;
}

absl::StatusOr<std::unique_ptr<FileBackend>> FileBackend::ForCapture(std::string path,
                                                                     CaptureEnd end) {
  ASSIGN_OR_RETURN(WavReader reader, WavReader::Open(path));
  return std::unique_ptr<FileBackend>(new FileBackend(std::move(path), std::move(reader), end));
}

FileBackend::FileBackend(std::string path, std::optional<WavReader> source, CaptureEnd end)
    : path_(std::move(path)), source_(std::move(source)), end_(end) {}

FileBackend::~FileBackend() {
  absl::Status status = Close();
  if (!status.ok()) LOG(WARNING) << path_ << ": " << status;
}

Capabilities FileBackend::capabilities() const {
  if (!source_) return AnyCapabilities();
  const WavFormat& f = source_->format();
  return Capabilities{{f.format}, {f.rate}, f.channels, f.channels};
}

absl::Status FileBackend::Open(const StreamParams& params) {
  if (source_) {
    const WavFormat& f = source_->format();
    if (!(WavFormat{params.format, params.rate, params.channels} == f)) {
      return absl::InvalidArgumentError(absl::StrCat("capture file ", path_, " holds ",
                                                     f.ToString(), ", the stream asks for ",
                                                     params.ToString()));
    }
  }
  RETURN_IF_ERROR(CheckParams(capabilities(), params));
  // A host side that was lost is tried again, whatever the parameters.
  if (open_ && params == params_ && !lost_) return absl::OkStatus();
  // The previous sink's last fix-up failing (a full disk) is no reason to refuse a new one.
  absl::Status closed = Close();
  if (!closed.ok()) LOG(WARNING) << "closing " << path_ << ": " << closed;
  params_ = params;
  frames_ = 0;
  lost_ = false;
  if (source_) {
    source_->Rewind();
  } else {
    if (!sink_file_) {
      return absl::UnavailableError(absl::StrCat(path_, ": ", strerror(sink_open_errno_)));
    }
    absl::StatusOr<WavWriter> sink =
        WavWriter::CreateOnFd(UniqueFd(dup(sink_file_.get())), path_,
                              WavFormat{params.format, params.rate, params.channels});
    if (!sink.ok()) {
      LOG(WARNING) << "playback file " << path_ << ": " << sink.status();
      return absl::UnavailableError(absl::StrCat(path_, ": ", sink.status().message()));
    }
    sink_.emplace(std::move(*sink));
  }
  open_ = true;
  return absl::OkStatus();
}

absl::Status FileBackend::Start() {
  if (!open_) return absl::FailedPreconditionError("stream not open");
  started_ = true;
  return absl::OkStatus();
}

absl::Status FileBackend::Stop() {
  started_ = false;
  return absl::OkStatus();
}

absl::Status FileBackend::Lost(const absl::Status& cause) {
  // Logged once per Open: the stream stops calling after an UnavailableError.
  if (!lost_) LOG(WARNING) << path_ << " fails, the stream goes on silent: " << cause;
  lost_ = true;
  return absl::UnavailableError(absl::StrCat(path_, ": ", cause.message()));
}

absl::Status FileBackend::Write(absl::Span<const uint8_t> frames) {
  RETURN_IF_ERROR(CheckTransfer(open_, started_, params_, frames.size()));
  if (source_) return absl::FailedPreconditionError("Write on a capture stream");
  if (lost_) return Lost(absl::UnavailableError("gone"));
  absl::Status status = sink_->Write(frames);
  if (!status.ok()) return Lost(status);
  frames_ += frames.size() / params_.frame_bytes();
  return absl::OkStatus();
}

absl::Status FileBackend::Read(absl::Span<uint8_t> frames) {
  RETURN_IF_ERROR(CheckTransfer(open_, started_, params_, frames.size()));
  if (!source_) return absl::FailedPreconditionError("Read on a playback stream");
  if (lost_) return Lost(absl::UnavailableError("gone"));
  const size_t frame = params_.frame_bytes();
  absl::Span<uint8_t> rest = frames;
  while (!rest.empty()) {
    absl::StatusOr<size_t> got = source_->Read(rest);
    if (!got.ok()) return Lost(got.status());
    rest.remove_prefix(*got * frame);
    if (rest.empty()) break;
    // The end of the data. An empty source loops to more silence, not forever.
    if (end_ == CaptureEnd::kLoop && source_->frames() > 0) {
      source_->Rewind();
      continue;
    }
    FillSilence(params_.format, rest);
    break;
  }
  frames_ += frames.size() / frame;
  return absl::OkStatus();
}

absl::Status FileBackend::Close() {
  open_ = false;
  started_ = false;
  if (!sink_) return absl::OkStatus();
  absl::Status status = sink_->Close();
  sink_.reset();
  return status;
}

}  // namespace vhost::snd
