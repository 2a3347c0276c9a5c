// `tandem inspect FILE`: what a GGUF holds, without running it.
#include <cstdio>
#include <map>
#include <string>

#include "core/error.h"
#include "core/model_config.h"
#include "tools/cli_common.h"

namespace tandem::cli {

namespace {

struct InspectOptions {
  std::string file;
  bool json = false;
  bool tensors = true;
};

nlohmann::json value_to_json(const core::gguf::Value& v, size_t max_items) {
  using VT = core::gguf::ValueType;
  if (const auto* a = v.as_array()) {
    nlohmann::json arr = nlohmann::json::array();
    for (size_t i = 0; i < a->items.size() && i < max_items; ++i) arr.push_back(value_to_json(a->items[i], max_items));
    if (a->items.size() > max_items) return {{"type", "array"}, {"length", a->items.size()}, {"head", arr}};
    return arr;
  }
  if (const auto* s = v.as_string()) return *s;
  if (v.type == VT::BOOL) return *v.as_bool();
  if (v.type == VT::FLOAT32 || v.type == VT::FLOAT64) return *v.as_float();
  if (auto i = v.as_int()) return *i;
  if (auto f = v.as_float()) return *f;  // u64 above INT64_MAX
  return nullptr;
}

int run_inspect(const InspectOptions& o) {
  auto file = core::gguf::File::open(o.file);
  const auto& ts = file->tensors();
  uint64_t bytes = 0;
  int64_t elems = 0;
  std::map<std::string, int> type_counts;
  for (const auto& t : ts) {
    bytes += t.size_bytes;
    elems += t.n_elements();
    type_counts[std::string(core::quant::type_name(t.type))]++;
  }
  const double bpw = elems > 0 ? 8.0 * static_cast<double>(bytes) / static_cast<double>(elems) : 0.0;

  nlohmann::json j;
  j["file"] = file->path();
  j["gguf_version"] = file->version();
  j["alignment"] = file->alignment();
  j["file_bytes"] = file->file_size();
  j["tensor_count"] = ts.size();
  j["tensor_bytes"] = bytes;
  j["parameters"] = elems;
  j["bits_per_weight"] = bpw;
  j["tensor_types"] = type_counts;
  nlohmann::json hp = nullptr;
  std::string config_error;
  try {
    auto c = core::config_from_gguf(*file);
    hp = {{"architecture", c.arch}, {"name", c.name}, {"n_layer", c.n_layer}, {"n_embd", c.n_embd},
          {"n_ff", c.n_ff}, {"n_head", c.n_head}, {"n_head_kv", c.n_head_kv}, {"head_dim", c.head_dim},
          {"n_vocab", c.n_vocab}, {"n_ctx_train", c.n_ctx_train}, {"rope_dims", c.rope_dims},
          {"rope_freq_base", c.rope_freq_base}, {"rope_freq_scale", c.rope_freq_scale},
          {"rms_eps", c.rms_eps}, {"tied_output", c.tied_output}, {"rope_freqs", c.has_rope_freqs}};
  } catch (const core::Error& e) {
    config_error = e.what();  // vocab-only files have no model; still worth inspecting
  }
  j["model"] = hp;
  if (!config_error.empty()) j["model_error"] = config_error;
  nlohmann::json tok = nullptr;
  try {
    auto t = load_tokenizer(*file);
    tok = {{"model", file->get_string("tokenizer.ggml.model").value_or("")},
           {"pre", file->get_string("tokenizer.ggml.pre").value_or("")},
           {"n_tokens", t->n_vocab()}, {"bos", t->bos()}, {"eos", t->eos()}, {"add_bos", t->add_bos_default()},
           {"chat_template", file->find("tokenizer.chat_template") != nullptr}};
  } catch (const core::Error& e) {
    j["tokenizer_error"] = e.what();
  }
  j["tokenizer"] = tok;
  nlohmann::json meta = nlohmann::json::object();
  for (const auto& [k, v] : file->metadata()) meta[k] = value_to_json(v, 8);
  j["metadata"] = meta;
  if (o.tensors) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& t : ts)
      arr.push_back({{"name", t.name}, {"shape", t.shape}, {"type", core::quant::type_name(t.type)},
                     {"bytes", t.size_bytes}, {"offset", t.offset}});
    j["tensors"] = arr;
  }
  if (o.json) {
    print_json(j);
    return 0;
  }

  std::printf("file:        %s\n", file->path().c_str());
  std::printf("GGUF:        v%u, alignment %llu, %llu bytes\n", file->version(),
              static_cast<unsigned long long>(file->alignment()), static_cast<unsigned long long>(file->file_size()));
  if (!hp.is_null()) {
    std::printf("model:       %s \"%s\"\n", hp["architecture"].get<std::string>().c_str(), hp["name"].get<std::string>().c_str());
    std::printf("layers:      %d, d_model %d, ffn %d, heads %d (kv %d), head_dim %d\n", hp["n_layer"].get<int>(),
                hp["n_embd"].get<int>(), hp["n_ff"].get<int>(), hp["n_head"].get<int>(), hp["n_head_kv"].get<int>(),
                hp["head_dim"].get<int>());
    std::printf("vocab:       %d, trained context %d, rope base %g%s%s\n", hp["n_vocab"].get<int>(),
                hp["n_ctx_train"].get<int>(), hp["rope_freq_base"].get<double>(),
                hp["tied_output"].get<bool>() ? ", output tied to embedding" : "",
                hp["rope_freqs"].get<bool>() ? ", llama3 rope factors" : "");
  } else {
    std::printf("model:       (none: %s)\n", config_error.c_str());
  }
  if (!tok.is_null())
    std::printf("tokenizer:   %s/%s, %d tokens, bos %d, eos %d, add_bos %s%s\n", tok["model"].get<std::string>().c_str(),
                tok["pre"].get<std::string>().c_str(), tok["n_tokens"].get<int>(), tok["bos"].get<int>(),
                tok["eos"].get<int>(), tok["add_bos"].get<bool>() ? "yes" : "no",
                tok["chat_template"].get<bool>() ? ", chat template" : "");
  std::printf("parameters:  %lld in %zu tensors, %.2f MiB, %.3f bits per weight\n", static_cast<long long>(elems), ts.size(),
              static_cast<double>(bytes) / (1024.0 * 1024.0), bpw);
  std::printf("types:      ");
  for (const auto& [name, n] : type_counts) std::printf(" %s×%d", name.c_str(), n);
  std::printf("\n");
  if (o.tensors) {
    std::printf("\n%-40s %-22s %-8s %12s\n", "tensor", "shape", "type", "bytes");
    for (const auto& t : ts) {
      std::string shape;
      for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? " x " : "") + std::to_string(t.shape[i]);
      std::printf("%-40s %-22s %-8s %12llu\n", t.name.c_str(), shape.c_str(),
                  std::string(core::quant::type_name(t.type)).c_str(), static_cast<unsigned long long>(t.size_bytes));
    }
  }
  return 0;
}

}  // namespace

void register_inspect(CLI::App& app, Action& action) {
  auto o = std::make_shared<InspectOptions>();
  auto* cmd = app.add_subcommand("inspect", "show a GGUF file's architecture, tokenizer and tensors");
  cmd->add_option("file", o->file, "GGUF file")->required();
  cmd->add_flag("--json", o->json, "one JSON document (fields in docs/cli.md)");
  cmd->add_flag("!--no-tensors", o->tensors, "omit the tensor table");
  cmd->callback([o, &action] { action = [o] { return run_inspect(*o); }; });
}

}  // namespace tandem::cli
