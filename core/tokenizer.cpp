// The vocabulary side of the tokenizer: token attributes, special tokens,
// end-of-generation ids, splitting text around special tokens, decoding.
// Rules follow llama.cpp's llama_vocab::impl::load/tokenize/detokenize.
#include "core/tokenizer.h"

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "core/tokenizer_models.h"

namespace tandem::core {
namespace {

// llama.cpp's token attributes (llama_token_attr), derived from GGUF's token
// types and then adjusted by name-based rules below.
enum Attr : uint32_t {
  kUnknown = 1u << 0,
  kUnused = 1u << 1,
  kNormal = 1u << 2,
  kControl = 1u << 3,
  kUserDefined = 1u << 4,
  kByte = 1u << 5,
};

uint32_t attr_of_type(int32_t type) {
  switch (type) {
    case 1:
      return kNormal;
    case 2:
      return kUnknown;
    case 3:
      return kControl;
    case 4:
      return kUserDefined;
    case 5:
      return kUnused;
    case 6:
      return kByte;
    default:
      return 0;  // 0 = undefined, and anything unknown
  }
}

enum class Model { kSpm, kBpe };

struct PreInfo {
  const char* name;
  PreTokenizer kind;
  bool ignore_merges;  // whole-word tokens skip merging
  bool clean_spaces;   // decode() tidies " ," etc.
  bool add_bos;        // prompts start with BOS unless the file says otherwise
};

// The names llama.cpp maps to the pre-tokenizers implemented here, with the
// flags it sets for each ("gpt2" is an extra alias of "gpt-2").
constexpr PreInfo kPreTokenizers[] = {
    {"default", PreTokenizer::kDefault, false, true, false},
    {"llama3", PreTokenizer::kLlama3, true, true, true},
    {"llama-v3", PreTokenizer::kLlama3, true, true, true},
    {"llama-bpe", PreTokenizer::kLlama3, true, true, true},
    {"falcon3", PreTokenizer::kLlama3, true, true, true},
    {"falcon-h1", PreTokenizer::kLlama3, true, true, true},
    {"pixtral", PreTokenizer::kLlama3, true, true, true},
    {"midm-2.0", PreTokenizer::kLlama3, true, true, true},
    {"lfm2", PreTokenizer::kLlama3, true, true, true},
    {"jina-v5-nano", PreTokenizer::kLlama3, true, true, true},
    {"dbrx", PreTokenizer::kLlama3, false, true, false},
    {"smaug-bpe", PreTokenizer::kLlama3, false, true, false},
    {"starcoder", PreTokenizer::kStarcoder, false, true, false},
    {"refact", PreTokenizer::kStarcoder, false, true, false},
    {"codeshell", PreTokenizer::kStarcoder, false, true, false},
    {"exaone", PreTokenizer::kStarcoder, false, true, false},
    {"minerva-7b", PreTokenizer::kStarcoder, false, true, false},
    {"mellum2", PreTokenizer::kStarcoder, false, true, false},
    {"command-r", PreTokenizer::kStarcoder, false, false, false},
    {"smollm", PreTokenizer::kStarcoder, false, false, false},
    {"gpt-2", PreTokenizer::kGpt2, false, true, false},
    {"gpt2", PreTokenizer::kGpt2, false, true, false},
    {"phi-2", PreTokenizer::kGpt2, false, true, false},
    {"mpt", PreTokenizer::kGpt2, false, true, false},
    {"olmo", PreTokenizer::kGpt2, false, true, false},
    {"jais", PreTokenizer::kGpt2, false, true, false},
    {"exaone4", PreTokenizer::kGpt2, false, true, false},
    {"gigachat", PreTokenizer::kGpt2, false, true, false},
    {"a.x-4.0", PreTokenizer::kGpt2, false, true, false},
    {"mellum", PreTokenizer::kGpt2, false, true, false},
    {"trillion", PreTokenizer::kGpt2, false, false, false},
    {"granite-docling", PreTokenizer::kGpt2, false, false, false},
    {"qwen2", PreTokenizer::kQwen2, false, false, false},
    {"deepseek-r1-qwen", PreTokenizer::kQwen2, false, false, false},
    {"kormo", PreTokenizer::kQwen2, false, false, false},
    {"f2llmv2", PreTokenizer::kQwen2, false, false, false},
    {"hunyuan", PreTokenizer::kQwen2, false, false, false},
    {"solar-open", PreTokenizer::kQwen2, false, false, false},
    {"megrez", PreTokenizer::kQwen2, false, true, false},
    {"stablelm2", PreTokenizer::kQwen2, false, true, false},
};

const PreInfo& find_pre(const std::string& name) {
  // An absent pre-tokenizer is llama.cpp's "default" (it only warns).
  const std::string& key = name.empty() ? std::string("default") : name;
  for (const PreInfo& p : kPreTokenizers)
    if (key == p.name) return p;
  std::string list;
  for (const PreInfo& p : kPreTokenizers) {
    if (!list.empty()) list += ", ";
    list += p.name;
  }
  throw Error("tokenizer: unknown pre-tokenizer '" + name + "' (tokenizer.ggml.pre); supported: " + list);
}

// (String literals are UTF-8: GCC's and Clang's default execution charset.)
// Token texts llama.cpp uses to find special roles when the file does not
// name them. Each role takes one token (here the lowest id; llama.cpp takes
// whichever its hash map yields first) and that token is made a control token.
const std::vector<std::string_view> kEotNames = {
    "<|eot_id|>",        "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|end_of_text|>",   "<EOT>",      "_<EOT>",  "[EOT]",         "<\uFF5Cend\u2581of\u2581sentence\uFF5C>",
    "<end_of_utterance>"};
const std::vector<std::string_view> kEomNames = {"<|eom_id|>"};
const std::vector<std::string_view> kFimPreNames = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",    "<\uFF5Cfim\u2581begin\uFF5C>",
    "<PRE>",          "\u2581<PRE>",  "<|code_prefix|>", "<|prefix|>"};
const std::vector<std::string_view> kFimSufNames = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",    "<\uFF5Cfim\u2581hole\uFF5C>",
    "<SUF>",          "\u2581<SUF>",  "<|code_suffix|>", "<|suffix|>"};
