// The host side without hardware: a virtual keyboard, mouse or tablet whose events come from
// text commands, one per line:
//   key CODE VALUE     key or button CODE (KEY_A, BTN_LEFT, or a number) to VALUE (0 up, 1 down,
//                      2 repeat), then SYN_REPORT
//   press CODE         down, SYN, up, SYN
//   type TEXT          presses for each character (letters, digits, space and common punctuation;
//                      capitals with shift; \n is Enter), 20 ms apart
//   move DX DY         relative motion (mouse)      wheel N     wheel clicks (mouse)
//   abs X Y            absolute position 0..32767 (tablet)
//   event TYPE CODE VALUE   one raw event (no SYN)  syn         SYN_REPORT
//   sleep MS           pause (scripts)              # ...       comment
// Socket clients get "ok" or "error: why" for each line.
#include <atomic>
#include <cctype>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/base/unique_fd.h"
#include "common/runtime/control_socket.h"
#include "glog/logging.h"
#include "vhost-user-input/event_codes.h"
#include "vhost-user-input/event_source.h"

namespace vhost {
namespace {

constexpr int32_t kAbsMax = 32767;
constexpr absl::Duration kTypingInterval = absl::Milliseconds(20);

InputDescription Describe(VirtualKind kind) {
  InputDescription d;
  d.ids = {BUS_VIRTUAL, 0x1af4, static_cast<uint16_t>(0x1100 + static_cast<int>(kind)), 1};
  d.SetCode(EV_SYN, SYN_REPORT);
  switch (kind) {
    case VirtualKind::kKeyboard:
      d.name = "vhost-user virtual keyboard";
      for (uint16_t key = KEY_ESC; key <= KEY_MICMUTE; ++key) d.SetCode(EV_KEY, key);
      for (uint16_t led : {LED_NUML, LED_CAPSL, LED_SCROLLL}) d.SetCode(EV_LED, led);
      d.SetCode(EV_REP, REP_DELAY);
      break;
    case VirtualKind::kMouse:
      d.name = "vhost-user virtual mouse";
      for (uint16_t b : {BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE, BTN_EXTRA}) {
        d.SetCode(EV_KEY, b);
      }
      for (uint16_t r : {REL_X, REL_Y, REL_WHEEL}) d.SetCode(EV_REL, r);
      break;
    case VirtualKind::kTablet:
      d.name = "vhost-user virtual tablet";
      for (uint16_t b : {BTN_LEFT, BTN_RIGHT, BTN_MIDDLE}) d.SetCode(EV_KEY, b);
      for (uint16_t a : {ABS_X, ABS_Y}) {
        d.SetCode(EV_ABS, a);
        d.axes[a] = {0, kAbsMax, 0, 0, 0};
      }
      break;
  }
  d.serial = "virtual-0";
  return d;
}

// Key and shift for a character typed with `type`.
bool KeyFor(char c, uint16_t* key, bool* shift) {
  static const char kLower[] = "abcdefghijklmnopqrstuvwxyz";
  static const uint16_t kLetters[] = {KEY_A, KEY_B, KEY_C, KEY_D, KEY_E, KEY_F, KEY_G, KEY_H, KEY_I,
                                      KEY_J, KEY_K, KEY_L, KEY_M, KEY_N, KEY_O, KEY_P, KEY_Q, KEY_R,
                                      KEY_S, KEY_T, KEY_U, KEY_V, KEY_W, KEY_X, KEY_Y, KEY_Z};
  *shift = std::isupper(static_cast<unsigned char>(c));
  const char lower = std::tolower(static_cast<unsigned char>(c));
  if (const char* p = std::strchr(kLower, lower); p != nullptr && lower != '\0') {
    *key = kLetters[p - kLower];
    return true;
  }
  if (c >= '1' && c <= '9') {
    *key = KEY_1 + (c - '1');
    return true;
  }
  struct Punct {
    char c;
    uint16_t key;
    bool shift;
  };
  static const Punct kPunct[] = {{'0', KEY_0, false},         {' ', KEY_SPACE, false},
                                 {'\n', KEY_ENTER, false},    {'-', KEY_MINUS, false},
                                 {'=', KEY_EQUAL, false},     {',', KEY_COMMA, false},
                                 {'.', KEY_DOT, false},       {'/', KEY_SLASH, false},
                                 {';', KEY_SEMICOLON, false}, {'\'', KEY_APOSTROPHE, false},
                                 {'_', KEY_MINUS, true},      {':', KEY_SEMICOLON, true},
                                 {'!', KEY_1, true},          {'?', KEY_SLASH, true},
                                 {'\t', KEY_TAB, false}};
  for (const Punct& p : kPunct) {
    if (p.c == c) {
      *key = p.key;
      *shift = p.shift;
      return true;
    }
  }
  return false;
}

class VirtualSource : public EventSource {
 public:
  VirtualSource(VirtualKind kind, std::vector<std::string> script)
      : description_(Describe(kind)), script_(std::move(script)) {}
  ~VirtualSource() override {
    control_.reset();  // no command runs once the rest starts going away
    if (replay_.joinable()) replay_.join();
  }

