#pragma once
// Shared by the unit tests: where the data are, and running the CLI.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace tandem::test {

inline std::string source_dir() { return TANDEM_SOURCE_DIR; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The default model, or "" when absent. With TANDEM_REQUIRE_MODEL=1 (set by
// `make test`) a missing model fails the test instead of skipping it.
inline std::string model_path_or_empty() {
  std::string dir;
  if (const char* d = std::getenv("TANDEM_MODEL_DIR"); d && *d) dir = d;
  else if (const char* h = std::getenv("HOME"); h && *h) dir = std::string(h) + "/.cache/tandem/models";
  std::string p = dir + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  return std::filesystem::exists(p) ? p : "";
}

inline bool model_required() {
  const char* r = std::getenv("TANDEM_REQUIRE_MODEL");
  return r && std::string(r) == "1";
}

#define TANDEM_REQUIRE_MODEL_OR_SKIP(var)                                                             \
  const std::string var = ::tandem::test::model_path_or_empty();                                     \
  if (var.empty()) {                                                                                  \
    if (::tandem::test::model_required()) FAIL() << "default model missing: run `make model` first"; \
    GTEST_SKIP() << "default model not in the cache (run `make model`)";                              \
  }

struct CommandResult {
  int exit_code = -1;    // -1 when killed by a signal
  int signal = 0;
  std::string out;       // stdout
  std::string err;       // stderr
};

// Runs a shell command line, capturing stdout and stderr.
inline CommandResult run_command(const std::string& cmdline) {
  CommandResult r;
  const std::string err_file = testing::TempDir() + "tandem_cmd_stderr_" + std::to_string(::getpid());
  FILE* p = ::popen((cmdline + " 2>" + err_file).c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  if (WIFEXITED(st)) {
    r.exit_code = WEXITSTATUS(st);
    // The shell reports a child killed by signal N as 128 + N.
    if (r.exit_code > 128) r.signal = r.exit_code - 128;
  } else if (WIFSIGNALED(st)) {
    r.signal = WTERMSIG(st);
  }
  r.err = read_file(err_file);
  std::filesystem::remove(err_file);
  return r;
}

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace tandem::test