const std::vector<std::string_view> kFimMidNames = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>",    "<\uFF5Cfim\u2581end\uFF5C>",
    "<MID>",          "\u2581<MID>",  "<|code_middle|>", "<|middle|>"};
const std::vector<std::string_view> kFimPadNames = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"};
const std::vector<std::string_view> kFimRepNames = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                                                    "<reponame>"};
const std::vector<std::string_view> kFimSepNames = {"<|file_sep|>"};

// Every token with one of these texts ends generation (llama.cpp's list).
const std::vector<std::string_view> kEogNames = {"<|eot_id|>",
                                                 "<|im_end|>",
                                                 "<|end|>",
                                                 "<|return|>",
                                                 "<|call|>",
                                                 "<|flush|>",
                                                 "<|calls|>",
                                                 "<end_of_turn>",
                                                 "<|endoftext|>",
                                                 "</s>",
                                                 "<|eom_id|>",
                                                 "<EOT>",
                                                 "_<EOT>",
                                                 "[EOT]",
                                                 "[EOS]",
                                                 "<|end_of_text|>",
                                                 "<end_of_utterance>",
                                                 "<eos>",
                                                 "<turn|>",
                                                 "<|tool_response>",
                                                 "<\uFF5Cend\u2581of\u2581sentence\uFF5C>",
                                                 "[e~["};

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s.swap(out);
}

constexpr std::string_view kSpmSpace = "\u2581";  // SentencePiece's visible space

// llama_detokenize's clean_spaces passes, done in place exactly as there
// (including how a removed " ' " space hides from the following check).
void clean_spaces(std::string& text) {
  int32_t total = static_cast<int32_t>(text.size());
  // " ?", " !", " .", " ," lose the space.
  {
    const int32_t n = total;
    total = n ? 1 : 0;
    for (int32_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
      text[total++] = x;
    }
  }
  // " ' " becomes "'".
  {
    const int32_t n = total;
    total = n ? 1 : 0;
    for (int32_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (x == '\'' && i + 1 < n && text[i - 1] == ' ' && text[i + 1] == ' ') {
        --total;
        text[++i] = '\0';
      }
      text[total++] = x;
    }
  }
  // " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
  {
    const int32_t n = total;
    total = n ? 1 : 0;
    for (int32_t i = 1; i < n; ++i) {
      const char x = text[i];
      if (text[i - 1] == ' ' && x == '\'' && i + 1 < n) {
        const char x1 = text[i + 1];
        if (x1 == 's' || x1 == 'm') {
          --total;
        } else if (i + 2 < n) {
          const char x2 = text[i + 2];
          if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
        }
      }
      text[total++] = x;
    }
  }
  text.resize(static_cast<size_t>(total));
}

}  // namespace

