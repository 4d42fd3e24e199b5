// The file host side (`--backend=file`): a playback stream writes a WAV file, a capture stream
// reads one. The basis of the tests: what the guest played is in the sink, and what it records
// is known in advance.
//
// Playback: each Open with new parameters (re)creates the file, so the sink holds the last
// thing played; its header is kept true after every period (see WavWriter). A file that stops
// taking writes (disk full, I/O error, the RIFF 4 GiB limit) is reported as UnavailableError
// and the stream carries on silent; the next Open recreates the file.
//
// Capture: the file is read and checked when the backend is made, and its format, rate and
// channel count are the only ones the backend offers; Open asks for exactly those or fails with
// InvalidArgumentError. Open with new parameters starts again from the first frame. At the end
// of the data the stream hears silence (CaptureEnd::kSilence, the default: a recording is the
// file followed by silence, which a test compares exactly) or the file again
// (CaptureEnd::kLoop, for long runs).
#ifndef VHOST_USER_SND_FILE_BACKEND_H_
#define VHOST_USER_SND_FILE_BACKEND_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "vhost-user-snd/audio_backend.h"
#include "vhost-user-snd/wav_file.h"

namespace vhost::snd {

enum class CaptureEnd { kSilence, kLoop };

class FileBackend : public AudioBackend {
 public:
  // A sink at `path`, opened (created) now, before any sandbox, and rewritten from the start by
  // each Open through that descriptor: the daemon never opens a file after its filter. A path
  // that cannot be opened makes every Open fail with UnavailableError.
  static std::unique_ptr<FileBackend> ForPlayback(std::string path);
  // A source read from `path`: InvalidArgumentError when it is no WAV file this reads.
  static absl::StatusOr<std::unique_ptr<FileBackend>> ForCapture(std::string path, CaptureEnd end);
  ~FileBackend() override;

  Capabilities capabilities() const override;
  absl::Status Open(const StreamParams& params) override;
  absl::Status Start() override;
  absl::Status Stop() override;
  absl::Status Write(absl::Span<const uint8_t> frames) override;
  absl::Status Read(absl::Span<uint8_t> frames) override;
  absl::Status Close() override;

  // Frames written or read since the last Open (silence after the end included).
  uint64_t frames_transferred() const { return frames_; }

 private:
  FileBackend(std::string path, std::optional<WavReader> source, CaptureEnd end);
  absl::Status Lost(const absl::Status& cause);

  const std::string path_;
  UniqueFd sink_file_;               // playback: the file, for the backend's life
  int sink_open_errno_ = 0;          // why it could not be opened
  std::optional<WavWriter> sink_;    // playback, while open
  std::optional<WavReader> source_;  // capture, for the backend's life
  const CaptureEnd end_;
  StreamParams params_;
  bool open_ = false;
  bool started_ = false;
  bool lost_ = false;  // the file failed since the last Open: the stream is silent
  uint64_t frames_ = 0;
};

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_FILE_BACKEND_H_
