#pragma once
// What the libFuzzer targets share: a check that aborts (so libFuzzer keeps
// the input as a crash) and the vocabularies the text fuzzers run against.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/gguf_file.h"
#include "core/tokenizer.h"

#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

namespace tandem::fuzz {

struct LoadedVocab {
  std::string path;
  std::string pre;              // tokenizer.ggml.pre ("" for SentencePiece files)
  std::string chat_template;    // tokenizer.chat_template, "" when the file has none
  std::unique_ptr<core::Tokenizer> tok;
};

// The GGUF files named in TANDEM_FUZZ_VOCABS (':'-separated; `make fuzz`
// sets it to the tokenizer test vocabularies and the default model). Exits
// with a message naming the variable when it is unset or a file is unusable:
// a fuzzer without its vocabularies would test nothing.
inline std::vector<LoadedVocab> load_vocabs() {
  const char* env = std::getenv("TANDEM_FUZZ_VOCABS");
  if (!env || !*env) {
    std::fprintf(stderr, "set TANDEM_FUZZ_VOCABS to ':'-separated GGUF files with a tokenizer "
                         "(make fuzz does: ../shared/testdata/tokenizer/*.gguf and the default model)\n");
    std::exit(2);
  }
  std::vector<LoadedVocab> out;
  std::stringstream ss(env);
  std::string path;
  while (std::getline(ss, path, ':')) {
    if (path.empty()) continue;
    try {
      auto f = core::gguf::File::open(path);
      LoadedVocab v;
      v.path = path;
      core::VocabData d = core::vocab_from_gguf(*f);
      v.pre = d.pre;
      v.chat_template = f->get_string("tokenizer.chat_template").value_or("");
      v.tok = std::make_unique<core::Tokenizer>(std::move(d));
      out.push_back(std::move(v));
    } catch (const core::Error& e) {
      std::fprintf(stderr, "TANDEM_FUZZ_VOCABS: %s: %s\n", path.c_str(), e.what());
      std::exit(2);
    }
  }
  if (out.empty()) {
    std::fprintf(stderr, "TANDEM_FUZZ_VOCABS names no file\n");
    std::exit(2);
  }
  return out;
}

}  // namespace tandem::fuzz