struct Tokenizer::Impl {
  Model model = Model::kBpe;
  PreTokenizer pre = PreTokenizer::kDefault;
  bool add_bos = false;
  bool add_space_prefix = false;
  bool clean_spaces = false;

  std::vector<std::string> text;  // by id
  std::vector<float> score;
  std::vector<uint32_t> attr;
  detail::TokenIndex index;

  int32_t bos = -1, eos = -1, eot = -1, eom = -1, unk = -1, pad = -1;
  std::vector<int32_t> special;  // matched in raw text, longest first
  std::vector<bool> eog;
  std::vector<std::string> piece;  // rendered with specials shown

  std::unique_ptr<detail::BpeModel> bpe;
  std::unique_ptr<detail::SpmModel> spm;

  explicit Impl(VocabData v);
  Impl(const Impl&) = delete;  // the models point into this object
  Impl& operator=(const Impl&) = delete;

  int32_t n() const { return static_cast<int32_t>(text.size()); }
  bool valid(int32_t id) const { return id >= 0 && id < n(); }
  int32_t find_first(const std::vector<std::string_view>& names) const;
  std::string make_piece(int32_t id) const;
  void encode_text(std::string_view s, bool prefix_space, std::vector<int32_t>& out) const;
};

int32_t Tokenizer::Impl::find_first(const std::vector<std::string_view>& names) const {
  int32_t best = -1;
  for (std::string_view name : names) {
    const int32_t id = detail::lookup(index, name);
    if (id >= 0 && (best < 0 || id < best)) best = id;
  }
  return best;
}

