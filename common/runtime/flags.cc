#include "common/runtime/flags.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gflags/gflags.h"

namespace vhost {

absl::Status ParseFlags(int argc, char** argv, const std::map<char, std::string>& short_names,
                        const std::set<std::string>& repeatable) {
  std::set<std::string> given;  // repeatable flags seen so far
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc)
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", argv[i + 1], "'"));
      break;
    }
    if (!absl::ConsumePrefix(&arg, "--") && !absl::ConsumePrefix(&arg, "-")) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name(arg.substr(0, arg.find('=')));
    if (name.size() == 1 && short_names.count(name[0])) name = short_names.at(name[0]);
    const bool has_value = arg.find('=') != absl::string_view::npos;
    std::string value = has_value ? std::string(arg.substr(arg.find('=') + 1)) : "";
    gflags::CommandLineFlagInfo info;
    bool found = gflags::GetCommandLineFlagInfo(name.c_str(), &info);
    if (!found && !has_value && absl::StartsWith(name, "no")) {
      // --nofoo for a bool flag foo.
      if (gflags::GetCommandLineFlagInfo(name.substr(2).c_str(), &info) && info.type == "bool") {
        name = name.substr(2);
        value = "false";
        found = true;
      }
    } else if (found && !has_value) {
      if (info.type == "bool") {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];  // --flag value
      } else {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      }
    }
    if (!found) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (repeatable.count(info.name) && info.type == "string" && !given.insert(info.name).second) {
      value = absl::StrCat(info.current_value, ";", value);
    }
    if (gflags::SetCommandLineOption(name.c_str(), value.c_str()).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": invalid value '", value, "' (expected ", info.type, ")"));
    }
  }
  return absl::OkStatus();
}

void ExitWithUsageError(const std::string& program, const std::string& message) {
  std::fprintf(stderr, "%s: %s\n", program.c_str(), message.c_str());
  std::exit(kUsageExitCode);
}

}  // namespace vhost