  // Serves Execute on a control socket at `path` (see README.md).
  absl::Status ServeControlSocket(const std::string& path) {
    absl::StatusOr<std::unique_ptr<ControlSocket>> control =
        ControlSocket::Start(path, "--control-socket", [this](absl::string_view line) {
          absl::Status s = Execute(line);
          return s.ok() ? absl::StatusOr<std::string>(std::string()) : s;
        });
    if (!control.ok()) return control.status();
    control_ = *std::move(control);
    return absl::OkStatus();
  }

  const InputDescription& description() const override { return description_; }

  void Started() override {
    if (script_.empty() || replay_started_.exchange(true)) return;
    replay_ = std::thread([this] {
      for (const std::string& line : script_) {
        absl::Status s = Execute(line);
        if (!s.ok()) LOG(WARNING) << "script line '" << line << "': " << s.message();
      }
    });
  }

  void WriteStatus(const virtio_input_event& event) override {
    // A virtual keyboard has no lights: the guest's LED state is noted, not shown anywhere.
    VLOG(1) << "status event type " << event.type << " code " << event.code << " value "
            << event.value;
  }

  absl::Status Execute(absl::string_view line) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') return absl::OkStatus();
    const std::vector<absl::string_view> w =
        absl::StrSplit(line, absl::MaxSplits(' ', 1), absl::SkipEmpty());
    const absl::string_view op = w[0];
    const absl::string_view rest = w.size() > 1 ? w[1] : "";
    const std::vector<absl::string_view> args = absl::StrSplit(rest, ' ', absl::SkipEmpty());
    auto number = [&](size_t i, int32_t* out) -> absl::Status {
      if (i >= args.size() || !absl::SimpleAtoi(args[i], out)) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", op, "' needs a number as argument ", i + 1));
      }
      return absl::OkStatus();
    };
    auto code = [&](size_t i, uint16_t* out) -> absl::Status {
      int32_t n;
      if (i < args.size()) {
        if (absl::optional<uint16_t> c = EventCodeByName(args[i])) {
          *out = *c;
          return absl::OkStatus();
        }
        if (absl::SimpleAtoi(args[i], &n) && n >= 0 && n < KEY_CNT) {
          *out = n;
          return absl::OkStatus();
        }
      }
      return absl::InvalidArgumentError(absl::StrCat("'", op, "' needs an event code"));
    };
    auto emit = [&](uint16_t type, uint16_t c, int32_t value) -> absl::Status {
      if (!description_.HasCode(type, c)) {
        return absl::InvalidArgumentError(
            absl::StrCat("this ", description_.name, " has no event type ", type, " code ", c));
      }
      buffer_.Add(type, c, value);
      return absl::OkStatus();
    };
    auto syn = [&] { buffer_.Add(EV_SYN, SYN_REPORT, 0); };
    absl::Status s;
    if (op == "key" || op == "button") {
      uint16_t c = 0;
      int32_t v = 0;
      if (!(s = code(0, &c)).ok() || !(s = number(1, &v)).ok() || !(s = emit(EV_KEY, c, v)).ok()) {
        return s;
      }
      syn();
    } else if (op == "press") {
      uint16_t c = 0;
      if (!(s = code(0, &c)).ok() || !(s = emit(EV_KEY, c, 1)).ok()) return s;
      syn();
      (void)emit(EV_KEY, c, 0);
      syn();
    } else if (op == "type") {
      std::string text(rest);
      for (size_t i = 0; i + 1 < text.size(); ++i) {
        if (text[i] == '\\' && text[i + 1] == 'n') text.replace(i, 2, "\n");
      }
      for (char ch : text) {
        uint16_t key;
        bool shift;
        if (!KeyFor(ch, &key, &shift)) {
          return absl::InvalidArgumentError(absl::StrCat("cannot type '", std::string(1, ch), "'"));
        }
        if (shift && !(s = emit(EV_KEY, KEY_LEFTSHIFT, 1)).ok()) return s;
        if (!(s = emit(EV_KEY, key, 1)).ok()) return s;
        syn();
        (void)emit(EV_KEY, key, 0);
        if (shift) (void)emit(EV_KEY, KEY_LEFTSHIFT, 0);
        syn();
        // Type like a fast human: a guest reading its event device in small reads would
        // otherwise overflow the kernel's per-reader buffer and lose keys.
        absl::SleepFor(kTypingInterval);
      }
    } else if (op == "move") {
      int32_t dx = 0, dy = 0;
      if (!(s = number(0, &dx)).ok() || !(s = number(1, &dy)).ok() ||
          !(s = emit(EV_REL, REL_X, dx)).ok() || !(s = emit(EV_REL, REL_Y, dy)).ok()) {
        return s;
      }
      syn();
    } else if (op == "wheel") {
      int32_t n = 0;
      if (!(s = number(0, &n)).ok() || !(s = emit(EV_REL, REL_WHEEL, n)).ok()) return s;
      syn();
    } else if (op == "abs") {
      int32_t x = 0, y = 0;
      if (!(s = number(0, &x)).ok() || !(s = number(1, &y)).ok()) return s;
      if (x < 0 || y < 0 || x > kAbsMax || y > kAbsMax) {
        return absl::InvalidArgumentError("abs coordinates are 0..32767");
      }
      if (!(s = emit(EV_ABS, ABS_X, x)).ok() || !(s = emit(EV_ABS, ABS_Y, y)).ok()) return s;
      syn();
    } else if (op == "event") {
      int32_t type = 0, c = 0, v = 0;
      if (!(s = number(0, &type)).ok() || !(s = number(1, &c)).ok() || !(s = number(2, &v)).ok()) {
        return s;
      }
      if (type == EV_SYN) {
        buffer_.Add(EV_SYN, c, v);
      } else if (!(s = emit(type, c, v)).ok()) {
        return s;
      }
    } else if (op == "syn") {
      syn();
    } else if (op == "sleep") {
      int32_t ms = 0;
      if (!(s = number(0, &ms)).ok()) return s;
      absl::SleepFor(absl::Milliseconds(std::max(0, std::min(ms, 60000))));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown command '", op, "'"));
    }
    return absl::OkStatus();
  }

 private:
  const InputDescription description_;
  const std::vector<std::string> script_;
  std::thread replay_;
  std::unique_ptr<ControlSocket> control_;
  std::atomic<bool> replay_started_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<EventSource>> MakeVirtualSource(VirtualKind kind,
                                                               const std::string& control_socket,
                                                               const std::string& script) {
  std::vector<std::string> lines;
  if (!script.empty()) {
    std::ifstream in(script);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("--script: cannot read ", script));
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  auto source = std::make_unique<VirtualSource>(kind, std::move(lines));
  if (!control_socket.empty()) {
    if (absl::Status s = source->ServeControlSocket(control_socket); !s.ok()) return s;
  }
  return std::unique_ptr<EventSource>(std::move(source));
}

}  // namespace vhost
