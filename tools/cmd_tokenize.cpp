// `tandem tokenize` and `tandem detokenize`.
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "tools/cli_common.h"

namespace tandem::cli {

namespace {

struct TokenizeOptions {
  std::string model;
  std::string text;
  bool no_bos = false;
  bool special = false;
  bool json = false;
};

struct DetokenizeOptions {
  std::string model;
  std::vector<int32_t> ids;
  bool render_special = false;
  bool json = false;
};

int run_tokenize(const TokenizeOptions& o) {
  auto file = core::gguf::File::open(resolve_model(o.model));
  auto tok = load_tokenizer(*file);
  const bool add_bos = !o.no_bos && tok->add_bos_default();
  auto ids = tok->encode(o.text, add_bos, o.special);
  if (o.json) {
    nlohmann::json pieces = nlohmann::json::array();
    for (int32_t id : ids) pieces.push_back(tok->token_piece(id, true));
    print_json({{"ids", ids}, {"pieces", pieces}, {"count", ids.size()}});
    return 0;
  }
  for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
  std::printf("\n");
  return 0;
}

int run_detokenize(const DetokenizeOptions& o) {
  auto file = core::gguf::File::open(resolve_model(o.model));
  auto tok = load_tokenizer(*file);
  for (int32_t id : o.ids)
    if (!tok->valid(id))
      throw core::Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                        std::to_string(tok->n_vocab() - 1) + ")");
  std::string text = tok->decode(o.ids, o.render_special);
  if (o.json) {
    print_json({{"text", text}});
    return 0;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::printf("\n");
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app, Action& action) {
  auto t = std::make_shared<TokenizeOptions>();
  auto* cmd = app.add_subcommand("tokenize", "print the token ids of a text");
  cmd->add_option("-m,--model", t->model, "GGUF file (its tokenizer is used)");
  cmd->add_option("text", t->text, "text to tokenize")->required();
  cmd->add_flag("--no-bos", t->no_bos, "do not add BOS even if the model asks for it");
  cmd->add_flag("--special", t->special, "parse special tokens such as <|im_start|> in the text");
  cmd->add_flag("--json", t->json, "one JSON document: ids, pieces, count");
  cmd->callback([t, &action] { action = [t] { return run_tokenize(*t); }; });

  auto d = std::make_shared<DetokenizeOptions>();
  auto* dcmd = app.add_subcommand("detokenize", "print the text of token ids");
  dcmd->add_option("-m,--model", d->model, "GGUF file (its tokenizer is used)");
  dcmd->add_option("ids", d->ids, "token ids")->required();
  dcmd->add_flag("--special", d->render_special, "render special tokens as text");
  dcmd->add_flag("--json", d->json, "one JSON document: text");
  dcmd->callback([d, &action] { action = [d] { return run_detokenize(*d); }; });
}

}  // namespace tandem::cli
