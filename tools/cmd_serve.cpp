// `tandem serve …`: runs tandem-coordinator (next to this binary) with the
// same arguments. A separate binary because the coordinator links gRPC's
// reflection service, whose messages the client side of this CLI also defines.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "tools/cli_common.h"

namespace tandem::cli {

void register_serve(CLI::App& app, Action& action) {
  auto args = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("serve", "start the service (tandem-coordinator; see its --help)");
  cmd->allow_extras();
  cmd->prefix_command();
  cmd->callback([cmd, args, &action] {
    *args = cmd->remaining();
    action = [args]() -> int {
      std::error_code ec;
      const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
      const std::string bin = (ec ? std::filesystem::path(".") : self.parent_path()) / "tandem-coordinator";
      std::vector<char*> argv{const_cast<char*>(bin.c_str())};
      for (auto& a : *args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(bin.c_str(), argv.data());
      throw core::Error("cannot run " + bin + ": " + std::strerror(errno));
    };
  });
}

}  // namespace tandem::cli
