#include "vhost-user-gpio/simulated_chip.h"

#include <sys/eventfd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"

namespace vhost {
namespace {
// Edges kept while the device does not take them (no guest, or a guest ignoring the line):
// beyond this the oldest are dropped, so an outside client cannot grow the daemon without bound.
constexpr size_t kMaxPendingEvents = 4096;
}  // namespace

absl::StatusOr<std::vector<SimulatedLine>> ParseSimulatedLines(absl::string_view spec) {
  std::vector<SimulatedLine> lines;
  if (spec.empty()) return lines;
  for (absl::string_view item : absl::StrSplit(spec, ',')) {
    SimulatedLine line;
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(item, '@');
    line.name = std::string(parts.first);
    if (parts.second == "in") {
      line.fixed = Direction::kIn;
    } else if (parts.second == "out") {
      line.fixed = Direction::kOut;
    } else if (!parts.second.empty() || absl::StrContains(item, '@')) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sim-lines: '", item, "': a direction must be @in or @out"));
    }
    if (line.name.empty() || line.name.size() > 31) {
      return absl::InvalidArgumentError(
          absl::StrCat("--sim-lines: '", item, "': names are 1 to 31 characters"));
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

SimulatedChip::SimulatedChip(uint16_t num_lines, std::vector<SimulatedLine> named)
    : event_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  lines_.resize(num_lines);
  for (uint16_t i = 0; i < num_lines; ++i) {
    Line& line = lines_[i];
    if (i < named.size()) {
      line.spec = named[i];
    } else {
      line.spec.name = absl::StrCat("line", i);
    }
    line.direction = InitialDirection(line);
  }
}

Direction SimulatedChip::InitialDirection(const Line& line) const {
  return line.spec.fixed == Direction::kOut ? Direction::kOut : Direction::kIn;
}

absl::StatusOr<Direction> SimulatedChip::GetDirection(uint16_t line) {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_[line].direction;
}

absl::Status SimulatedChip::SetDirection(uint16_t index, Direction direction, bool value) {
  std::lock_guard<std::mutex> lock(mu_);
  Line& line = lines_[index];
  if (direction != Direction::kNone && line.spec.fixed != Direction::kNone &&
      direction != line.spec.fixed) {
    return absl::PermissionDeniedError(
        absl::StrCat("line ", index, " (", line.spec.name, ") is fixed as ",
                     line.spec.fixed == Direction::kIn ? "an input" : "an output"));
  }
  line.direction = direction;
  if (direction == Direction::kOut) line.output = value;
  if (direction != Direction::kIn) line.watched = false;
  return absl::OkStatus();
}

absl::StatusOr<bool> SimulatedChip::GetValue(uint16_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  const Line& line = lines_[index];
  switch (line.direction) {
    case Direction::kOut:
      return line.output;
    case Direction::kIn:
      return line.input;
    default:
      return absl::FailedPreconditionError(absl::StrCat("line ", index, " is not configured"));
  }
}

absl::Status SimulatedChip::SetValue(uint16_t index, bool value) {
  std::lock_guard<std::mutex> lock(mu_);
  Line& line = lines_[index];
  if (line.direction != Direction::kOut) {
    return absl::FailedPreconditionError(absl::StrCat("line ", index, " is not an output"));
  }
  line.output = value;
  return absl::OkStatus();
}

absl::Status SimulatedChip::WatchEdges(uint16_t index, bool watch) {
  std::lock_guard<std::mutex> lock(mu_);
  Line& line = lines_[index];
  if (watch && line.direction != Direction::kIn) {
    return absl::FailedPreconditionError(absl::StrCat("line ", index, " is not an input"));
  }
  line.watched = watch;
  return absl::OkStatus();
}

std::vector<LineEvent> SimulatedChip::TakeEvents() {
  std::lock_guard<std::mutex> lock(mu_);
  eventfd_t ignored;
  (void)eventfd_read(event_fd_.get(), &ignored);
  std::vector<LineEvent> out(events_.begin(), events_.end());
  events_.clear();
  return out;
}

void SimulatedChip::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Line& line : lines_) {
    line.direction = InitialDirection(line);
    line.output = false;
    line.watched = false;
  }
  events_.clear();
  eventfd_t ignored;
  (void)eventfd_read(event_fd_.get(), &ignored);
}

void SimulatedChip::Drive(uint16_t index, bool level) {
  std::lock_guard<std::mutex> lock(mu_);
  Line& line = lines_[index];
  const bool changed = line.input != level;
  line.input = level;
  if (!changed || !line.watched || line.direction != Direction::kIn) return;
  if (events_.size() >= kMaxPendingEvents) {
    LOG_EVERY_N(WARNING, 1000) << "simulated chip: " << kMaxPendingEvents
                               << " edges not taken; dropping the oldest";
    events_.pop_front();
  }
  events_.push_back({index, level});
  eventfd_write(event_fd_.get(), 1);
}

std::string SimulatedChip::Describe(uint16_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  const Line& line = lines_[index];
  switch (line.direction) {
    case Direction::kOut:
      return absl::StrCat("out ", line.output ? 1 : 0);
    case Direction::kIn:
      return absl::StrCat("in ", line.input ? 1 : 0);
    default:
      return "none -";
  }
}

absl::StatusOr<uint16_t> SimulatedChip::FindLine(absl::string_view token) const {
  uint32_t number;
  if (absl::SimpleAtoi(token, &number)) {
    if (number < lines_.size()) return static_cast<uint16_t>(number);
    return absl::InvalidArgumentError(absl::StrCat("no line ", token));
  }
  for (size_t i = 0; i < lines_.size(); ++i) {
    if (lines_[i].spec.name == token) return static_cast<uint16_t>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat("no line named '", token, "'"));
}

absl::StatusOr<std::string> SimulatedChip::Execute(absl::string_view command) {
  std::vector<absl::string_view> words = absl::StrSplit(command, ' ', absl::SkipWhitespace());
  if (words.empty()) return absl::InvalidArgumentError("empty command");
  const absl::string_view op = words[0];
  if (op == "lines" && words.size() == 1) {
    std::vector<std::string> names;
    for (const Line& line : lines_) names.push_back(line.spec.name);
    return absl::StrCat(lines_.size(), " ", absl::StrJoin(names, ","));
  }
  if (op != "get" && op != "set" && op != "pulse") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown command '", op, "' (lines | get LINE | set LINE 0|1 | pulse LINE)"));
  }
  if (words.size() < 2) return absl::InvalidArgumentError(absl::StrCat("usage: ", op, " LINE ..."));
  absl::StatusOr<uint16_t> line = FindLine(words[1]);
  if (!line.ok()) return line.status();
  if (op == "get" && words.size() == 2) return Describe(*line);
  if (op == "set" && words.size() == 3 && (words[2] == "0" || words[2] == "1")) {
    Drive(*line, words[2] == "1");
    return std::string();
  }
  if (op == "pulse" && words.size() == 2) {  // two edges: there and back
    bool level;
    {
      std::lock_guard<std::mutex> lock(mu_);
      level = lines_[*line].input;
    }
    Drive(*line, !level);
    Drive(*line, level);
    return std::string();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("bad arguments: '", command, "' (get LINE | set LINE 0|1 | pulse LINE)"));
}

absl::Status SimulatedChip::ServeControlSocket(const std::string& path, const std::string& flag) {
  absl::StatusOr<std::unique_ptr<ControlSocket>> control =
      ControlSocket::Start(path, flag, [this](absl::string_view line) { return Execute(line); });
  if (!control.ok()) return control.status();
  control_ = *std::move(control);
  return absl::OkStatus();
}

}  // namespace vhost