Tokenizer::Impl::Impl(VocabData v) {
  const PreInfo* pre_info = nullptr;
  if (v.model == "llama") {
    model = Model::kSpm;
    add_bos = true;
    add_space_prefix = true;
    clean_spaces = false;
  } else if (v.model == "gpt2") {
    model = Model::kBpe;
    pre_info = &find_pre(v.pre);
    pre = pre_info->kind;
    add_bos = pre_info->add_bos;
    add_space_prefix = false;
    clean_spaces = pre_info->clean_spaces;
  } else {
    throw Error("tokenizer: unknown tokenizer model '" + v.model + "' (tokenizer.ggml.model); supported: gpt2, llama");
  }
  if (v.add_bos) add_bos = *v.add_bos;
  if (v.add_space_prefix) add_space_prefix = *v.add_space_prefix;

  const size_t n_tokens = v.tokens.size();
  if (n_tokens == 0) throw Error("tokenizer: empty vocabulary (tokenizer.ggml.tokens)");
  if (n_tokens > static_cast<size_t>(INT32_MAX)) throw Error("tokenizer: vocabulary too large");
  if (!v.scores.empty() && v.scores.size() < n_tokens)
    throw Error("tokenizer: " + std::to_string(v.scores.size()) + " scores for " + std::to_string(n_tokens) +
                " tokens (tokenizer.ggml.scores)");
  if (!v.token_types.empty() && v.token_types.size() < n_tokens)
    throw Error("tokenizer: " + std::to_string(v.token_types.size()) + " token types for " + std::to_string(n_tokens) +
                " tokens (tokenizer.ggml.token_type)");

  text = std::move(v.tokens);
  score.assign(n_tokens, 0.0f);
  if (!v.scores.empty()) std::copy_n(v.scores.begin(), n_tokens, score.begin());
  attr.assign(n_tokens, kNormal);
  index.reserve(n_tokens);
  for (size_t i = 0; i < n_tokens; ++i) {
    // llama.cpp renames empty tokens so that every id has a distinct text.
    if (text[i].empty()) text[i] = "[EMPTY_" + std::to_string(i) + "]";
    index[text[i]] = static_cast<int32_t>(i);  // a duplicated text maps to its last id
    if (!v.token_types.empty()) attr[i] = attr_of_type(v.token_types[i]);
  }

  // Special ids: the file's value when in range, else the model's default.
  const bool spm_model = model == Model::kSpm;
  auto resolve = [&](int32_t given, int32_t fallback) {
    if (given >= 0 && given < n()) return given;
    return valid(fallback) ? fallback : -1;
  };
  bos = resolve(v.bos, spm_model ? 1 : 11);
  eos = resolve(v.eos, spm_model ? 2 : 11);
  unk = resolve(v.unk, spm_model ? 0 : -1);
  pad = resolve(v.pad, -1);
  eot = resolve(v.eot, -1);
  eom = resolve(v.eom, -1);
  int32_t fim_pad = resolve(v.fim_pad, -1), fim_rep = resolve(v.fim_rep, -1), fim_sep = resolve(v.fim_sep, -1);

  auto detect = [&](int32_t& id, const std::vector<std::string_view>& names) {
    if (id >= 0) return;
    id = find_first(names);
    if (id >= 0) attr[id] |= kControl;
  };
  int32_t fim_pre = -1, fim_suf = -1, fim_mid = -1;
  detect(eot, kEotNames);
  detect(eom, kEomNames);
  detect(fim_pre, kFimPreNames);
  detect(fim_suf, kFimSufNames);
  detect(fim_mid, kFimMidNames);
  detect(fim_pad, kFimPadNames);
  detect(fim_rep, kFimRepNames);
  detect(fim_sep, kFimSepNames);

  eog.assign(n_tokens, false);
  for (int32_t id : {fim_pad, fim_rep, fim_sep})
    if (id >= 0) eog[id] = true;
  for (std::string_view name : kEogNames) {
    const int32_t id = detail::lookup(index, name);
    if (id < 0) continue;
    eog[id] = true;
    attr[id] |= kControl;
  }
  // gpt-oss renders these channel markers always.
  for (std::string_view name : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    const int32_t id = detail::lookup(index, name);
    if (id >= 0) attr[id] = kUserDefined;
  }
  for (int32_t id : {eos, eot, eom})
    if (id >= 0) eog[id] = true;
  // Harmony-style vocabularies end a message with <|end|> but a turn with
  // <|return|>/<|call|>: there <|end|> is an ordinary (user-defined) token.
  {
    auto eog_has = [&](std::string_view name) {
      const int32_t id = detail::lookup(index, name);
      return id >= 0 && eog[id];
    };
    const bool has_return = eog_has("<|return|>");
    const bool has_call = eog_has("<|call|>") || eog_has("<|calls|>");
    const bool has_flush = eog_has("<|flush|>");
    const int32_t end_id = detail::lookup(index, "<|end|>");
    if (end_id >= 0 && eog[end_id] && ((has_return && has_call) || (has_call && has_flush))) {
      eog[end_id] = false;
      attr[end_id] = kUserDefined;
    }
    // Where </s> is an ordinary token (gemma4, plamo), it does not end generation.
    const int32_t s_id = detail::lookup(index, "</s>");
    if (s_id >= 0 && eog[s_id] && (eog_has("<|tool_response>") || eog_has("<|plamo:eos|>"))) {
      eog[s_id] = false;
      attr[s_id] = kNormal;
    }
  }

  for (int32_t id = 0; id < n(); ++id)
    if (attr[id] & (kControl | kUserDefined | kUnknown)) special.push_back(id);
  std::stable_sort(special.begin(), special.end(),
                   [&](int32_t a, int32_t b) { return text[a].size() > text[b].size(); });

  if (model == Model::kBpe) {
    bpe = std::make_unique<detail::BpeModel>(index, v.merges, pre, pre_info->ignore_merges);
  } else {
    // Byte fallback: "<0xXX>", else the byte itself as a token, else <unk>.
    std::vector<int32_t> byte_tokens(256, -1);
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
      int32_t id = detail::lookup(index, std::string_view(name, 6));
      if (id < 0) {
        const char c = static_cast<char>(b);
        id = detail::lookup(index, std::string_view(&c, 1));
      }
      byte_tokens[b] = id >= 0 ? id : unk;
    }
    spm = std::make_unique<detail::SpmModel>(index, score, std::move(byte_tokens));
  }

  piece.resize(n_tokens);
  for (int32_t id = 0; id < n(); ++id) piece[id] = make_piece(id);
}

