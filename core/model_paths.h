#pragma once
// Where the default model lives: $TANDEM_MODEL_DIR, else ~/.cache/tandem/models.
#include <string>

namespace tandem::core {

std::string default_model_path();
// Resolves a "-m" value (empty → default model); throws core::Error with a
// hint (`make model`) when the default is absent.
std::string resolve_model(const std::string& given);

}  // namespace tandem::core
