#include "core/model_paths.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace tandem::core {

std::string default_model_path() {
  std::string dir;
  if (const char* d = std::getenv("TANDEM_MODEL_DIR"); d && *d) {
    dir = d;
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    dir = std::string(h) + "/.cache/tandem/models";
  } else {
    dir = ".cache/tandem/models";
  }
  return dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::string resolve_model(const std::string& given) {
  if (!given.empty()) return given;
  std::string def = default_model_path();
  if (!std::filesystem::exists(def))
    throw Error("no model given (-m FILE) and the default model " + def + " is not there; run `make model` to fetch it");
  return def;
}

}  // namespace tandem::core