std::string Tokenizer::Impl::make_piece(int32_t id) const {
  const uint32_t a = attr[id];
  const std::string& t = text[id];
  if (a & (kUnknown | kControl | kUserDefined)) return t;
  if (a & kNormal) {
    if (model == Model::kSpm) {
      std::string s = t;
      replace_all(s, kSpmSpace, " ");
      return s;
    }
    return detail::gpt2_decode(t);
  }
  if (a & kByte) {
    // "<0xXX>": the two hex digits (strtol semantics for odd texts).
    const std::string hex = t.size() >= 3 ? t.substr(3, 2) : std::string();
    return std::string(1, static_cast<char>(std::strtol(hex.c_str(), nullptr, 16)));
  }
  return {};  // unused or undefined tokens print nothing
}

void Tokenizer::Impl::encode_text(std::string_view s, bool prefix_space, std::vector<int32_t>& out) const {
  if (model == Model::kBpe) {
    bpe->encode(s, out);
    return;
  }
  std::string t;
  if (prefix_space) t = " ";
  t.append(s);
  replace_all(t, " ", kSpmSpace);
  spm->encode(t, out);
}

Tokenizer::Tokenizer(VocabData v) : impl_(std::make_shared<const Impl>(std::move(v))) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(const Tokenizer&) = default;
Tokenizer& Tokenizer::operator=(const Tokenizer&) = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  const Impl& m = *impl_;
  std::vector<int32_t> out;
  if (add_bos) {
    if (m.bos < 0) throw Error("tokenizer: BOS requested but the vocabulary has no BOS token");
    out.push_back(m.bos);
  }
  if (text.empty()) return out;

  // Cut the text around special tokens, longest token texts first (llama.cpp's
  // tokenizer_st_partition). Control and unknown tokens count only when
  // parse_special; user-defined ones always.
  struct Fragment {
    int32_t token;  // -1: raw text [off, off + len)
    size_t off, len;
  };
  std::vector<Fragment> frags{{-1, 0, text.size()}}, next;
  for (int32_t id : m.special) {
    if (!parse_special && (m.attr[id] & (kControl | kUnknown))) continue;
    const std::string& tok = m.text[id];
    next.clear();
    bool hit = false;
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.off;
      const size_t end = f.off + f.len;
      while (pos < end) {
        const size_t match = text.substr(0, end).find(tok, pos);
        if (match == std::string_view::npos) {
          next.push_back({-1, pos, end - pos});
          break;
        }
        hit = true;
        if (match > pos) next.push_back({-1, pos, match - pos});
        next.push_back({id, 0, 0});
        pos = match + tok.size();
      }
    }
    if (hit) frags.swap(next);
  }

  // SentencePiece vocabularies prefix a space to text at the start and after
  // every special token (llama.cpp's is_prev_special).
  bool prev_special = true;
  for (const Fragment& f : frags) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
    } else {
      m.encode_text(text.substr(f.off, f.len), m.add_space_prefix && prev_special, out);
      prev_special = false;
    }
  }
  return out;
}

std::string Tokenizer::token_piece(int32_t id, bool render_special) const {
  const Impl& m = *impl_;
  if (!m.valid(id)) return {};
  if (!render_special && (m.attr[id] & (kUnknown | kControl))) return {};
  return m.piece[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  const Impl& m = *impl_;
  std::string out;
  bool strip_space = m.add_space_prefix;
  for (int32_t id : ids) {
    std::string p = token_piece(id, render_special);
    if (strip_space && !p.empty() && p[0] == ' ') p.erase(0, 1);
    strip_space = false;  // only the first token, even if it printed nothing
    out += p;
  }
  if (m.clean_spaces) clean_spaces(out);
  return out;
}

int32_t Tokenizer::n_vocab() const { return impl_->n(); }
int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
bool Tokenizer::add_bos_default() const { return impl_->add_bos; }
bool Tokenizer::add_space_prefix() const { return impl_->add_space_prefix; }
bool Tokenizer::is_end_of_generation(int32_t id) const { return impl_->valid(id) && impl_->eog[id]; }
bool Tokenizer::valid(int32_t id) const { return impl_->valid(id); }

std::optional<int32_t> Tokenizer::find(std::string_view token_text) const {
  const int32_t id = detail::lookup(impl_->index, token_text);
  if (id < 0) return std::nullopt;
  return id;
}

}  // namespace tandem::core
